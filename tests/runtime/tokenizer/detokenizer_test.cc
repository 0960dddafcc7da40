// IncrementalDetokenizer: text deltas never split a UTF-8 sequence, invalid
// bytes become U+FFFD once they are known invalid, Flush empties the tail.
#include "runtime/tokenizer/detokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"
#include "tests/support/sentencepiece_spec.h"

namespace cohost::runtime {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

// Byte tokens 0..255, then "<eos>" (control, 256), then multi-byte tokens.
std::unique_ptr<Tokenizer> MakeTokenizer() {
  TokenizerSpec s;
  s.kind = TokenizerKind::kByteLevelBpe;
  for (int b = 0; b < 256; ++b) s.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
  s.tokens.push_back("<eos>");
  s.token_types.assign(s.tokens.size(), TokenType::kNormal);
  s.token_types[256] = TokenType::kControl;
  s.eos_id = 256;
  // 257: the last byte of U+1F600 plus "a" (a token ending a character and
  // starting the next text).
  s.tokens.push_back(ByteToUnicode(0x80) + "a");
  s.token_types.push_back(TokenType::kNormal);
  auto t = Tokenizer::Create(s);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(IncrementalDetokenizerTest, EmojiSplitOverByteTokensIsHeldBack) {
  auto t = MakeTokenizer();
  ASSERT_NE(t, nullptr);
  IncrementalDetokenizer d(*t);
  EXPECT_EQ(d.Push('h'), "h");
  EXPECT_EQ(d.Push(0xF0), "");
  EXPECT_EQ(d.Push(0x9F), "");
  EXPECT_EQ(d.Push(0x98), "");
  EXPECT_EQ(d.Push(257),
            "\xF0\x9F\x98\x80"
            "a");
  EXPECT_EQ(d.Flush(), "");
}

TEST(IncrementalDetokenizerTest, ZwjSequenceStreamsToTheSameText) {
  auto t = MakeTokenizer();
  ASSERT_NE(t, nullptr);
  const std::string text =
      "family: \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D"
      "\xF0\x9F\x91\xA7 ok \xC3\xA9";
  IncrementalDetokenizer d(*t);
  std::string streamed;
  for (unsigned char c : text) {
    const std::string delta = d.Push(c);
    EXPECT_TRUE(IsValidUtf8(delta));  // every delta is whole characters
    streamed += delta;
  }
  streamed += d.Flush();
  EXPECT_EQ(streamed, text);
}

TEST(IncrementalDetokenizerTest, InvalidBytesBecomeReplacementOnceKnown) {
  auto t = MakeTokenizer();
  ASSERT_NE(t, nullptr);
  IncrementalDetokenizer d(*t);
  EXPECT_EQ(d.Push(0xFF), kReplacement);  // never valid: at once
  EXPECT_EQ(d.Push(0xE2), "");            // could still be a character
  EXPECT_EQ(d.Push(0x82), "");
  EXPECT_EQ(d.Push('x'), std::string(kReplacement) + "x");  // now it is known bad
  EXPECT_EQ(d.Push(0xF0), "");
  EXPECT_EQ(d.Push(0x9F), "");
  EXPECT_EQ(d.Flush(), kReplacement);  // truncated tail: one U+FFFD
  EXPECT_EQ(d.Flush(), "");
}

TEST(IncrementalDetokenizerTest, SpecialTokensAndBadIds) {
  auto t = MakeTokenizer();
  ASSERT_NE(t, nullptr);
  IncrementalDetokenizer skipping(*t);
  EXPECT_EQ(skipping.Push(256), "");
  EXPECT_EQ(skipping.Push(-1), "");
  EXPECT_EQ(skipping.Push(100000), "");
  EXPECT_EQ(skipping.Push('a'), "a");
  IncrementalDetokenizer keeping(*t, /*skip_special=*/false);
  EXPECT_EQ(keeping.Push(256), "<eos>");
}

// A sampled unknown or unused token is no text where special tokens are skipped
// (as HF's skip_special_tokens, and llama.cpp's token_to_piece for unused ones),
// in the stream and in Decode alike.
TEST(IncrementalDetokenizerTest, TheUnknownTokenIsSkippedWithTheSpecialOnes) {
  TokenizerSpec spec = cohost::testing::ParisSentencePieceSpec();  // 0 is <unk>
  spec.tokens.push_back("<unused0>");                              // 4
  spec.scores.push_back(0);
  spec.token_types.push_back(TokenType::kUnused);
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  IncrementalDetokenizer d(**t);
  std::string text = d.Push(2);
  text += d.Push(0);
  text += d.Push(4);
  text += d.Push(3);
  EXPECT_EQ(text, "Paris is");
  EXPECT_EQ((*t)->Decode(std::vector<int32_t>{2, 0, 4, 3}), "Paris is");
  IncrementalDetokenizer keeping(**t, /*skip_special=*/false);
  EXPECT_EQ(keeping.Push(0), "<unk>");
  EXPECT_EQ(keeping.Push(4), "<unused0>");
}

TEST(IncrementalDetokenizerTest, SentencePieceDropsTheFirstPrefixSpace) {
  TokenizerSpec s;
  s.kind = TokenizerKind::kSentencePiece;
  s.tokens = {"<s>", "\xE2\x96\x81Hello", "\xE2\x96\x81world", "<0xC3>", "<0xA9>"};
  s.scores = {0, -1, -2, 0, 0};
  s.token_types = {TokenType::kControl, TokenType::kNormal, TokenType::kNormal, TokenType::kByte,
                   TokenType::kByte};
  s.bos_id = 0;
  auto t = Tokenizer::Create(s);
  ASSERT_TRUE(t.ok()) << t.status();
  IncrementalDetokenizer d(**t);
  EXPECT_EQ(d.Push(0), "");
  EXPECT_EQ(d.Push(1), "Hello");
  EXPECT_EQ(d.Push(2), " world");
  EXPECT_EQ(d.Push(3), "");
  EXPECT_EQ(d.Push(4), "\xC3\xA9");
  EXPECT_EQ((*t)->Decode(std::vector<int32_t>{0, 1, 2, 3, 4}), "Hello world\xC3\xA9");
}

// A SentencePiece space prefix: dropped on the first text token at the
// text's start (as Decode does), kept on a continuation (a completion after
// a prompt's text: " Paris", as llama.cpp's and vLLM's servers give).
TEST(IncrementalDetokenizerTest, TheSpacePrefixIsDroppedOnlyAtTheTextsStart) {
  const TokenizerSpec s = cohost::testing::ParisSentencePieceSpec();
  auto t = Tokenizer::Create(s);
  ASSERT_TRUE(t.ok()) << t.status();
  IncrementalDetokenizer from_start(**t);
  std::string text = from_start.Push(1);
  text += from_start.Push(2);
  text += from_start.Push(3);
  EXPECT_EQ(text, "Paris is");
  IncrementalDetokenizer continuing(**t, /*skip_special=*/true, /*at_text_start=*/false);
  text = continuing.Push(2);
  text += continuing.Push(3);
  EXPECT_EQ(text, " Paris is");
}

}  // namespace
}  // namespace cohost::runtime
