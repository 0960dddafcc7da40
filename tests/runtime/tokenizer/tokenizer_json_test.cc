// LoadTokenizerSpecFromDirectory on small handwritten Hugging Face tokenizer
// directories (tests/data/tokenizer_json_*). Expected ids were checked with
// HF `tokenizers` (Tokenizer.from_file(...).encode) on the same files.
#include "runtime/tokenizer/tokenizer_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;

const std::string kDataDir = std::string(COHOST_SOURCE_DIR) + "/tests/data";

std::unique_ptr<Tokenizer> Load(const std::string& dir, TokenizerSpec* spec_out = nullptr) {
  auto spec = LoadTokenizerSpecFromDirectory(dir);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  if (spec_out != nullptr) *spec_out = *spec;
  auto t = Tokenizer::Create(*spec);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::vector<int32_t> Ids(const Tokenizer& t, std::string_view text, bool add_special = false) {
  auto ids = t.Encode(text, add_special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(TokenizerJsonTest, ByteLevelDirectory) {
  TokenizerSpec spec;
  auto t = Load(kDataDir + "/tokenizer_json_bytelevel", &spec);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(spec.kind, TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(spec.pre_tokenizer, "smollm");  // Digits + ByteLevel
  EXPECT_EQ(spec.tokens.size(), 27u);
  EXPECT_EQ(spec.merges.size(), 11u);
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_FALSE(spec.add_bos);
  EXPECT_THAT(spec.extra_eos_ids, ElementsAre(0));  // from generation_config.json
  EXPECT_THAT(Ids(*t, "hello world\n12"), ElementsAre(16, 21, 22, 11, 12));
  EXPECT_THAT(Ids(*t, "<|im_start|>hello<|im_end|>"), ElementsAre(1, 16, 2));
  EXPECT_THAT(Ids(*t, "hello  world"), ElementsAre(16, 7, 21));
  EXPECT_THAT(Ids(*t, "\xC3\xA9hello"), ElementsAre(26, 16));
  EXPECT_THAT(Ids(*t, "2hello1"), ElementsAre(12, 16, 11));
  EXPECT_EQ(t->Decode(Ids(*t, "hello world\n12")), "hello world\n12");
  EXPECT_TRUE(t->IsEndOfGeneration(0));
  EXPECT_TRUE(t->IsEndOfGeneration(2));
  const auto chat = t->ApplyChatTemplate({{"user", "hello"}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(*chat,
            "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
            "<|im_start|>assistant\n");
}

// Qwen2's shape with its NFC normalizer: text that is not in NFC
// (decomposed accents, Hangul jamo, a compatibility ideograph) encodes as
// Hugging Face `tokenizers` encodes it (scripts/make_nfc_tokenizer_reference.py),
// each run between added tokens normalized on its own.
TEST(TokenizerJsonTest, TheNfcNormalizerMatchesHuggingFace) {
  TokenizerSpec spec;
  auto t = Load(kDataDir + "/tokenizer_json_nfc", &spec);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(spec.pre_tokenizer, "qwen2");
  EXPECT_TRUE(spec.normalize_nfc);
  std::ifstream in(kDataDir + "/tokenizer_reference_nfc.json");
  const nlohmann::json reference = nlohmann::json::parse(in);
  ASSERT_GE(reference["cases"].size(), 10u);
  for (const nlohmann::json& c : reference["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(Ids(*t, text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
  // Without the normalizer the decomposed form is other tokens.
  spec.normalize_nfc = false;
  const std::unique_ptr<Tokenizer> raw = Tokenizer::Create(spec).value();
  EXPECT_NE(Ids(*raw, "cafe\u0301"), Ids(*t, "cafe\u0301"));
  EXPECT_EQ(Ids(*raw, "caf\u00e9"), Ids(*t, "caf\u00e9"));
}

TEST(TokenizerJsonTest, SentencePieceConvertedDirectory) {
  TokenizerSpec spec;
  auto t = Load(kDataDir + "/tokenizer_json_spm", &spec);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(spec.kind, TokenizerKind::kSentencePiece);
  EXPECT_TRUE(spec.add_space_prefix);
  EXPECT_TRUE(spec.add_bos);  // from the TemplateProcessing post-processor
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.unk_id, 0);
  EXPECT_THAT(Ids(*t, "abc", true), ElementsAre(1, 10, 12));
  EXPECT_THAT(Ids(*t, "ab c", true), ElementsAre(1, 13, 6, 9));
  EXPECT_THAT(Ids(*t, "a\xC3\xA9\n", true), ElementsAre(1, 10, 3, 4, 5));
  EXPECT_THAT(Ids(*t, "  abc", true), ElementsAre(1, 14, 10, 12));
  EXPECT_THAT(Ids(*t, "zab", true), ElementsAre(1, 6, 0, 11));
  EXPECT_EQ(t->Decode(Ids(*t, "a\xC3\xA9\n", true)), "a\xC3\xA9\n");
  EXPECT_EQ(t->Decode(Ids(*t, "  abc", true)), "  abc");
  // Its Prepend normalizer runs on each run of text between added tokens.
  EXPECT_TRUE(spec.space_prefix_after_special);
  // Metaspace with prepend_scheme "first" prefixes the start alone.
  absl::StatusOr<TokenizerSpec> first = ParseTokenizerJson(
      R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0}},
          "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first"}})");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->add_space_prefix);
  EXPECT_FALSE(first->space_prefix_after_special);
}

TEST(TokenizerJsonTest, MalformedInputsAreErrors) {
  EXPECT_FALSE(ParseTokenizerJson("not json").ok());
  EXPECT_FALSE(ParseTokenizerJson("[1, 2]").ok());
  EXPECT_FALSE(ParseTokenizerJson(R"({"model": {"type": "BPE"}})").ok());  // no vocab
  EXPECT_FALSE(ParseTokenizerJson(R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})").ok());
  // One token whose id is near 2^24 would make a table of 16.7M tokens.
  const absl::StatusOr<TokenizerSpec> sparse = ParseTokenizerJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 16777215}}, "pre_tokenizer": {"type": "ByteLevel"}})");
  ASSERT_FALSE(sparse.ok());
  EXPECT_THAT(std::string(sparse.status().message()), ::testing::HasSubstr("nearly dense"));
  EXPECT_EQ(ParseTokenizerJson(R"({"model": {"type": "WordPiece", "vocab": {}}})").status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(ParseTokenizerJson(
                   R"({"model": {"type": "BPE", "vocab": {"a": -3}},
                       "pre_tokenizer": {"type": "ByteLevel"}})")
                   .ok());
  // A byte-level pre-tokenizer shape we do not know is refused, not guessed.
  EXPECT_EQ(ParseTokenizerJson(
                R"({"model": {"type": "BPE", "vocab": {"a": 0}},
                    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                      {"type": "Split", "pattern": {"Regex": "\\w+"}},
                      {"type": "ByteLevel", "use_regex": false}]}})")
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
  // So are settings that change how text splits: a space added before the
  // text, a Split that keeps the matches with a neighbour or the gaps.
  for (const char* pre : {
           R"({"type": "ByteLevel", "add_prefix_space": true})",
           R"({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "MergedWithPrevious"},
                {"type": "ByteLevel", "use_regex": false}]})",
           R"({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "x"}, "invert": true},
                {"type": "ByteLevel", "use_regex": false}]})",
       }) {
    EXPECT_EQ(ParseTokenizerJson(absl::StrCat(R"({"model": {"type": "BPE", "vocab": {"a": 0}},
                                                  "pre_tokenizer": )",
                                              pre, "}"))
                  .status()
                  .code(),
              absl::StatusCode::kUnimplemented)
        << pre;
  }
  EXPECT_EQ(ParseTokenizerJson(R"({"model": {"type": "BPE", "byte_fallback": true,
                                              "vocab": {"a": 0}},
                                    "normalizer": {"type": "NFKC"}})")
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
  // The refused node is named by its type, never dumped: a file may make it
  // megabytes.
  const absl::Status big =
      ParseTokenizerJson(absl::StrCat(
                             R"({"model": {"type": "BPE", "byte_fallback": true,
                                              "vocab": {"a": 0}},
                                    "normalizer": {"type": "NFKC", "junk": ")",
                             std::string(1 << 20, 'x'), R"("}})"))
          .status();
  EXPECT_EQ(big.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(big.message()), ::testing::HasSubstr("type \"NFKC\""));
  EXPECT_LT(big.message().size(), 200u) << big.message().substr(0, 300);
  TokenizerSpec spec;
  spec.tokens = {"a"};
  EXPECT_FALSE(ApplyTokenizerConfig(R"({"bos_token": "<nope>"})", &spec).ok());
  EXPECT_FALSE(ApplyTokenizerConfig(R"({"chat_template": 5, "add_bos_token": true})", &spec).ok());
  EXPECT_TRUE(ApplyGenerationConfig(R"({"eos_token_id": [0, 99, "x"]})", &spec).ok());
  EXPECT_THAT(spec.extra_eos_ids, ElementsAre(0));
}

