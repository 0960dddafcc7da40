// Loads the default model (SmolLM2-135M-Instruct Q4_1 GGUF) and checks its
// config, tokenizer and tensors; the weight values, including the undone
// Q/K row permutation, are compared with rows transformers produced from the
// same file (scripts/dump_gguf_reference.py -> tests/data/smollm2_q4_1_rows.txt).
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/model_file.h"

namespace cohost::runtime {
namespace {

using ::testing::Contains;

class DefaultModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LoadOptions options;
    options.progress = [](uint64_t done, uint64_t total) { progress_->push_back({done, total}); };
    progress_ = new std::vector<std::pair<uint64_t, uint64_t>>();
    absl::StatusOr<ModelFile> mf = LoadModelFile(COHOST_DEFAULT_MODEL, options);
    ASSERT_TRUE(mf.ok()) << mf.status();
    model_ = new ModelFile(*std::move(mf));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete progress_;
    model_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(model_, nullptr) << "the default model did not load"; }

  static ModelFile* model_;
  static std::vector<std::pair<uint64_t, uint64_t>>* progress_;
};

ModelFile* DefaultModelTest::model_ = nullptr;
std::vector<std::pair<uint64_t, uint64_t>>* DefaultModelTest::progress_ = nullptr;

TEST_F(DefaultModelTest, Config) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 100000.f);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.Validate().ok());
}

TEST_F(DefaultModelTest, Tokenizer) {
  const TokenizerSpec& t = model_->tokenizer;
  EXPECT_EQ(t.kind, TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t.pre_tokenizer, "smollm");
  EXPECT_EQ(t.tokens.size(), 49152u);
  EXPECT_EQ(t.token_types.size(), 49152u);
  EXPECT_TRUE(t.scores.empty());
  EXPECT_EQ(t.merges.size(), 48900u);
  EXPECT_EQ(t.merges[0], "Ġ t");
  EXPECT_EQ(t.tokens[1], "<|im_start|>");
  EXPECT_EQ(t.tokens[2], "<|im_end|>");
  EXPECT_EQ(t.token_types[0], TokenType::kControl);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_EQ(t.pad_id, 2);
  EXPECT_THAT(t.extra_eos_ids, Contains(0));  // <|endoftext|>
  EXPECT_THAT(t.extra_eos_ids, ::testing::Not(Contains(2)));
  EXPECT_FALSE(t.add_bos);
  EXPECT_FALSE(t.add_eos);
  EXPECT_FALSE(t.add_space_prefix);
  EXPECT_THAT(t.chat_template, ::testing::HasSubstr("<|im_start|>"));
}

TEST_F(DefaultModelTest, TensorShapes) {
  EXPECT_EQ(model_->tensors.size(), 2u + 30u * 9u);  // no output.weight: tied
  EXPECT_FALSE(model_->tensors.contains("output.weight"));
  const std::pair<const char*, std::vector<int64_t>> shapes[] = {
      {"token_embd.weight", {49152, 576}},    {"output_norm.weight", {576}},
      {"blk.0.attn_q.weight", {576, 576}},    {"blk.0.attn_k.weight", {192, 576}},
      {"blk.29.attn_v.weight", {192, 576}},   {"blk.7.attn_output.weight", {576, 576}},
      {"blk.3.ffn_gate.weight", {1536, 576}}, {"blk.3.ffn_down.weight", {576, 1536}},
      {"blk.29.ffn_norm.weight", {576}},
  };
  for (const auto& [name, shape] : shapes) {
    auto it = model_->tensors.find(name);
    ASSERT_NE(it, model_->tensors.end()) << name;
    EXPECT_EQ(it->second.shape, shape) << name;
    EXPECT_EQ(static_cast<int64_t>(it->second.data.size()), it->second.numel()) << name;
  }
}

TEST_F(DefaultModelTest, ValuesMatchTransformersIncludingQkOrder) {
  std::ifstream in(std::string(COHOST_SOURCE_DIR) + "/tests/data/smollm2_q4_1_rows.txt");
  ASSERT_TRUE(in.good());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    int64_t row, start, n;
    ASSERT_TRUE(ls >> name >> row >> start >> n) << line;
    auto it = model_->tensors.find(name);
    ASSERT_NE(it, model_->tensors.end()) << name;
    const HostTensor& t = it->second;
    const int64_t cols = t.shape.back();
    const int64_t base = row < 0 ? 0 : row * cols;
    for (int64_t k = 0; k < n; ++k) {
      float want;
      ASSERT_TRUE(ls >> want) << line;
      const float got = t.data[static_cast<size_t>(base + start + k)];
      EXPECT_NEAR(got, want, 1e-6f * std::max(1.f, std::abs(want)))
          << name << " row " << row << " col " << start + k;
    }
    ++lines;
  }
  EXPECT_GE(lines, 60);
}

TEST_F(DefaultModelTest, ProgressReachesTheTotal) {
  ASSERT_FALSE(progress_->empty());
  uint64_t last = 0;
  for (auto [done, total] : *progress_) {
    EXPECT_GE(done, last);
    EXPECT_LE(done, total);
    last = done;
  }
  EXPECT_EQ(progress_->back().first, progress_->back().second);
  EXPECT_GT(progress_->back().second, 90u << 20);  // ~98 MB of weights
}

TEST(DefaultModelMetadataTest, ConfigOnlyLoadSkipsTensors) {
  LoadOptions options;
  options.load_tensors = false;
  absl::StatusOr<ModelFile> mf = LoadModelFile(COHOST_DEFAULT_MODEL, options);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_TRUE(mf->tensors.empty());
  EXPECT_EQ(mf->config.num_layers, 30);
  EXPECT_EQ(mf->tokenizer.tokens.size(), 49152u);
}

}  // namespace
}  // namespace cohost::runtime
