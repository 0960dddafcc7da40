// Byte-level BPE on hand-built vocabularies: merge order, special tokens,
// BOS/EOS, invalid input, the pre-tokenizer families, and UTF-8 helpers.
#include "runtime/tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/special_token_trie.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;

// The 256 byte tokens (id = byte value), then `extra`, with `merges`.
TokenizerSpec ByteLevelSpec(const std::vector<std::string>& extra,
                            const std::vector<std::string>& merges, std::string pre = "gpt2") {
  TokenizerSpec s;
  s.kind = TokenizerKind::kByteLevelBpe;
  s.pre_tokenizer = std::move(pre);
  for (int b = 0; b < 256; ++b) s.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
  for (const std::string& t : extra) s.tokens.push_back(t);
  s.merges = merges;
  s.token_types.assign(s.tokens.size(), TokenType::kNormal);
  return s;
}

std::vector<int32_t> EncodeOk(const Tokenizer& t, std::string_view text, bool add_special = true,
                              bool parse_special = true) {
  auto ids = t.Encode(text, add_special, parse_special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(ByteLevelBpeTest, LowerRankMergesFirst) {
  // 256: "ab", 257: "bc"
  auto t1 = Tokenizer::Create(ByteLevelSpec({"ab", "bc"}, {"b c", "a b"}));
  ASSERT_TRUE(t1.ok()) << t1.status();
  EXPECT_THAT(EncodeOk(**t1, "abc"), ElementsAre('a', 257));
  auto t2 = Tokenizer::Create(ByteLevelSpec({"ab", "bc"}, {"a b", "b c"}));
  ASSERT_TRUE(t2.ok());
  EXPECT_THAT(EncodeOk(**t2, "abc"), ElementsAre(256, 'c'));
}

// The word cache lives as long as the model and fills from clients' text:
// only short words (as Hugging Face's tokenizers) are kept, so that distinct
// long words cannot fill it with gigabytes; long words encode the same.
TEST(ByteLevelBpeTest, OnlyShortWordsAreCached) {
  const TokenizerSpec spec = ByteLevelSpec({"ab"}, {"a b"});
  auto bpe = ByteLevelBpe::Create(spec, spec.token_types);
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  std::vector<int32_t> ids;
  (*bpe)->EncodeWord("abab", &ids);
  EXPECT_EQ((*bpe)->cached_words(), 1u);
  std::string word;
  for (size_t i = 0; i < ByteLevelBpe::kMaxCachedWordBytes / 2; ++i) word += "ab";
  ids.clear();
  (*bpe)->EncodeWord(word, &ids);
  EXPECT_EQ(ids, std::vector<int32_t>(word.size() / 2, 256)) << "\"ab\" each";
  EXPECT_EQ((*bpe)->cached_words(), 1u) << "a word of 256 bytes is not kept";
  ids.clear();
  (*bpe)->EncodeWord(word.substr(0, 254), &ids);
  EXPECT_EQ((*bpe)->cached_words(), 2u);
}

TEST(ByteLevelBpeTest, EqualRanksMergeLeftmostFirst) {
  // 256: "aa", 257: "aaaa"
  auto t = Tokenizer::Create(ByteLevelSpec({"aa", "aaaa"}, {"a a", "aa aa"}));
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(EncodeOk(**t, "aaa"), ElementsAre(256, 'a'));
  EXPECT_THAT(EncodeOk(**t, "aaaaa"), ElementsAre(257, 'a'));
  EXPECT_THAT(EncodeOk(**t, "aaaaaaa"), ElementsAre(257, 256, 'a'));
}

TEST(ByteLevelBpeTest, SpacesAndNonAsciiUseTheByteAlphabet) {
  // "Ġw" is " w" in GPT-2's alphabet; "Ã©" is "é" (C3 A9).
  auto t = Tokenizer::Create(
      ByteLevelSpec({"\xC4\xA0w", "\xC3\x83\xC2\xA9"}, {"\xC4\xA0 w", "\xC3\x83 \xC2\xA9"}));
  ASSERT_TRUE(t.ok());
  const auto ids = EncodeOk(**t, "a w\xC3\xA9");
  EXPECT_THAT(ids, ElementsAre('a', 256, 257));
  EXPECT_EQ((*t)->Decode(ids), "a w\xC3\xA9");
  EXPECT_EQ((*t)->TokenBytes(256), " w");
  EXPECT_EQ((*t)->TokenBytes(257), "\xC3\xA9");
  EXPECT_EQ((*t)->TokenBytes(0xC3), "\xC3");  // half a character
}

TEST(ByteLevelBpeTest, SpecialTokensLongestMatchAndParseSpecialOff) {
  TokenizerSpec spec = ByteLevelSpec({"<|x|>", "<|x|>y", "<s>", "</s>"}, {});
  spec.token_types[256] = TokenType::kControl;
  spec.token_types[257] = TokenType::kUserDefined;
  spec.token_types[258] = TokenType::kControl;
  spec.token_types[259] = TokenType::kControl;
  spec.bos_id = 258;
  spec.eos_id = 259;
  spec.add_bos = true;
  spec.add_eos = true;
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(EncodeOk(**t, "a<|x|>yb<|x|>", false), ElementsAre('a', 257, 'b', 256));
  EXPECT_THAT(EncodeOk(**t, "<|x|>", true), ElementsAre(258, 256, 259));
  // parse_special off: the same text is plain bytes.
  const auto plain = EncodeOk(**t, "<|x|>", false, false);
  EXPECT_THAT(plain, ElementsAre('<', '|', 'x', '|', '>'));
  EXPECT_TRUE((*t)->IsSpecial(256));
  EXPECT_TRUE((*t)->IsSpecial(257));
  EXPECT_FALSE((*t)->IsSpecial('a'));
  // skip_special drops control tokens only; user-defined text stays.
  const std::vector<int32_t> ids = {258, 'a', 256, 257, 259};
  EXPECT_EQ((*t)->Decode(ids, true), "a<|x|>y");
  EXPECT_EQ((*t)->Decode(ids, false), "<s>a<|x|><|x|>y</s>");
  EXPECT_TRUE((*t)->IsEndOfGeneration(259));
  EXPECT_FALSE((*t)->IsEndOfGeneration(258));
}

TEST(SpecialTokenTrieTest, EveryTokenSpelledAtTheStartShortestFirst) {
  SpecialTokenTrie trie;
  trie.Add("<|x|>", 1, /*control=*/true);
  trie.Add("<|x|>y", 2, false);
  trie.Add("<|", 3, true);
  trie.Add("<|x|>", 4, true);  // a second control spelling of 1's: the first keeps it
  trie.Add("a", 5, false);
  trie.Add("a", 6, true);  // a control twin of 5's: both are offered, the higher id first
  std::vector<std::pair<int32_t, size_t>> found;
  const auto collect = [&](std::string_view text) {
    found.clear();
    trie.ForEachPrefix(text, [&](int32_t id, size_t length) { found.push_back({id, length}); });
    return found;
  };
  using P = std::pair<int32_t, size_t>;
  EXPECT_THAT(collect("<|x|>yz"), ElementsAre(P{3, 2}, P{1, 5}, P{2, 6}));
  EXPECT_THAT(collect("<|x|"), ElementsAre(P{3, 2}));
  EXPECT_THAT(collect("a<|"), ElementsAre(P{6, 1}, P{5, 1}));
  EXPECT_THAT(collect("b<|x|>"), ElementsAre());
  EXPECT_THAT(collect(""), ElementsAre());
}

TEST(ByteLevelBpeTest, EmptyTextGivesOnlyRequestedSpecials) {
  TokenizerSpec spec = ByteLevelSpec({"<s>"}, {});
  spec.token_types[256] = TokenType::kControl;
  spec.bos_id = 256;
  spec.add_bos = true;
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(EncodeOk(**t, ""), ElementsAre(256));
  EXPECT_TRUE(EncodeOk(**t, "", false).empty());
}

TEST(ByteLevelBpeTest, InvalidUtf8IsInvalidArgument) {
  auto t = Tokenizer::Create(ByteLevelSpec({}, {}));
  ASSERT_TRUE(t.ok());
  for (const std::string& bad :
       {std::string("\x80"), std::string("ok\xC0\xAF"), std::string("\xF4\x90\x80\x80"),
        std::string("\xED\xBF\xBF"), std::string("\xE2\x82")}) {
    const auto ids = (*t)->Encode(bad);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE((*t)->Encode(std::string("nul\0inside", 10)).ok());
}

TEST(ByteLevelBpeTest, OutOfRangeIdsAreSkipped) {
  auto t = Tokenizer::Create(ByteLevelSpec({}, {}));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->Decode(std::vector<int32_t>{-5, 'h', 256, 1 << 30, 'i', INT32_MIN}), "hi");
  EXPECT_EQ((*t)->TokenBytes(-1), "");
  EXPECT_EQ((*t)->TokenBytes(9999), "");
  EXPECT_FALSE((*t)->IsSpecial(-1));
  EXPECT_FALSE((*t)->IsEndOfGeneration(1 << 20));
}

TEST(ByteLevelBpeTest, BadSpecsAreErrors) {
  EXPECT_EQ(Tokenizer::Create(ByteLevelSpec({}, {}, "no-such-family")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::Create(TokenizerSpec{}).ok());  // empty vocabulary
  TokenizerSpec spec = ByteLevelSpec({}, {"nospace"});
  EXPECT_FALSE(Tokenizer::Create(spec).ok());
  spec = ByteLevelSpec({}, {});
  spec.eos_id = 300;
  EXPECT_FALSE(Tokenizer::Create(spec).ok());
  spec = ByteLevelSpec({}, {});
  spec.add_bos = true;  // without a bos id
  EXPECT_FALSE(Tokenizer::Create(spec).ok());
  spec = ByteLevelSpec({}, {});
  spec.token_types.pop_back();
  EXPECT_FALSE(Tokenizer::Create(spec).ok());
}

TEST(ByteLevelBpeTest, LongWordsMergeInNearLinearTime) {
  // 256: "aa", 257: "aaaa", 258: "aaaaaaaa"
  auto t =
      Tokenizer::Create(ByteLevelSpec({"aa", "aaaa", "aaaaaaaa"}, {"a a", "aa aa", "aaaa aaaa"}));
  ASSERT_TRUE(t.ok());
  const std::string word(200000, 'a');
  const auto start = std::chrono::steady_clock::now();
  const auto ids = EncodeOk(**t, word);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(ids.size(), 200000u / 8);
  for (int32_t id : ids) ASSERT_EQ(id, 258);
  EXPECT_LT(ms, 2000.0);  // quadratic rescans would take minutes
}

std::vector<std::string> SplitWith(std::string_view family, std::string_view text) {
  auto pre = PreTokenizer::Create(family);
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  auto pieces = (*pre)->Split(text);
  EXPECT_TRUE(pieces.ok()) << pieces.status();
  if (!pieces.ok()) return {};
  return {pieces->begin(), pieces->end()};
}

TEST(PreTokenizerTest, Gpt2) {
  EXPECT_THAT(SplitWith("gpt2", "Hello world's  123 abc\n\n"),
              ElementsAre("Hello", " world", "'s", " ", " 123", " abc", "\n\n"));
  EXPECT_THAT(SplitWith("gpt2", "I'M a\tb"), ElementsAre("I", "'", "M", " a", "\t", "b"));
  // U+0085 and U+3000 are White_Space: split like spaces.
  EXPECT_THAT(SplitWith("gpt2", "a\u3000\u3000b\xC2\x85"),
              ElementsAre("a", "\u3000", "\u3000", "b", "\xC2\x85"));
}

TEST(PreTokenizerTest, SmolLmSplitsDigitsFirst) {
  EXPECT_THAT(SplitWith("smollm", "a  12 b"), ElementsAre("a", "  ", "1", "2", " b"));
  EXPECT_THAT(SplitWith("gpt2", "a  12 b"), ElementsAre("a", " ", " 12", " b"));
  EXPECT_THAT(SplitWith("smollm", "x٣4"), ElementsAre("x", "٣", "4"));  // any \p{N}
}

TEST(PreTokenizerTest, Llama3AndQwen2) {
  EXPECT_THAT(SplitWith("llama3", "1234567 abc I'M\n\nok"),
              ElementsAre("123", "456", "7", " abc", " I", "'M", "\n\n", "ok"));
  EXPECT_THAT(SplitWith("llama-bpe", "(x)!!"), ElementsAre("(x", ")!!"));
  EXPECT_THAT(SplitWith("qwen2", "12345 ab"), ElementsAre("1", "2", "3", "4", "5", " ab"));
}

TEST(PreTokenizerTest, PiecesCoverTheText) {
  const std::string text =
      "  mixed 日本語 😀👍🏽 text\t\t123,456.78 'll 'LL \r\n\r\n end  ";
  for (std::string_view family : {"gpt2", "smollm", "llama3", "qwen2"}) {
    std::string joined;
    for (const std::string& p : SplitWith(family, text)) {
      EXPECT_FALSE(p.empty());
      EXPECT_TRUE(IsValidUtf8(p)) << family;
      joined += p;
    }
    EXPECT_EQ(joined, text) << family;
  }
  auto pre = PreTokenizer::Create("gpt2");
  ASSERT_TRUE(pre.ok());
  EXPECT_FALSE((*pre)->Split("\xFF").ok());
}

TEST(PreTokenizerTest, HugeRunsDoNotFail) {
  // Long runs stress regex backtracking (JIT stack, interpreter heap limits).
  for (std::string_view family : {"gpt2", "smollm", "llama3", "qwen2"}) {
    auto pre = PreTokenizer::Create(family);
    ASSERT_TRUE(pre.ok());
    for (const std::string& text :
         {std::string(1 << 20, ' ') + "x", std::string(1 << 20, 'a'), std::string(1 << 20, '\n'),
          std::string(1 << 20, '!') + " ", std::string(1 << 18, '7')}) {
      const auto pieces = (*pre)->Split(text);
      ASSERT_TRUE(pieces.ok()) << family << ": " << pieces.status();
      size_t total = 0;
      for (std::string_view p : *pieces) total += p.size();
      EXPECT_EQ(total, text.size()) << family;
    }
  }
}

TEST(UnicodeTest, ValidationAndRepair) {
  EXPECT_TRUE(IsValidUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("ab\xFF"), 2u);
  // Maximal subparts: "\xE2\x82" is one U+FFFD, a lone "\xFF" another.
  EXPECT_EQ(SanitizeUtf8("a\xE2\x82z\xFF"), "a\xEF\xBF\xBDz\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  std::string out;
  EXPECT_EQ(ConsumeCompleteUtf8("ok\xF0\x9F", &out), 2u);
  EXPECT_EQ(out, "ok");
  for (int b = 0; b < 256; ++b) {
    uint32_t cp = 0;
    const std::string& s = ByteToUnicode(static_cast<uint8_t>(b));
    ASSERT_EQ(DecodeUtf8(s, 0, &cp), s.size());
    EXPECT_EQ(UnicodeToByte(cp), b);
  }
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(UnicodeToByte(0x4E00), -1);
}

}  // namespace
}  // namespace cohost::runtime