// A value nested hundreds of thousands deep parses without recursion, but
// every copy of it recurses: the files are read bounded (at most 64 levels),
// and refused with why instead of overflowing the stack.
TEST(TokenizerJsonTest, DeepNestingIsRefusedNotACrash) {
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  const absl::StatusOr<TokenizerSpec> t = ParseTokenizerJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": )" + deep + "}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("nested deeper than 64"));
  TokenizerSpec spec;
  spec.tokens = {"a"};
  const absl::Status g = ApplyGenerationConfig(R"({"eos_token_id": )" + deep + "}", &spec);
  EXPECT_EQ(g.code(), absl::StatusCode::kInvalidArgument) << g;
  EXPECT_FALSE(ApplyTokenizerConfig(R"({"bos_token": )" + deep + "}", &spec).ok());
  // Duplicate keys stay as Hugging Face takes them: the last wins.
  const absl::StatusOr<TokenizerSpec> dup =
      ParseTokenizerJson(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "b": 1}},
                             "pre_tokenizer": {"type": "ByteLevel"}})");
  EXPECT_TRUE(dup.ok()) << dup.status();
}

TEST(TokenizerJsonTest, MissingDirectoryIsNotFound) {
  const auto spec = LoadTokenizerSpecFromDirectory(kDataDir + "/no_such_dir");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  const std::string dir = ::testing::TempDir() + "/bad_tokenizer_json";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": ";
  EXPECT_EQ(LoadTokenizerSpecFromDirectory(dir).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A SentencePiece model fine-tuned with ChatML's turn markers (OpenHermes on
// Mistral, say) has them in tokenizer.json's added tokens, past the pieces of
// its tokenizer.model. The .model's pieces and scores win; the added tokens
// come too, as HF's fast tokenizer has them. Before, they were dropped: the
// markers encoded as text, and a tokenizer_config naming one as EOS failed.
TEST(TokenizerJsonTest, AddedTokensOfTokenizerJsonJoinTheSentencePieceModel) {
  absl::StatusOr<TokenizerSpec> model =
      ReadSentencePieceModel(kDataDir + "/sentencepiece_bpe/tokenizer.model");
  ASSERT_TRUE(model.ok()) << model.status();
  const auto n = static_cast<int32_t>(model->tokens.size());
  nlohmann::json vocab = nlohmann::json::object();
  for (int32_t id = 0; id < n; ++id) vocab[model->tokens[id]] = id;
  vocab["zz"] = n + 2;  // an entry the .model lacks: no piece of it
  const nlohmann::json json = {
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", nlohmann::json::array()}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"prepend_scheme", "always"}}},
      {"added_tokens",
       {{{"id", n}, {"content", "<|im_end|>"}, {"special", true}},
        {{"id", n + 1}, {"content", "<|im_start|>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}},
        {{"id", n + 3}, {"content", "<tool>"}, {"special", false}}}}};
  const std::string dir = ::testing::TempDir() + "/spm_with_added_tokens";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDataDir + "/sentencepiece_bpe/tokenizer.model",
                             dir + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir + "/tokenizer.json") << json.dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "<|im_end|>"})";
  TokenizerSpec spec;
  auto t = Load(dir, &spec);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(spec.tokens.size(), static_cast<size_t>(n) + 4);
  ASSERT_EQ(spec.scores.size(), spec.tokens.size());
  EXPECT_TRUE(std::equal(model->scores.begin(), model->scores.end(), spec.scores.begin()))
      << "the pieces keep the model's scores";
  EXPECT_EQ(spec.token_types[n + 2], TokenType::kUnused);
  EXPECT_EQ(spec.tokens[n + 2], "");
  EXPECT_LE(spec.scores[n + 2], *std::min_element(model->scores.begin(), model->scores.end()));
  EXPECT_EQ(spec.token_types[n + 3], TokenType::kUserDefined);
  EXPECT_THAT(Ids(*t, "zz<tool>"), ::testing::AllOf(::testing::Not(::testing::Contains(n + 2)),
                                                    ::testing::Contains(n + 3)));
  EXPECT_EQ(spec.eos_id, n);
  EXPECT_THAT(Ids(*t, "<|im_start|>a<|im_end|>"),
              ::testing::AllOf(::testing::Contains(n + 1), ::testing::Contains(n)));
  EXPECT_TRUE(t->IsEndOfGeneration(n));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cohost::runtime
