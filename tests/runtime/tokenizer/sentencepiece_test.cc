// SentencePiece BPE: a tiny model trained with the sentencepiece library
// (tests/data/sentencepiece_bpe, scripts/make_sentencepiece_reference.py)
// read through LoadTokenizerSpecFromDirectory must encode exactly as
// sentencepiece does; plus hand-built specs for the merge order, byte
// fallback, <unk> and the decode conventions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "runtime/loader/gguf_reader.h"
#include "runtime/loader/model_loading.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

const std::string kDataDir = std::string(COHOST_SOURCE_DIR) + "/tests/data";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(SentencePieceReferenceTest, MatchesSentencePieceLibrary) {
  auto spec = LoadTokenizerSpecFromDirectory(kDataDir + "/sentencepiece_bpe");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, TokenizerKind::kSentencePiece);
  EXPECT_TRUE(spec->add_space_prefix);
  EXPECT_TRUE(spec->add_bos);
  const nlohmann::json ref = ReadJson(kDataDir + "/tokenizer_reference_sentencepiece.json");
  EXPECT_EQ(static_cast<int>(spec->tokens.size()), ref["vocab_size"].get<int>());
  EXPECT_EQ(spec->bos_id, ref["bos_id"].get<int>());
  EXPECT_EQ(spec->eos_id, ref["eos_id"].get<int>());
  EXPECT_EQ(spec->unk_id, ref["unk_id"].get<int>());
  auto tokenizer = Tokenizer::Create(*spec);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& t = **tokenizer;
  ASSERT_GE(ref["cases"].size(), 15u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    // sentencepiece's encode adds no BOS; "<s>" in text is plain text to it.
    const auto ids = t.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_THAT(*ids, ElementsAreArray(expected));
    EXPECT_EQ(t.Decode(expected), c["decoded"].get<std::string>());
    // With add_special the model's BOS comes first.
    const auto with_bos = t.Encode(text, true, false);
    ASSERT_TRUE(with_bos.ok());
    ASSERT_FALSE(with_bos->empty());
    EXPECT_EQ(with_bos->front(), t.bos_id());
    EXPECT_EQ(t.Decode(*with_bos), c["decoded"].get<std::string>());
  }
}

