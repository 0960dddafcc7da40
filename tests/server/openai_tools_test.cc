// OpenAI's tools on /v1/chat/completions, read into the chat (openai_tools.h):
// the functions and the turns of calls and results, in the client's key
// order; tool_choice and parallel_tool_calls into the chat's fields (what they
// ask of the answer is tool_choice_test's); and the malformed ones, refused
// naming their field.

#include "server/http/openai_tools.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/openai_format.h"
#include "server/http/openai_request.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

// Keys out of alphabetical order: the prompt must show the client's order.
constexpr char kBody[] = R"({
  "model": "m",
  "messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"id": "call_2", "type": "function",
       "function": {"name": "get_time", "arguments": {"zone": "CET", "as": "iso"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]}
  ],
  "tools": [
    {"type": "function", "function": {"name": "get_weather", "description": "Today's weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                    "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "strict": true}}
  ]
})";

absl::StatusOr<CompletionRequest> Parse(const Json& body) {
  return ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
}

TEST(OpenAiToolsTest, ToolsAndToolTurnsReachTheChat) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(kBody, Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::ChatInput& chat = r->request.chat();
  ASSERT_EQ(chat.tools_size(), 2);
  EXPECT_EQ(chat.tools(0).name(), "get_weather");
  EXPECT_EQ(chat.tools(0).description(), "Today's weather");
  EXPECT_EQ(chat.tools(0).parameters(),
            R"({"type":"object","properties":{"city":{"type":"string"},)"
            R"("days":{"type":"integer"}},"required":["city"]})");
  EXPECT_EQ(chat.tools(1).name(), "get_time");
  EXPECT_EQ(chat.tools(1).parameters(), "");
  EXPECT_FALSE(chat.tools(0).strict());
  EXPECT_TRUE(chat.tools(1).strict());
  ASSERT_EQ(chat.messages_size(), 4);
  const v1::ChatMessage& calls = chat.messages(1);
  EXPECT_EQ(calls.role(), "assistant");
  EXPECT_EQ(calls.content(), "");
  ASSERT_EQ(calls.tool_calls_size(), 2);
  EXPECT_EQ(calls.tool_calls(0).id(), "call_1");
  EXPECT_EQ(calls.tool_calls(0).name(), "get_weather");
  EXPECT_EQ(calls.tool_calls(0).arguments(), R"({"city": "Paris"})") << "the client's text";
  EXPECT_EQ(calls.tool_calls(1).arguments(), R"({"zone":"CET","as":"iso"})")
      << "an object, in its order";
  EXPECT_EQ(chat.messages(2).role(), "tool");
  EXPECT_EQ(chat.messages(2).content(), "18C");
  EXPECT_EQ(chat.messages(3).content(), "12:00");
  EXPECT_EQ(chat.tool_choice(), v1::TOOL_CHOICE_AUTO) << "the default";
  EXPECT_FALSE(chat.has_parallel_tool_calls());
  EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_TEXT);
  EXPECT_EQ(r->request.stop_size(), 0);
}

