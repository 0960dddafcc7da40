// LoadModelFile on tiny GGUF models built by the test: config and tokenizer
// from metadata, every supported tensor type dequantized to known values, and
// llama.cpp's Q/K row permutation undone (Llama) or left alone (Qwen2).
#include "runtime/loader/model_file.h"

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/model_loading.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/runtime/loader/tiny_gguf_model.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

TEST(GgufModelTest, TinyLlamaLoads) {
  TinyModel m = MakeTinyModel();
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  LoadOptions options;
  options.progress = [&](uint64_t done, uint64_t total) { progress.push_back({done, total}); };
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build(), options);
  ASSERT_TRUE(mf.ok()) << mf.status();
  const ModelConfig& c = mf->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.name, "tiny");
  EXPECT_EQ(c.vocab_size, kVocab);  // from the token list
  EXPECT_EQ(c.hidden_size, kHidden);
  EXPECT_EQ(c.intermediate_size, kFfn);
  EXPECT_EQ(c.num_layers, 1);
  EXPECT_EQ(c.num_heads, kHeads);
  EXPECT_EQ(c.num_kv_heads, kKvHeads);
  EXPECT_EQ(c.head_dim, kHeadDim);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 500000.f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);

  const TokenizerSpec& t = mf->tokenizer;
  EXPECT_EQ(t.kind, TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t.pre_tokenizer, "llama-bpe");
  EXPECT_EQ(t.tokens.size(), 8u);
  EXPECT_EQ(t.tokens[5], "ab");
  EXPECT_THAT(t.merges, ElementsAre("a b"));
  EXPECT_EQ(t.token_types[3], TokenType::kNormal);
  EXPECT_EQ(t.token_types[7], TokenType::kControl);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_EQ(t.pad_id, -1);
  EXPECT_THAT(t.extra_eos_ids, ElementsAre(7, 0));  // <|eot_id|>, <|endoftext|>; not eos itself
  EXPECT_TRUE(t.add_bos);
  EXPECT_FALSE(t.add_eos);
  EXPECT_FALSE(t.add_space_prefix);
  EXPECT_EQ(t.chat_template, "{{ messages }}");

  ExpectTensorsMatch(*mf, m);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(m.tensor_bytes, m.tensor_bytes));
}

TEST(GgufModelTest, Qwen2KeepsRowOrderAndLoadsBiases) {
  TinyModel m = MakeTinyModel({.arch = "qwen2", .tied = true, .bias = true});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.architecture, "qwen2");
  EXPECT_TRUE(mf->config.tie_word_embeddings);
  EXPECT_TRUE(mf->config.attention_bias);
  EXPECT_FALSE(mf->tensors.contains("output.weight"));
  ExpectTensorsMatch(*mf, m);
}

TEST(GgufModelTest, Qwen3KeepsRowOrderAndLoadsItsHeadNorms) {
  TinyModel m = MakeTinyModel({.arch = "qwen3"});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.architecture, "qwen3");
  EXPECT_TRUE(mf->config.qk_norm());
  EXPECT_FALSE(mf->config.attention_bias);
  EXPECT_FALSE(mf->config.rope_adjacent_pairs);
  ExpectTensorsMatch(*mf, m);  // q and k rows as stored, the norms among them

  TinyModel without = MakeTinyModel({.arch = "qwen3"});
  std::erase_if(without.writer.tensors,
                [](const GgufWriter::Tensor& t) { return t.name == "blk.0.attn_k_norm.weight"; });
  mf = LoadBytes(without.writer.Build());
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(std::string(mf.status().message()), HasSubstr("blk.0.attn_k_norm.weight"));
}

// Each layer's experts merged in one tensor each of gate, up and down, as
// llama.cpp writes MoE models: read as each expert's own canonical tensors.
TEST(GgufModelTest, MergedExpertsLoadAsEachExpertsOwnTensors) {
  for (const std::string arch : {"qwen3moe", "llama"}) {
    SCOPED_TRACE(arch);
    TinyModel m = MakeTinyModel({.arch = arch, .experts = 3});
    absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
    ASSERT_TRUE(mf.ok()) << mf.status();
    const ModelConfig& c = mf->config;
    EXPECT_EQ(c.architecture, arch);
    EXPECT_TRUE(c.moe());
    EXPECT_EQ(c.num_experts, 3);
    EXPECT_EQ(c.num_experts_used, 2);
    EXPECT_EQ(c.expert_intermediate_size, kFfn);
    EXPECT_TRUE(c.norm_topk_prob);  // llama.cpp's routing for both
    EXPECT_EQ(c.qk_norm(), arch == "qwen3moe");
    EXPECT_FALSE(mf->tensors.contains("blk.0.ffn_gate.weight"));
    EXPECT_EQ(c.stored_types.at("blk.0.ffn_down.1.weight"), GgmlType::kQ4_1);
    ExpectTensorsMatch(*mf, m);  // the experts' slices, in the converter's order
  }
}

// Older Mixtral files hold each expert under its own name.
TEST(GgufModelTest, ExpertsUnderTheirOwnNamesLoad) {
  TinyModel m = MakeTinyModel({.arch = "llama", .experts = 3, .merged_experts = false});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.num_experts, 3);
  EXPECT_EQ(mf->config.stored_types.at("blk.0.ffn_up.2.weight"), GgmlType::kQ4_0);
  ExpectTensorsMatch(*mf, m);
}

TEST(GgufModelTest, LlamaBiasesArePermutedToo) {
  TinyModel m = MakeTinyModel({.arch = "llama", .tied = true, .bias = true});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  ExpectTensorsMatch(*mf, m);
}

TEST(GgufModelTest, ConfigOnlyLoad) {
  TinyModel m = MakeTinyModel();
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build(), ConfigOnly());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_TRUE(mf->tensors.empty());
  EXPECT_EQ(mf->config.hidden_size, kHidden);
}

TEST(GgufModelTest, MissingPathIsNotFound) {
  EXPECT_EQ(LoadModelFile(TempPath("nothing_here.gguf")).status().code(),
            absl::StatusCode::kNotFound);
}

// Replaces the value of metadata `key` (which must exist).

}  // namespace
}  // namespace cohost::runtime
