#include "runtime/sampling/json_grammar.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cohost::runtime {
namespace {

// Feeds every byte; false at the first refused.
bool Takes(std::string_view text) { return JsonGrammar().FeedAll(text); }

bool IsDocument(std::string_view text) {
  JsonGrammar g;
  return g.FeedAll(text) && g.Complete();
}

TEST(JsonGrammarTest, TakesObjectsByteByByteAndCompletesOnlyAtTheirEnd) {
  for (const std::string doc : {
           R"({})",
           R"( { "a" : 1 })",
           R"({"a":1,"b":[true,false,null,{"c":{}}],"d":"e"})",
           R"({"n":[0,-0,12,-3.25,1e9,2E-7,6.02e+23,-0.5e1]})",
           R"({"s":"tab\t quote\" slash\/ back\\ u\u00e9\uD83D\uDE00"})",
           R"({"s":"\ud83d\ude00\uDBFF\uDFFF\uD800\uDC00\uD7FF\uE000\ud7ff"})",
           "{\"utf8\":\"é 中 😀\"}",
           "{\n  \"pretty\": [\n    1,\n    2\n  ]\n}",
           R"({"a":[],"b":[[]],"c":{"d":[{}]}})",
       }) {
    JsonGrammar g;
    for (size_t i = 0; i < doc.size(); ++i) {
      ASSERT_FALSE(g.Complete()) << doc << " complete before byte " << i;
      ASSERT_TRUE(g.Feed(static_cast<uint8_t>(doc[i]))) << doc << " refused byte " << i;
    }
    EXPECT_TRUE(g.Complete()) << doc;
  }
}

TEST(JsonGrammarTest, RefusesWhatNoDocumentContinues) {
  for (const std::string bad : {
           R"([])",  // the top level is an object
           R"("a")",
           R"({"a":01})",  // no leading zeros
           R"({"a":1,})",  // no trailing comma
           R"({,})",
           R"({"a" 1})",
           R"({"a":tru})",
           R"({"a":1.})",
           R"({"a":-})",
           R"({"a":1e})",
           R"({"a":.5})",
           R"({"a":+1})",
           R"({}x)",
           R"({}{})",
           R"({"a":"\x"})",
           R"({"a":"\u12G4"})",
           R"({"a":[}])",
           R"({"a":1])",
           R"({a:1})",
           R"({'a':1})",
           "{\"a\":\"new\nline\"}",     // raw control character
           "{\"a\":\"\xC0\x80\"}",      // overlong
           "{\"a\":\"\xED\xA0\x80\"}",  // a surrogate in UTF-8
           "{\"a\":\"\xF5\x80\x80\x80\"}",
           "{\"a\":\"\xE2\x82\"}",  // cut short
           "{\"a\":\"\x80\"}",      // a stray continuation
       }) {
    EXPECT_FALSE(IsDocument(bad)) << bad;
  }
  // Lone surrogates are no character: a high one only with a low one after.
  for (const std::string bad : {
           R"({"a":"\uD83D"})",
           R"({"a":"\uDE00"})",
           R"({"a":"\uDE00\uD83D"})",
           R"({"a":"\uD83Dx"})",
           R"({"a":"\uD83D\n"})",
           R"({"a":"\uD83D\u0041"})",
           R"({"a":"\uD83D\uD83D\uDE00"})",
           R"({"a":"\udbff\ue000"})",
       }) {
    EXPECT_FALSE(IsDocument(bad)) << bad;
  }
  // A whole document's prefixes are not documents.
  EXPECT_TRUE(Takes(R"({"a":[1,2)"));
  EXPECT_FALSE(IsDocument(R"({"a":[1,2)"));
  EXPECT_FALSE(IsDocument(""));
}

