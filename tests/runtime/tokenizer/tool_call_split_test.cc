// The text/calls split of a tool-calling model's answer: the same parts
// however the output is cut into deltas; blocks that are not calls kept as
// text; the whitespace around calls dropped; a forced call's arguments.
// And JSON written again in its keys' order (json_rewrite.h), which the
// calls' arguments are.

#include "runtime/tokenizer/tool_call_split.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/tokenizer/json_rewrite.h"

namespace cohost::runtime {
namespace {

using Parts = ToolCallSplitter::Parts;

std::string Show(const std::vector<ParsedToolCall>& calls) {
  std::string out;
  for (const ParsedToolCall& c : calls) out += c.name + c.arguments + ";";
  return out;
}

// Feeds `text` in deltas of `step` bytes (0: whole) and finishes.
Parts Split(ToolCallSplitter s, std::string_view text, size_t step) {
  Parts all;
  auto add = [&](Parts p) {
    all.content += p.content;
    for (ParsedToolCall& c : p.calls) all.calls.push_back(std::move(c));
  };
  if (step == 0) step = text.size() + 1;
  for (size_t i = 0; i < text.size(); i += step) add(s.Push(text.substr(i, step)));
  add(s.Finish());
  return all;
}

// `calls`: each call's name and arguments, then ";".
void ExpectSplit(std::string_view text, std::string_view content, std::string_view calls,
                 const ToolCallSplitter& splitter = ToolCallSplitter()) {
  for (size_t step : {0, 1, 2, 3, 5, 7, 11}) {
    const Parts p = Split(splitter, text, step);
    EXPECT_EQ(p.content, content) << "'" << text << "' in deltas of " << step;
    EXPECT_EQ(Show(p.calls), calls) << "'" << text << "' in deltas of " << step;
  }
}

constexpr char kCall[] =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": "
    "2.50}}\n</tool_call>";
constexpr char kShown[] = "get_weather{\"city\":\"Paris\",\"days\":2.50};";

TEST(ToolCallSplitterTest, QwensCallsAndTheTextAroundThem) {
  ExpectSplit(kCall, "", kShown);
  ExpectSplit(std::string("I will look.\n\n") + kCall + "\n" + kCall + "\n", "I will look.",
              std::string(kShown) + kShown);
  // Text after a call is content too; the whitespace next to calls is not.
  ExpectSplit(std::string(kCall) + "\n\nDone.  \n", "Done.  \n", kShown);
  ExpectSplit("No calls here.\n", "No calls here.\n", "");
  // Keys stay in the model's order, numbers as it wrote them.
  ExpectSplit(
      R"(<tool_call>{"arguments": {"z": 1, "a": [1e5, -0.0, {}]}, "name": "f"}</tool_call>)", "",
      R"(f{"z":1,"a":[1e5,-0.0,{}]};)");
  // No arguments reads as none; their text, as OpenAI's field holds it, is read.
  ExpectSplit(R"(<tool_call>{"name": "now"}</tool_call>)", "", "now{};");
  ExpectSplit(R"(<tool_call>{"name": "f", "arguments": "{\"b\": 2, \"a\": 1}"}</tool_call>)", "",
              R"(f{"b":2,"a":1};)");
}

TEST(ToolCallSplitterTest, BlocksThatAreNotCallsStayText) {
  for (const char* block : {
           "<tool_call>not json</tool_call>",
           R"(<tool_call>{"arguments": {}}</tool_call>)",
           R"(<tool_call>{"name": 3, "arguments": {}}</tool_call>)",
           R"(<tool_call>{"name": "", "arguments": {}}</tool_call>)",
           R"(<tool_call>{"name": "f", "arguments": [1]}</tool_call>)",
           R"(<tool_call>{"name": "f", "arguments": "[1]"}</tool_call>)",
           R"(<tool_call>{"name": "f", "arguments": "{\"a\": 1, \"a\": 2}"}</tool_call>)",
           R"(<tool_call>{"name": "f", "name": "g", "arguments": {}}</tool_call>)",
           R"(<tool_call>["f"]</tool_call>)",
       }) {
    ExpectSplit(std::string("a\n") + block + "\nb", std::string("a\n") + block + "\nb", "");
  }
  // One bad block does not take the good ones with it.
  ExpectSplit(std::string(kCall) + "\n<tool_call>{oops</tool_call>", "<tool_call>{oops</tool_call>",
              kShown);
  // Tags' look-alikes are text.
  ExpectSplit("<tool_calls> and <tool_c", "<tool_calls> and <tool_c", "");
  ExpectSplit("a </tool_call> b", "a </tool_call> b", "");
}

TEST(ToolCallSplitterTest, AnOutputThatEndsInsideABlock) {
  // A model that stops after its JSON made its call.
  ExpectSplit(R"(<tool_call>
{"name": "f", "arguments": {"x": 1}}
)",
              "", R"(f{"x":1};)");
  // One cut off by max_tokens is text.
  ExpectSplit("ok <tool_call>\n{\"name\": \"f\", \"argu",
              "ok <tool_call>\n{\"name\": \"f\", \"argu", "");
}

