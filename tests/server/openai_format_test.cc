// /v1/completions' logprobs as OpenAI clients read them: text_offset counts
// characters of the text, and top_logprobs has one key per shown text.

#include "server/http/openai_format.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

ShownToken Token(std::string text, std::vector<ShownLogprob> top = {}) {
  return ShownToken{{std::move(text), -0.5f}, std::move(top)};
}

Json CompletionLogprobs(const std::vector<ShownToken>& tokens, const std::string& text) {
  ResponseHeader h;
  h.id = "cmpl-1";
  h.model = "m";
  h.endpoint = Endpoint::kCompletions;
  ChoiceResult c;
  c.text = text;
  c.logprobs = tokens;
  return Json::parse(CompletionBody(h, {c}, {}))["choices"][0]["logprobs"];
}

TEST(OpenAiFormatTest, TextOffsetCountsCharactersAsPythonSlicesThem) {
  // "é" is two bytes, one character; "caf" + "é" + " au" + " lait".
  const std::vector<ShownToken> tokens = {Token("caf"), Token("\xC3\xA9"), Token(" au"),
                                          Token(" lait")};
  const Json lp = CompletionLogprobs(tokens, "caf\xC3\xA9 au lait");
  EXPECT_EQ(lp["text_offset"], Json::parse("[0, 3, 4, 7]"));  // bytes gave [0, 3, 5, 8]
  EXPECT_EQ(TextOffsetAfter(tokens, {}).chars, 12);           // the text's length in characters
}

TEST(OpenAiFormatTest, ACharacterSplitOverTokensCountsAtItsFirstByte) {
  // "é" as two byte tokens, then "x": the second byte token finishes the
  // character that starts at 0, and "x" is at 1.
  const std::vector<ShownToken> tokens = {Token("\xC3"), Token("\xA9"), Token("x")};
  const Json lp = CompletionLogprobs(tokens, "\xC3\xA9x");
  EXPECT_EQ(lp["text_offset"], Json::parse("[0, 1, 1]"));
}

// A byte that continues no character (the text shows U+FFFD, one
// character) counts; it counted nothing, so every later offset was one short.
TEST(OpenAiFormatTest, AStrayContinuationByteIsOneCharacter) {
  const std::vector<ShownToken> tokens = {Token("a"), Token("\xA9"), Token("b"), Token("\xC3"),
                                          Token("c")};
  const Json lp = CompletionLogprobs(tokens,
                                     "a\xEF\xBF\xBD"
                                     "b\xEF\xBF\xBD"
                                     "c");
  EXPECT_EQ(lp["text_offset"], Json::parse("[0, 1, 2, 3, 4]"));
  // Across chunks, a character's continuation in the next chunk still
  // continues it.
  TextOffset split = TextOffsetAfter({Token("\xE2\x82")}, {});
  EXPECT_EQ(TextOffsetAfter({Token("\xAC"), Token("x")}, split).chars, 2);
}

TEST(OpenAiFormatTest, TopLogprobsKeepOneEntryPerShownText) {
  // Two lone lead bytes both show as U+FFFD: they were two JSON keys of the
  // same name, of which a client's parser keeps the last.
  const std::vector<ShownToken> tokens = {
      Token("a", {{"a", -0.1f}, {"\xE4", -1.0f}, {"\xE5", -3.0f}, {"b", -4.0f}})};
  const std::string body = [&] {
    ResponseHeader h;
    h.endpoint = Endpoint::kCompletions;
    ChoiceResult c;
    c.text = "a";
    c.logprobs = tokens;
    return CompletionBody(h, {c}, {});
  }();
  EXPECT_EQ(body.find("\xEF\xBF\xBD\":-1"), body.rfind("\xEF\xBF\xBD\":"))
      << "one U+FFFD key: " << body;
  const Json top = Json::parse(body)["choices"][0]["logprobs"]["top_logprobs"][0];
  ASSERT_EQ(top.size(), 3u) << top.dump();
  EXPECT_DOUBLE_EQ(top["\xEF\xBF\xBD"].get<double>(), -1.0) << "the likelier one";
  EXPECT_DOUBLE_EQ(top["b"].get<double>(), -4.0);
}

// What the whole-reply bound adds up is what the body takes: the text
// exactly as escaped, and each logprobs entry at most its estimate, in
// chat's layout (the larger) with tokens that escape the most.
TEST(OpenAiFormatTest, TheWholeReplysSizeCountsAreTheBodysOwn) {
  for (const std::string& text : {std::string("plain words"), std::string("q\"b\\s\n\t"),
                                  std::string("\x01\x1f ctl"), std::string("caf\xC3\xA9")}) {
    EXPECT_EQ(JsonTextBytes(text), Json(text).dump().size() - 2) << text;
  }
  const std::vector<std::string> tokens = {"a", " the", "\x01\x02\x03", "\"\"", "\xE4"};
  for (const float logprob : {-0.5f, -0.1f, -1.1920929e-07f, -17.123456f})
    for (const std::string& t : tokens) {
      SCOPED_TRACE(logprob);
      ResponseHeader h;
      h.endpoint = Endpoint::kChatCompletions;
      const ShownToken token{{t, logprob}, {}};
      ChoiceResult one{"", runtime::FinishReason::kStop, std::vector<ShownToken>{token}};
      ChoiceResult none{"", runtime::FinishReason::kStop, std::vector<ShownToken>{}};
      const size_t with = CompletionBody(h, {one}, {}).size();
      const size_t without = CompletionBody(h, {none}, {}).size();
      EXPECT_LE(with - without, LogprobEntryBytes(t.size())) << t.size() << " bytes";
      ChoiceResult alt{"", runtime::FinishReason::kStop,
                       std::vector<ShownToken>{ShownToken{{t, logprob}, {{t, logprob}}}}};
      EXPECT_LE(CompletionBody(h, {alt}, {}).size() - with, LogprobEntryBytes(t.size()));
    }
}

}  // namespace
}  // namespace cohost::server::http