TEST(JsonGrammarTest, ARefusedByteLeavesTheStateAsItWas) {
  for (const std::string prefix :
       {"{", R"({"a")", R"({"a":12)", R"({"a":1.5e)", R"({"a":"x\)", "{\"a\": ", "{\"a\":[ ", "{\n",
        R"({"a":"\u0)", R"({"a":"\uD8)", R"({"a":"\uD83D)", R"({"a":"\uD83D\u)", "{\"a\":\"\xE2",
        R"({"a":tr)", R"({"a":[1])"}) {
    JsonGrammar g;
    ASSERT_TRUE(g.FeedAll(prefix)) << prefix;
    for (int b = 0; b < 256; ++b) {
      JsonGrammar copy = g;
      if (!copy.Feed(static_cast<uint8_t>(b))) {
        EXPECT_TRUE(copy == g) << prefix << " byte " << b;
      }
    }
  }
}

// What a finished value leaves is nothing: the states after different
// values in the same place are equal (and so share a cached mask).
TEST(JsonGrammarTest, StatesDifferOnlyInWhatIsStillOpen) {
  std::vector<JsonGrammar> after;
  for (const char* prefix : {R"({"a":1,)", R"({"a":true,)", R"({"a":"x\u00e9",)",
                             R"({"b":-2.5e3 ,)", R"({"c":null,)", R"({"d":{"e":[1,{}]},)"}) {
    JsonGrammar g;
    ASSERT_TRUE(g.FeedAll(prefix)) << prefix;
    after.push_back(g);
  }
  for (const JsonGrammar& g : after) EXPECT_TRUE(g == after[0]);
}

TEST(JsonGrammarTest, ANumberEndsAtWhateverFollowsIt) {
  EXPECT_TRUE(IsDocument(R"({"a":1})"));
  EXPECT_TRUE(IsDocument(R"({"a":[1,2.5,3e2]})"));
  EXPECT_TRUE(IsDocument("{\"a\":-7 }"));
  EXPECT_FALSE(IsDocument("{\"a\":-7} "));
  EXPECT_TRUE(IsDocument("{\"a\":0\n,\"b\":0}"));
  EXPECT_FALSE(IsDocument(R"({"a":1"b"})"));
  EXPECT_FALSE(IsDocument(R"({"a":0x1})"));
}

TEST(JsonGrammarTest, NestingStopsAtItsLimit) {
  std::string deep = R"({"a":)";
  for (int i = 1; i < kMaxJsonDepth; ++i) deep += '[';
  JsonGrammar g;
  ASSERT_TRUE(g.FeedAll(deep));
  EXPECT_FALSE(g.Feed('[')) << "a container past the limit";
  EXPECT_FALSE(g.Feed('{'));
  EXPECT_TRUE(g.Feed('1'));
  for (int i = 1; i < kMaxJsonDepth; ++i) ASSERT_TRUE(g.Feed(']'));
  EXPECT_TRUE(g.Feed('}'));
  EXPECT_TRUE(g.Complete());
}

TEST(JsonGrammarTest, WhitespaceRunsAreBounded) {
  JsonGrammar g;
  ASSERT_TRUE(g.FeedAll("{\n"));
  for (int i = 0; i < kMaxJsonIndent; ++i) ASSERT_TRUE(g.Feed(' ')) << i;
  EXPECT_FALSE(g.Feed(' ')) << "an indent past the deepest pretty printing";
  EXPECT_FALSE(g.Feed('\t'));
  EXPECT_TRUE(g.Feed('\n')) << "a second newline starts another indent";
  EXPECT_TRUE(g.Feed(' '));
  EXPECT_FALSE(g.Feed('\n')) << "a third blank line";
  EXPECT_TRUE(g.Feed('}'));
  // Nothing after the document: only an end of generation may come.
  EXPECT_FALSE(g.Feed('\n'));
  EXPECT_FALSE(g.Feed(' '));
  EXPECT_TRUE(g.Complete());
  // Inside strings whitespace is text, without a limit.
  EXPECT_TRUE(IsDocument("{\"a\":\"" + std::string(100, ' ') + "\"}"));
}

// A random JSON value, up to `depth` levels, with strings drawn from an
// alphabet that has escapes, multi-byte UTF-8 and structural characters.
nlohmann::json RandomValue(std::mt19937& rng, int depth) {
  static const std::vector<std::string> kPieces = {"a", "Z",  " ", "\"", "\\", "/", "\n", "\t",
                                                   "é", "中", "😀", "{",  "]",  ":", ",",  "\x01"};
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  switch (depth > 0 ? pick(7) : pick(5)) {
    case 0:
      return nullptr;
    case 1:
      return pick(2) == 0;
    case 2:
      return pick(3) == 0 ? nlohmann::json(static_cast<int64_t>(rng()) - (1ll << 31))
                          : nlohmann::json(std::ldexp(static_cast<double>(rng()), pick(80) - 60));
    case 3:
    case 4: {
      std::string s;
      for (int n = pick(6); n > 0; --n) s += kPieces[pick(static_cast<int>(kPieces.size()))];
      return s;
    }
    case 5: {
      nlohmann::json a = nlohmann::json::array();
      for (int n = pick(4); n > 0; --n) a.push_back(RandomValue(rng, depth - 1));
      return a;
    }
    default: {
      nlohmann::json o = nlohmann::json::object();
      for (int n = pick(4); n > 0; --n) o[RandomValue(rng, 0).dump()] = RandomValue(rng, depth - 1);
      return o;
    }
  }
}

// Against nlohmann's parser: serialized random objects (compact and
// indented) are documents, and so is each of their one-byte mutations
// exactly when the reference parser takes it as an object.
TEST(JsonGrammarTest, AgreesWithAReferenceParserOnRandomDocumentsAndTheirMutations) {
  std::mt19937 rng(7);
  int mutants = 0, mutants_taken = 0;
  for (int round = 0; round < 400; ++round) {
    nlohmann::json object = nlohmann::json::object();
    for (int n = 1 + rng() % 4; n > 0; --n) object[absl::StrCat("k", n)] = RandomValue(rng, 4);
    const std::string doc = object.dump(round % 2 == 0 ? -1 : 2);
    ASSERT_TRUE(IsDocument(doc)) << doc;
    for (int m = 0; m < 20; ++m) {
      std::string mutant = doc;
      const size_t at = rng() % mutant.size();
      static const std::string kBytes = "{}[]:,\"\\ 0123456789-+.eEtrufalsn\x01\x80\xC3\xFF";
      switch (rng() % 3) {
        case 0:
          mutant[at] = kBytes[rng() % kBytes.size()];
          break;
        case 1:
          mutant.erase(at, 1);
          break;
        default:
          mutant.insert(at, 1, kBytes[rng() % kBytes.size()]);
      }
      // The reference also refuses numbers past a double's range, which
      // are JSON all the same.
      if (std::regex_search(mutant, std::regex("[eE][-+]?[0-9]{3}"))) continue;
      // ... and takes whitespace after the document, which this grammar
      // leaves to the end of generation.
      const bool reference = nlohmann::json::accept(mutant) &&
                             nlohmann::json::parse(mutant).is_object() && mutant.back() == '}';
      ++mutants;
      mutants_taken += reference;
      ASSERT_EQ(IsDocument(mutant), reference) << mutant;
    }
  }
  // The mutations test both answers.
  EXPECT_GT(mutants_taken, mutants / 20);
  EXPECT_LT(mutants_taken, mutants / 2);
}

}  // namespace
}  // namespace cohost::runtime
