// `cohost generate`'s tool flags (tool_flags.h): OpenAI's tools list from a
// file into the chat, in its key order and with each tool's strict; the
// choice and one-call flags; and the files and values refused, a file too
// big or nested too deep among them (json_file.h).

#include "tools/client/tool_flags.h"

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

using ::testing::HasSubstr;

class ToolFlagsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  // The flags into a chat request (or into a text one, `chat` false).
  absl::Status Add(std::vector<std::string> flags, bool chat = true) {
    std::vector<char*> argv;
    for (std::string& f : flags) argv.push_back(f.data());
    absl::StatusOr<ParsedArgs> args =
        ParseArgs(ToolFlagSpecs(), static_cast<int>(argv.size()), argv.data());
    if (!args.ok()) return args.status();
    request_ = v1::GenerateRequest();
    if (chat) {
      request_.mutable_chat()->add_messages()->set_content("hi");
    } else {
      request_.set_text("hi");
    }
    return AddToolsFromArgs(*args, &request_);
  }
  v1::GenerateRequest request_;
};

TEST_F(ToolFlagsTest, ToolsKeepTheirKeyOrderAndStrict) {
  const std::string tools =
      Write("tools.json",
            R"([{"type": "function", "function": {"name": "get_weather", "description": "Now.",
            "parameters": {"type": "object", "properties": {"z": {}, "a": {}}}, "strict": true}},
          {"name": "get_time"}])");
  ASSERT_TRUE(
      Add({"--tools", tools, "--tool-choice", "get_time", "--no-parallel-tool-calls"}).ok());
  const v1::ChatInput& chat = request_.chat();
  ASSERT_EQ(chat.tools_size(), 2);
  EXPECT_EQ(chat.tools(0).name(), "get_weather");
  EXPECT_EQ(chat.tools(0).description(), "Now.");
  EXPECT_EQ(chat.tools(0).parameters(), R"({"type":"object","properties":{"z":{},"a":{}}})")
      << "the file's key order";
  EXPECT_TRUE(chat.tools(0).strict());
  EXPECT_EQ(chat.tools(1).name(), "get_time") << "a function alone";
  EXPECT_FALSE(chat.tools(1).strict());
  EXPECT_EQ(chat.tool_choice(), v1::TOOL_CHOICE_FUNCTION);
  EXPECT_EQ(chat.tool_choice_function(), "get_time");
  ASSERT_TRUE(chat.has_parallel_tool_calls());
  EXPECT_FALSE(chat.parallel_tool_calls());

  ASSERT_TRUE(Add({"--tool-choice", "required"}).ok());
  EXPECT_EQ(request_.chat().tool_choice(), v1::TOOL_CHOICE_REQUIRED);
  ASSERT_TRUE(Add({"--tool-choice", "auto"}).ok());
  EXPECT_EQ(request_.chat().tool_choice(), v1::TOOL_CHOICE_AUTO);
  EXPECT_FALSE(request_.chat().has_parallel_tool_calls());
  ASSERT_TRUE(Add({}, /*chat=*/false).ok()) << "no flags, no chat needed";
}

TEST_F(ToolFlagsTest, BadFilesAndValuesAreRefused) {
  const struct {
    std::vector<std::string> flags;
    const char* says;
  } cases[] = {
      {{"--tools", ::testing::TempDir() + "/missing.json"}, "cannot be read"},
      {{"--tools", Write("object.json", R"({"name": "f"})")}, "not a JSON list"},
      {{"--tools", Write("broken.json", "[{")}, "broken.json: not JSON"},
      // Bounded, so that a pathological file is an error, not a crash.
      {{"--tools", Write("deep.json", std::string(100, '[') + std::string(100, ']'))},
       "not JSON (nested too deep)"},
      {{"--tools", Write("huge.json", "[" + std::string(size_t{5} << 20, ' ') + "]")},
       "huge.json: over 4 MiB"},
      {{"--tools", Write("unnamed.json", R"([{"type": "function"}])")}, "[0] is not a function"},
      {{"--tools", Write("entry.json", R"([3])")}, "[0] is not a function"},
      {{"--tools", Write("params.json", R"([{"name": "f", "parameters": [1]}])")},
       "[0].parameters"},
      {{"--tools", Write("strict.json", R"([{"name": "f", "strict": "yes"}])")}, "[0].strict"},
      {{"--tools", Write("description.json", R"([{"name": "f", "description": 1}])")},
       "[0].description"},
      {{"--tool-choice", ""}, "--tool-choice"},
  };
  for (const auto& c : cases) {
    const absl::Status s = Add(c.flags);
    EXPECT_FALSE(s.ok()) << c.says;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.says));
  }
  EXPECT_THAT(std::string(Add({"--tool-choice", "none"}, /*chat=*/false).message()),
              HasSubstr("need --chat"));
}

}  // namespace
}  // namespace cohost::tools