TEST(ToolCallSplitterTest, AForcedCallIsTheWholeOutput) {
  ExpectSplit(R"( {"city": "Paris", "when": null} )", "", R"(f{"city":"Paris","when":null};)",
              ToolCallSplitter::Forced("f"));
  ExpectSplit(R"({"city": "Par)", R"({"city": "Par)", "", ToolCallSplitter::Forced("f"));
  ExpectSplit("[1]", "[1]", "", ToolCallSplitter::Forced("f"));
  // Unnamed: a call's own JSON.
  ExpectSplit(R"({"name": "g", "arguments": {"b": 1, "a": 2}})", "", R"(g{"b":1,"a":2};)",
              ToolCallSplitter::Forced(""));
  ExpectSplit(R"({"arguments": {}})", R"({"arguments": {}})", "", ToolCallSplitter::Forced(""));
}

TEST(ToolCallSplitterTest, HeldTextIsGivenOutAsSoonAsItSettles) {
  ToolCallSplitter s;
  EXPECT_EQ(s.Push("Hi <tool_").content, "Hi");
  EXPECT_EQ(s.Push("x").content, " <tool_x");
  Parts p = s.Push(std::string(" ") + kCall);
  EXPECT_EQ(p.content, "");
  EXPECT_EQ(Show(p.calls), kShown) << "a call goes out once its block closes";
  // Whitespace after a call is dropped.
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(s.Push("  ").content.empty());
  EXPECT_EQ(s.Push("x").content, "x");
  // A long run of whitespace is held (a call may follow it), each delta read
  // once: this would take minutes were the run read again at each one.
  for (int i = 0; i < 200000; ++i) EXPECT_TRUE(s.Push("  ").content.empty());
  EXPECT_EQ(s.Push("y").content, std::string(400000, ' ') + "y");
}

TEST(JsonRewriteTest, CompactKeepsOrderAndNumbers) {
  EXPECT_EQ(RewriteJson(R"( { "b" : 1 , "a" : [ true , null , "x\"y\n\u0001é" ] , "c" : 1.50E3 } )",
                        JsonStyle::kCompact),
            "{\"b\":1,\"a\":[true,null,\"x\\\"y\\n\\u0001é\"],\"c\":1.50E3}");
  EXPECT_EQ(RewriteJson("1 2", JsonStyle::kCompact), std::nullopt);
  EXPECT_EQ(RewriteJson("{", JsonStyle::kCompact), std::nullopt);
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(RewriteJson(deep, JsonStyle::kCompact), std::nullopt);
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(RewriteJson(ok, JsonStyle::kCompact), ok);
}

TEST(JsonRewriteTest, ChosenValuesWithTheirPaths) {
  const std::string body =
      R"({"tools": [{"function": {"parameters": {"z": 1, "a": {"y": [2, 1]}}}},)"
      R"( {"function": {"name": "g"}}, {"function": {"parameters": {"k": "v"}}}],)"
      R"( "parameters": {"not": "this"}})";
  std::vector<std::string> taken;
  EXPECT_TRUE(RewriteJsonValues(
      body, JsonStyle::kPython,
      [](JsonPath p) {
        return p.size() == 3 && p[0].key == "tools" && p[1].index >= 0 && p[2].key == "function";
      },
      [&](JsonPath p, std::string text) {
        taken.push_back(std::to_string(p[1].index) + " " + text);
      }));
  EXPECT_EQ(taken, (std::vector<std::string>{
                       R"(0 {"parameters": {"z": 1, "a": {"y": [2, 1]}}})",
                       R"(1 {"name": "g"})",
                       R"(2 {"parameters": {"k": "v"}})",
                   }));
  taken.clear();
  EXPECT_TRUE(RewriteJsonValues(
      body, JsonStyle::kCompact,
      [](JsonPath p) { return p.size() == 4 && p[3].key == "parameters"; },
      [&](JsonPath p, std::string text) {
        taken.push_back(std::to_string(p[1].index) + " " + text);
      }));
  EXPECT_EQ(taken, (std::vector<std::string>{R"(0 {"z":1,"a":{"y":[2,1]}})", R"(2 {"k":"v"})"}));
  // A taken container's path holds its keys once the levels inside it came
  // and went (they once moved the keys the path viewed).
  taken.clear();
  const std::string deep = R"({"messages": [{"a": {"b": {"c": {"d": {"e": [1]}}}}, "z": 7}]})";
  EXPECT_TRUE(RewriteJsonValues(
      deep, JsonStyle::kCompact, [](JsonPath p) { return p.size() == 3 && p[2].key == "a"; },
      [&](JsonPath p, std::string text) {
        taken.push_back(absl::StrCat(std::string(p[0].key), " ", p[1].index, " ",
                                     std::string(p[2].key), " ", text));
      }));
  EXPECT_EQ(taken, std::vector<std::string>{R"(messages 0 a {"b":{"c":{"d":{"e":[1]}}}})"});
  EXPECT_FALSE(RewriteJsonValues(
      "[1,", JsonStyle::kCompact, [](JsonPath) { return true; }, [](JsonPath, std::string) {}));
}

}  // namespace
}  // namespace cohost::runtime