// llama.cpp's tokenization of text that special tokens split (a chat's
// turns), on the same vocabulary as a GGUF's: a vocab-only GGUF of the model
// above, and the ids llama-cpp-python gave
// (scripts/make_llamacpp_spm_reference.py). llama.cpp prefixes a space to
// each run of text after a special token.
TEST(SentencePieceReferenceTest, MatchesLlamaCppWithSpecialTokens) {
  absl::StatusOr<GgufFile> file = GgufFile::Open(kDataDir + "/sentencepiece_bpe/vocab.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<TokenizerSpec> spec = TokenizerFromGguf(*file, /*vocab_size=*/1 << 16);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto t = Tokenizer::Create(*spec);
  ASSERT_TRUE(t.ok()) << t.status();
  const nlohmann::json ref = ReadJson(kDataDir + "/llamacpp_spm_reference.json");
  ASSERT_GE(ref["cases"].size(), 20u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"];
    const bool add_bos = c["add_bos"];
    SCOPED_TRACE(absl::StrCat(text, add_bos ? " (with BOS)" : ""));
    const auto ids = (*t)->Encode(text, add_bos, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_THAT(*ids, ElementsAreArray(c["ids"].get<std::vector<int32_t>>()));
  }
}

// "<unk>" in a prompt is the unknown token (as llama.cpp has it, above), but
// inside a chat message it is the client's text, as a control token's
// spelling is.
TEST(SentencePieceReferenceTest, UnkIsTheUnknownTokenInAPromptAndTextInAMessage) {
  absl::StatusOr<GgufFile> file = GgufFile::Open(kDataDir + "/sentencepiece_bpe/vocab.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<TokenizerSpec> spec = TokenizerFromGguf(*file, /*vocab_size=*/1 << 16);
  ASSERT_TRUE(spec.ok()) << spec.status();
  spec->chat_template = "{{ '[INST] ' + message['content'] + ' [/INST]' }}";
  auto t = Tokenizer::Create(*spec);
  ASSERT_TRUE(t.ok()) << t.status();
  const int32_t unk = spec->unk_id;
  ASSERT_GE(unk, 0);
  EXPECT_THAT((*t)->Encode("a<unk>b", false, /*parse_special=*/true).value(),
              ::testing::Contains(unk));
  const auto chat = (*t)->EncodeChat({{"user", "a<unk>b"}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_THAT(*chat, ::testing::Not(::testing::Contains(unk)));
  EXPECT_EQ((*t)->Decode(*chat), "[INST] a<unk>b [/INST]");
}

// A hand-built SentencePiece vocabulary: byte pieces for a few bytes only.
TokenizerSpec TinySpec() {
  TokenizerSpec s;
  s.kind = TokenizerKind::kSentencePiece;
  auto add = [&s](std::string piece, float score, TokenType type = TokenType::kNormal) {
    s.tokens.push_back(std::move(piece));
    s.scores.push_back(score);
    s.token_types.push_back(type);
    return static_cast<int32_t>(s.tokens.size() - 1);
  };
  s.unk_id = add("<unk>", 0, TokenType::kUnknown);  // 0
  s.bos_id = add("<s>", 0, TokenType::kControl);    // 1
  s.eos_id = add("</s>", 0, TokenType::kControl);   // 2
  add("<0xE2>", 0, TokenType::kByte);               // 3
  add("<0x82>", 0, TokenType::kByte);               // 4
  add("<0xAC>", 0, TokenType::kByte);               // 5
  add("\xE2\x96\x81", -1);                          // 6 "▁"
  add("a", -1);                                     // 7
  add("b", -1);                                     // 8
  add("c", -1);                                     // 9
  add("ab", -3);                                    // 10
  add("bc", -2);                                    // 11: outscores "ab"
  add("\xE2\x96\x81"
      "a",
      -4);         // 12 "▁a"
  add("abc", -5);  // 13: any split may merge into it
  s.add_bos = true;
  s.add_space_prefix = true;
  return s;
}

TEST(SentencePieceTest, MergesByScoreOfMergedPiece) {
  auto t = Tokenizer::Create(TinySpec());
  ASSERT_TRUE(t.ok()) << t.status();
  // "▁abc": "bc" (-2) first, then "▁a"(-4) vs "abc"(-5 via a+bc): "▁a" wins,
  // leaving "▁a" + "bc".
  auto ids = (*t)->Encode("abc", /*add_special=*/false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(12, 11));
  ids = (*t)->Encode("abc");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(1, 12, 11));
  EXPECT_EQ((*t)->Decode(*ids), "abc");  // BOS skipped, prefix space stripped
  EXPECT_EQ((*t)->Decode(*ids, /*skip_special=*/false), "<s>abc");
}

TEST(SentencePieceTest, ByteFallbackAndUnknown) {
  auto t = Tokenizer::Create(TinySpec());
  ASSERT_TRUE(t.ok());
  // "€" is E2 82 AC: all three byte pieces exist. "é" (C3 A9) has none: <unk>
  // per missing byte.
  auto ids = (*t)->Encode("a\xE2\x82\xAC", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(12, 3, 4, 5));
  EXPECT_EQ((*t)->Decode(*ids), "a\xE2\x82\xAC");
  ids = (*t)->Encode("\xC3\xA9", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(6, 0, 0));
}

// A file without token types (a GGUF may leave them out): byte pieces are
// known by their text, as llama.cpp knows them, and byte fallback works.
TEST(SentencePieceTest, BytePiecesAreKnownByTheirTextWithoutTypes) {
  TokenizerSpec spec = TinySpec();
  spec.token_types.clear();
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  auto ids = (*t)->Encode("a\xE2\x82\xAC", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(12, 3, 4, 5));
  EXPECT_EQ((*t)->Decode(*ids), "a\xE2\x82\xAC");
}

TEST(SentencePieceTest, UnknownRunsFoldWithoutByteFallback) {
  TokenizerSpec spec = TinySpec();
  for (int i = 3; i <= 5; ++i) {  // turn the byte pieces into ordinary unused pieces
    spec.tokens[i] = absl::StrCat("x", i);
    spec.token_types[i] = TokenType::kUnused;
  }
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  const auto ids = (*t)->Encode("a\xC3\xA9\xC3\xA9 b", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(12, 0, 6, 8));
}

TEST(SentencePieceTest, SpacePrefixOnlyAtTextStart) {
  TokenizerSpec spec = TinySpec();
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  // After a special token the text is not at the start: no "▁" prefix.
  auto ids = (*t)->Encode("</s>a", false, /*parse_special=*/true);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(2, 7));
  spec.add_space_prefix = false;
  t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  ids = (*t)->Encode("a b", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(7, 6, 8));
  EXPECT_EQ((*t)->Decode(*ids), "a b");  // nothing stripped without a prefix
}

// llama.cpp's rule (a GGUF's tokenizer), and Hugging Face's legacy Llama
// tokenizers': each run of text after a special token gets the prefix too,
// so a chat's later turns ("</s><s>[INST]") encode as the model saw them.
TEST(SentencePieceTest, SpacePrefixAfterSpecialTokensWhereTheSpecSaysSo) {
  TokenizerSpec spec = TinySpec();
  spec.space_prefix_after_special = true;
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  auto ids = (*t)->Encode("a</s>a", false, /*parse_special=*/true);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(12, 2, 12)) << "\"▁a\" both times";
  ids = (*t)->Encode("a</s>a", false, /*parse_special=*/false);  // no specials: one run
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 12);
  // A GGUF's SentencePiece vocabulary says so (llama.cpp); a tokenizer.json
  // with Metaspace's prepend_scheme "first" does not.
}

TEST(SentencePieceTest, MismatchedScoresAreAnError) {
  TokenizerSpec spec = TinySpec();
  spec.scores.pop_back();
  const auto t = Tokenizer::Create(spec);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SentencePieceTest, ANaNScoreIsAnError) {
  TokenizerSpec spec = TinySpec();
  spec.scores[10] = std::nanf("");
  const auto t = Tokenizer::Create(spec);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(t.status().message()).find("token 10"), std::string::npos) << t.status();
}

