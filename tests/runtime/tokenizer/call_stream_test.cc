// Calls given out as the model writes them: where a call's JSON opens its
// arguments (call_stream.h), their compact text as it comes, and the
// streamed ToolCallSplitter, whose pieces join into the calls the whole
// split reads (for strings without escapes, which only the whole split
// writes again), however the output is cut into deltas.

#include "runtime/tokenizer/call_stream.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/tokenizer/json_rewrite.h"
#include "runtime/tokenizer/tool_call_split.h"

namespace cohost::runtime {
namespace {

using Parts = ToolCallSplitter::Parts;

TEST(CallOpeningTest, ItsNameAndWhereTheArgumentsStart) {
  const std::string text = "\n{ \"name\" :\"get_weather\",\n  \"arguments\": {\"city\"";
  std::string name;
  size_t arguments = 0;
  ASSERT_EQ(MatchCallOpening(text, &name, &arguments), CallOpening::kCall);
  EXPECT_EQ(name, "get_weather");
  EXPECT_EQ(text.substr(arguments), "{\"city\"");
  // Every prefix of the opening needs more.
  const size_t opening = arguments + 1;
  for (size_t n = 0; n < opening; ++n) {
    EXPECT_EQ(MatchCallOpening(text.substr(0, n), &name, &arguments), CallOpening::kMore) << n;
  }
  for (const char* other : {
           R"({"arguments": {}, "name": "f"})",        // another order: read whole
           R"({"name": "f", "arguments": "{}"})",      // the arguments' text
           R"({"name": "f\u0041", "arguments": {}})",  // a name with an escape
           R"({"name": "", "arguments": {}})",
           R"({"name": "f", "arguments": [1]})",
           R"(["name"])",
           "not json",
       }) {
    EXPECT_EQ(MatchCallOpening(other, &name, &arguments), CallOpening::kNone) << other;
  }
  // Whitespace without end is not waited on past the bound.
  const std::string spaces = "{\"name\": \"f\"" + std::string(kMaxCallOpeningBytes, ' ');
  EXPECT_EQ(MatchCallOpening(spaces, &name, &arguments), CallOpening::kNone);
}

TEST(ObjectCompactorTest, TheObjectsTextWithoutWhitespaceUpToItsEnd) {
  const std::string object =
      "{ \"a\" : [1, 2.50 ,{\"b\": \"x } ] \\\" \\\\\"}],\n\t\"c\": { } , \"d\": \"  \" }";
  const std::string after = "  } trailing";
  const std::optional<std::string> whole = RewriteJson(object, JsonStyle::kCompact);
  ASSERT_TRUE(whole);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    ObjectCompactor c;
    std::string out;
    const std::string text = object + after;
    size_t used = 0;
    for (size_t at = 0; at < text.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 6, text.size() - at);
      used += c.Feed(std::string_view(text).substr(at, n), &out);
      at += n;
    }
    EXPECT_TRUE(c.done());
    EXPECT_EQ(used, object.size()) << "it reads to the closing brace and no further";
    EXPECT_EQ(out, *whole);
  }
  ObjectCompactor open;
  std::string out;
  EXPECT_EQ(open.Feed("{\"a\": [", &out), 7u);
  EXPECT_FALSE(open.done());
  EXPECT_EQ(out, "{\"a\":[");
}

// The pieces of a streamed split, in order, with the content.
struct Streamed {
  std::string content;
  std::vector<ParsedToolCall> pieces;
};

// Feeds `text` in deltas of `step` bytes (0: whole) and finishes.
Streamed Split(ToolCallSplitter s, std::string_view text, size_t step) {
  Streamed all;
  const auto add = [&](Parts p) {
    all.content += p.content;
    for (ParsedToolCall& c : p.calls) all.pieces.push_back(std::move(c));
  };
  if (step == 0) step = text.size() + 1;
  for (size_t i = 0; i < text.size(); i += step) add(s.Push(text.substr(i, step)));
  add(s.Finish());
  return all;
}

// The calls the pieces make: a piece with an id begins one (the next
// index), and one without adds to the last begun's arguments (its index).
std::vector<ParsedToolCall> Joined(const std::vector<ParsedToolCall>& pieces) {
  std::vector<ParsedToolCall> calls;
  for (const ParsedToolCall& p : pieces) {
    if (!p.id.empty()) {
      EXPECT_EQ(p.index, static_cast<int>(calls.size()));
      calls.push_back(p);
      continue;
    }
    EXPECT_TRUE(p.name.empty());
    EXPECT_FALSE(calls.empty()) << "a further piece before any call";
    if (calls.empty()) continue;
    EXPECT_EQ(p.index, calls.back().index);
    calls.back().arguments += p.arguments;
  }
  return calls;
}

std::string Show(const std::vector<ParsedToolCall>& calls) {
  std::string out;
  for (const ParsedToolCall& c : calls) {
    out += std::to_string(c.index) + ":" + c.name + c.arguments + ";";
  }
  return out;
}

// Streamed and whole, `text` splits into the same content and calls, in
// deltas of any size.
void ExpectSameAsWhole(std::string_view text, bool forced = false, const std::string& name = "") {
  const auto make = [&](bool stream) {
    return forced ? ToolCallSplitter::Forced(name, stream) : ToolCallSplitter(stream);
  };
  const Streamed whole = Split(make(false), text, 0);
  for (size_t step : {0, 1, 2, 3, 5, 7, 11, 64}) {
    const Streamed streamed = Split(make(true), text, step);
    EXPECT_EQ(streamed.content, whole.content) << "'" << text << "' in deltas of " << step;
    EXPECT_EQ(Show(Joined(streamed.pieces)), Show(whole.pieces))
        << "'" << text << "' in deltas of " << step;
  }
}