// Each tool_choice and parallel_tool_calls, into the chat's fields.
TEST(OpenAiToolsTest, TheChoiceIsReadIntoTheChat) {
  struct Case {
    Json choice;
    v1::ToolChoice want;
    const char* function;
  };
  const Case cases[] = {
      {"auto", v1::TOOL_CHOICE_AUTO, ""},
      {"none", v1::TOOL_CHOICE_NONE, ""},
      {"required", v1::TOOL_CHOICE_REQUIRED, ""},
      {{{"type", "function"}, {"function", {{"name", "get_time"}}}},
       v1::TOOL_CHOICE_FUNCTION,
       "get_time"},
  };
  for (const Case& c : cases) {
    Json body = Json::parse(kBody);
    body["tool_choice"] = c.choice;
    absl::StatusOr<CompletionRequest> r = Parse(body);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->request.chat().tool_choice(), c.want) << c.choice;
    EXPECT_EQ(r->request.chat().tool_choice_function(), c.function) << c.choice;
    EXPECT_EQ(r->request.chat().tools_size(), 2) << "applied when the request is built";
  }
  Json body = Json::parse(kBody);
  for (const bool parallel : {true, false}) {
    body["parallel_tool_calls"] = parallel;
    absl::StatusOr<CompletionRequest> r = Parse(body);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->request.chat().has_parallel_tool_calls());
    EXPECT_EQ(r->request.chat().parallel_tool_calls(), parallel);
  }
  // A tool_choice status from building the request names its field.
  const absl::Status built =
      InBodyTerms(absl::InvalidArgumentError("tool_choice needs tools to choose from"));
  EXPECT_THAT(ErrorBody(built), HasSubstr(R"("param":"tool_choice")"));
  EXPECT_THAT(ErrorBody(InBodyTerms(absl::InvalidArgumentError("tool_choicer is not a field"))),
              HasSubstr(R"("param":null)"));
  // The chat's paths of a tool and a call, as the body's.
  const struct {
    const char* built;
    const char* said;
    const char* param;  // null: none
  } paths[] = {
      {"tools[1].name \"f\" names a function already offered",
       "tools[1].function.name \"f\" names a function already offered", "tools[1].function.name"},
      {"tools[12].parameters must be a JSON object",
       "tools[12].function.parameters must be a JSON object", "tools[12].function.parameters"},
      {"messages[3].tool_calls[0].name must be 1-64 of [A-Za-z0-9_-]",
       "messages[3].tool_calls[0].function.name must be 1-64 of [A-Za-z0-9_-]",
       "messages[3].tool_calls[0].function.name"},
      {"messages[3].tool_calls[1].arguments: not JSON",
       "messages[3].tool_calls[1].function.arguments: not JSON",
       "messages[3].tool_calls[1].function.arguments"},
      {"messages[3].tool_calls: only an assistant makes calls",
       "messages[3].tool_calls: only an assistant makes calls", nullptr},
      {"messages[3].role must be system, user or assistant",
       "messages[3].role must be system, user or assistant", nullptr},
      {"tools[x].name is odd", "tools[x].name is odd", nullptr},
      {"chat input has 129 tools, at most 128", "chat input has 129 tools, at most 128", nullptr},
  };
  for (const auto& p : paths) {
    const absl::Status said = InBodyTerms(absl::InvalidArgumentError(p.built));
    EXPECT_EQ(said.message(), p.said);
    EXPECT_THAT(ErrorBody(said),
                HasSubstr(p.param != nullptr ? absl::StrCat(R"("param":")", p.param, "\"")
                                             : std::string(R"("param":null)")))
        << p.built;
  }
}

TEST(OpenAiToolsTest, MalformedToolsAreRefusedByField) {
  struct Case {
    const char* what;
    const char* path;   // a JSON pointer into kBody
    Json value;         // null: the field is removed
    const char* field;  // in the message
  };
  const Case cases[] = {
      {"tools not a list", "/tools", Json::object(), "tools"},
      {"a tool of another kind", "/tools/1/type", "web_search", "tools[1].type"},
      {"a tool without a function", "/tools/0/function", Json(), "tools[0].function"},
      {"a function without a name", "/tools/0/function/name", Json(), "tools[0].function.name"},
      {"parameters not a schema", "/tools/0/function/parameters", "object",
       "tools[0].function.parameters"},
      {"a description not text", "/tools/0/function/description", 3,
       "tools[0].function.description"},
      {"strict not a boolean", "/tools/1/function/strict", "yes", "tools[1].function.strict"},
      {"a choice nobody knows", "/tool_choice", "always", "tool_choice"},
      {"a named choice without its name", "/tool_choice", {{"type", "function"}}, "tool_choice"},
      {"a named choice of no name",
       "/tool_choice",
       {{"type", "function"}, {"function", {{"name", ""}}}},
       "tool_choice"},
      {"parallel_tool_calls not a boolean", "/parallel_tool_calls", "no", "parallel_tool_calls"},
      {"calls not a list", "/messages/1/tool_calls", "f()", "messages[1].tool_calls"},
      {"a call of another kind", "/messages/1/tool_calls/0/type", "code",
       "messages[1].tool_calls[0].type"},
      {"a call without its function", "/messages/1/tool_calls/0/function", Json(),
       "messages[1].tool_calls[0].function"},
      {"a call without a name", "/messages/1/tool_calls/0/function/name", Json(),
       "messages[1].tool_calls[0].function.name"},
      {"arguments neither text nor object", "/messages/1/tool_calls/0/function/arguments", 7,
       "messages[1].tool_calls[0].function.arguments"},
      {"an id not text", "/messages/1/tool_calls/0/id", 1, "messages[1].tool_calls[0].id"},
      {"a tool_call_id not text", "/messages/2/tool_call_id", 1, "messages[2].tool_call_id"},
  };
  for (const Case& c : cases) {
    Json body = Json::parse(kBody);
    const Json::json_pointer at(c.path);
    if (c.value.is_null()) {
      body[at.parent_pointer()].erase(at.back());
    } else {
      body[at] = c.value;
    }
    absl::StatusOr<CompletionRequest> r = Parse(body);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.field)) << c.what;
  }
  // Tools the prompt leaves out are checked all the same.
  Json body = Json::parse(kBody);
  body["tool_choice"] = "none";
  body["tools"][1]["type"] = "web_search";
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("tools[1].type"));
}

}  // namespace
}  // namespace cohost::server::http