// Merges, when the spec lists them, decide alone: a spec with merges needs no
// scores, and merges none of which applies merge nothing (scores were read
// then: from an empty list, a crash).
TEST(SentencePieceTest, MergesThatNeverApplyMergeNothingWithoutScores) {
  TokenizerSpec spec = TinySpec();
  spec.scores.clear();
  spec.merges = {"x y"};
  const auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  auto ids = (*t)->Encode("abc", /*add_special=*/false);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(6, 7, 8, 9)) << "\"▁\" \"a\" \"b\" \"c\"";
  spec.merges = {"b c", "a bc"};
  ids = (*Tokenizer::Create(spec))->Encode("abc", /*add_special=*/false);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(6, 13)) << "\"▁\" \"abc\", by the merges' order";
}

TEST(SentencePieceTest, BadModelFileIsAnError) {
  const std::string dir = ::testing::TempDir() + "/bad_spm";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.model") << "this is not a protobuf";
  const auto spec = LoadTokenizerSpecFromDirectory(dir);
  EXPECT_FALSE(spec.ok());
  EXPECT_FALSE(LoadTokenizerSpecFromDirectory(dir + "/missing").ok());
}

// A ModelProto of millions of tiny pieces (two bytes each on the wire:
// field 1, length 0) is refused before it is held as strings.
TEST(SentencePieceTest, AModelOfMillionsOfPiecesIsRefused) {
  const std::string dir = ::testing::TempDir() + "/many_spm";
  std::filesystem::create_directories(dir);
  std::string pieces;
  for (int i = 0; i < (1 << 20) + 1; ++i) pieces += std::string("\x0a\x00", 2);
  std::ofstream(dir + "/tokenizer.model", std::ios::binary | std::ios::trunc) << pieces;
  const auto spec = LoadTokenizerSpecFromDirectory(dir);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()),
              ::testing::HasSubstr("more than 1048576 pieces"));
}

// Every truncation of a real tokenizer.model is an error or a smaller valid
// model, never a crash (our own wire-format reader sees untrusted bytes).
TEST(SentencePieceTest, TruncatedModelFilesNeverCrash) {
  std::ifstream in(kDataDir + "/sentencepiece_bpe/tokenizer.model", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  const std::string dir = ::testing::TempDir() + "/truncated_spm";
  std::filesystem::create_directories(dir);
  int errors = 0;
  for (size_t n = 0; n < bytes.size(); n += 7) {
    std::ofstream(dir + "/tokenizer.model", std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(n));
    const auto spec = LoadTokenizerSpecFromDirectory(dir);
    if (!spec.ok()) ++errors;
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace cohost::runtime
