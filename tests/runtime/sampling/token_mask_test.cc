#include "runtime/sampling/token_mask.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/sampling/json_schema.h"

namespace cohost::runtime {
namespace {

// What Allowed must say: each token's bytes fed to a copy of the state.
std::vector<uint8_t> OneByOne(const JsonGrammar& state, const std::vector<std::string>& vocab) {
  std::vector<uint8_t> allowed(vocab.size(), 0);
  for (size_t id = 0; id < vocab.size(); ++id) {
    JsonGrammar copy = state;
    allowed[id] = !vocab[id].empty() && copy.FeedAll(vocab[id]);
  }
  return allowed;
}

// A vocabulary like a BPE one: single bytes, and pieces of JSON, words, numbers
// and UTF-8 (some cut mid-character) that share prefixes; with empty ids.
std::vector<std::string> MakeVocab(std::mt19937& rng) {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string(1, static_cast<char>(b)));
  static const std::vector<std::string> kPieces = {
      "{",  "}",  "[",    "]",    "\"",   ":",    ",",    " ",        "\n",  "  ", "\\", "u",
      "00", "e9", "true", "fal",  "se",   "null", "name", "age",      "1",   "23", ".",  "5",
      "e",  "-",  "é",    "\xC3", "\xA9", "中",   "😀",    "\xF0\x9F", "abc", "\t", "0"};
  for (int i = 0; i < 3000; ++i) {
    std::string token;
    for (int n = 1 + rng() % 4; n > 0; --n) token += kPieces[rng() % kPieces.size()];
    vocab.push_back(token);
  }
  for (int i = 0; i < 50; ++i) vocab.push_back("");  // control tokens
  vocab.push_back(std::string(40, ' '));             // past the whitespace limit
  std::shuffle(vocab.begin(), vocab.end(), rng);
  return vocab;
}

TEST(TokenMaskTest, AllowsExactlyTheTokensTheGrammarTakesWhole) {
  std::mt19937 rng(11);
  const std::vector<std::string> vocab = MakeVocab(rng);
  const TokenMask mask(vocab);
  ASSERT_EQ(mask.vocab_size(), static_cast<int32_t>(vocab.size()));
  const std::string doc =
      "{\"name\": \"é中\\u00e9 x\", \"age\": -12.5e3, \"tags\": [true, false, null, {}],\n"
      "  \"nested\": {\"a\": [1, 2]}}";
  std::vector<uint8_t> allowed(vocab.size());
  JsonGrammar state;
  int checked = 0;
  for (size_t i = 0; i <= doc.size(); ++i) {
    const int32_t count = mask.Allowed(JsonSchema::AnyObject(), state, absl::MakeSpan(allowed));
    const std::vector<uint8_t> want = OneByOne(state, vocab);
    ASSERT_EQ(allowed, want) << "after " << doc.substr(0, i);
    ASSERT_EQ(count, std::count(want.begin(), want.end(), 1));
    ++checked;
    if (i < doc.size()) {
      ASSERT_TRUE(state.Feed(static_cast<uint8_t>(doc[i])));
    }
  }
  EXPECT_EQ(checked, static_cast<int>(doc.size()) + 1);
}

// Inside a length-limited string, states whose counts are a token or more
// from each limit share a mask key, and their masks are the same: the
// cache serves them (JsonConstraint keys its masks so).
TEST(TokenMaskTest, StatesThatShareAMaskKeyShareTheirMask) {
  std::mt19937 rng(5);
  const std::vector<std::string> vocab = MakeVocab(rng);
  const TokenMask mask(vocab);
  const uint32_t lookahead = static_cast<uint32_t>(mask.longest_token());
  ASSERT_GT(lookahead, 4u);
  absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(nlohmann::json::parse(
      R"({"type":"object","properties":{"s":{"type":"string","minLength":20,"maxLength":90}}})"));
  ASSERT_TRUE(schema.ok()) << schema.status();
  JsonGrammar state(*schema);
  ASSERT_TRUE(state.FeedAll(*schema, R"({"s":")"));
  std::vector<std::pair<JsonGrammar, std::vector<uint8_t>>> seen;
  int keys = 0;
  for (int chars = 0; chars <= 90; ++chars) {
    std::vector<uint8_t> allowed(vocab.size());
    mask.Allowed(*schema, state, absl::MakeSpan(allowed));
    const JsonGrammar key = state.MaskKey(*schema, lookahead);
    bool found = false;
    for (const auto& [k, a] : seen) {
      if (k == key) {
        EXPECT_EQ(a, allowed) << "after " << chars << " characters";
        found = true;
      }
    }
    if (!found) {
      seen.emplace_back(key, allowed);
      ++keys;
    }
    if (chars < 90) {
      ASSERT_TRUE(state.Feed(*schema, chars % 2 ? 'x' : 'y'));
    }
  }
  ASSERT_LT(20u, 90u - lookahead) << "a count between, a token from the maximum";
  // Each count below the minimum is its own key, and each within a token of
  // the maximum; all between share one.
  EXPECT_EQ(keys, 20 + 1 + static_cast<int>(lookahead) + 1);
}

TEST(TokenMaskTest, NeverAllowsEmptyTokensAndFollowsTheStructure) {
  const std::vector<std::string> vocab = {"", "{", "{\"", "}", "\"a\"", ":", " ", "1", "[", ""};
  const TokenMask mask(vocab);
  std::vector<uint8_t> allowed(vocab.size());
  EXPECT_EQ(mask.Allowed(JsonSchema::AnyObject(), JsonGrammar(), absl::MakeSpan(allowed)),
            3);  // "{", "{\"", " "
  EXPECT_EQ(allowed, (std::vector<uint8_t>{0, 1, 1, 0, 0, 0, 1, 0, 0, 0}));
  JsonGrammar state;
  ASSERT_TRUE(state.FeedAll("{\"a\""));
  mask.Allowed(JsonSchema::AnyObject(), state, absl::MakeSpan(allowed));
  EXPECT_EQ(allowed, (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 1, 0, 0, 0}));
  ASSERT_TRUE(state.FeedAll(":1}"));
  EXPECT_EQ(mask.Allowed(JsonSchema::AnyObject(), state, absl::MakeSpan(allowed)), 0)
      << "nothing after the document";
}

}  // namespace
}  // namespace cohost::runtime