constexpr char kCall[] =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": "
    "2.50}}\n</tool_call>";

TEST(StreamedCallsTest, JoinIntoTheCallsOfTheWholeSplit) {
  ExpectSameAsWhole(kCall);
  ExpectSameAsWhole(std::string("I will look.\n\n") + kCall + "\n" + kCall + "\nDone.");
  ExpectSameAsWhole(R"(<tool_call>{"name": "f", "arguments": {"s": "a </tool b } ] \" {"}}
</tool_call>)");
  // Blocks read whole, streamed too: another key order, the arguments' text,
  // no arguments, not a call.
  ExpectSameAsWhole(R"(<tool_call>{"arguments": {"z": 1}, "name": "f"}</tool_call>)");
  ExpectSameAsWhole(R"(<tool_call>{"name": "f", "arguments": "{\"b\": 2}"}</tool_call>)");
  ExpectSameAsWhole(R"(<tool_call>{"name": "now"}</tool_call> x)");
  // Calls read whole and streamed ones are numbered in one sequence.
  ExpectSameAsWhole(R"(<tool_call>{"arguments": {}, "name": "a"}</tool_call>
<tool_call>{"name": "b", "arguments": {"y": 2}}</tool_call><tool_call>{"name": "c"}</tool_call>)");
  ExpectSameAsWhole("a <tool_call>not json</tool_call> b");
  ExpectSameAsWhole("<tool_calls> and <tool_c");
  // A model that stops after its JSON.
  ExpectSameAsWhole("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n");
  // An opening longer than the bound is no opening, in one delta too (a
  // block cut off is then text).
  ExpectSameAsWhole("<tool_call>{\"name\": \"f\"" + std::string(600, ' ') +
                    ", \"arguments\": {\"x\": 1");
  ExpectSameAsWhole("<tool_call>{\"name\": \"f\"" + std::string(600, ' ') +
                    ", \"arguments\": {\"x\": 1}}</tool_call>");
  // Forced calls.
  ExpectSameAsWhole(R"( {"city": "Paris", "when": [null, 1]} )", /*forced=*/true, "f");
  ExpectSameAsWhole(R"({"name": "g", "arguments": {"b": 1, "a": 2}})", /*forced=*/true);
  ExpectSameAsWhole(R"({"arguments": {"b": 1}, "name": "g"})", /*forced=*/true);
}

TEST(StreamedCallsTest, ACallGoesOutBeforeItsBlockCloses) {
  ToolCallSplitter s(/*stream=*/true);
  Parts p = s.Push("Let me look.\n<tool_call>\n{\"name\": \"get_we");
  EXPECT_EQ(p.content, "Let me look.");
  EXPECT_TRUE(p.calls.empty());
  p = s.Push("ather\", \"arguments\": {\"city\": \"Pa");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].id.substr(0, 5), "call_");
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, "{\"city\":\"Pa");
  p = s.Push("ris\"}}\n</tool");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].id, "");
  EXPECT_EQ(p.calls[0].arguments, "ris\"}");
  p = s.Push("_call>\n\nDone");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "Done") << "the whitespace after a call is dropped";
  EXPECT_EQ(s.Finish().content, "");

  // A forced function's arguments go out from the first byte.
  ToolCallSplitter forced = ToolCallSplitter::Forced("f", /*stream=*/true);
  p = forced.Push("{\"a\": ");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "f");
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":");
}

TEST(StreamedCallsTest, ABlockIsACallOnceItsArgumentsOpen) {
  // Cut off by max_tokens: the call with the arguments written so far (the
  // whole split keeps such a block as text).
  Streamed cut = Split(ToolCallSplitter(true),
                       "ok <tool_call>{\"name\": \"f\", \"arguments\": "
                       "{\"x\": [1, 2</tool_",
                       3);
  EXPECT_EQ(cut.content, "ok");
  EXPECT_EQ(Show(Joined(cut.pieces)), "0:f{\"x\":[1,2</tool_;");
  // Before the arguments open, it is still text.
  cut = Split(ToolCallSplitter(true), "ok <tool_call>{\"name\": \"f\", \"argu", 2);
  EXPECT_EQ(cut.content, "ok <tool_call>{\"name\": \"f\", \"argu");
  EXPECT_TRUE(cut.pieces.empty());
  // What the block holds after the arguments is text, but for whitespace
  // and the closing brace.
  const Streamed extra =
      Split(ToolCallSplitter(true),
            "<tool_call>{\"name\": \"f\", \"arguments\": {}, \"x\": 1}</tool_call>", 4);
  EXPECT_EQ(Show(Joined(extra.pieces)), "0:f{};");
  EXPECT_EQ(extra.content, ", \"x\": 1}");
  // A closing tag cut off after the arguments is the block's end.
  const Streamed closing =
      Split(ToolCallSplitter(true), "<tool_call>{\"name\": \"f\", \"arguments\": {}}\n</tool_c", 5);
  EXPECT_EQ(Show(Joined(closing.pieces)), "0:f{};");
  EXPECT_EQ(closing.content, "");
  // Escapes stay as written (the whole split writes them again).
  const Streamed escaped =
      Split(ToolCallSplitter(true), R"(<tool_call>{"name": "f", "arguments": {"c": "\u00e9"}})", 3);
  EXPECT_EQ(Show(Joined(escaped.pieces)), R"(0:f{"c":"\u00e9"};)");
  // A forced call the output ends inside.
  cut = Split(ToolCallSplitter::Forced("f", true), "{\"city\": \"Par", 1);
  EXPECT_EQ(cut.content, "");
  EXPECT_EQ(Show(Joined(cut.pieces)), "0:f{\"city\":\"Par;");
}

}  // namespace
}  // namespace cohost::runtime
