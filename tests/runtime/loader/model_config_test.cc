// ModelConfig::Validate bounds, and undoing llama.cpp's Q/K row permutation.
#include "runtime/loader/model_config.h"

#include <cmath>
#include <functional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/model_loading.h"
#include "tests/runtime/loader/loader_test_util.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

TEST(RopePermutationTest, UndoesTheConverterPermutation) {
  const int64_t n_head = 3, d = 8, cols = 5;
  std::vector<float> hf(n_head * d * cols);
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
  std::vector<float> gguf = ConverterPermute(hf, n_head, cols);
  ASSERT_NE(gguf, hf);
  // Spot check the converter's layout: GGUF row 1 of head 0 is HF row d/2.
  EXPECT_EQ(gguf[1 * cols], hf[(d / 2) * cols]);
  ASSERT_TRUE(UndoLlamaRopePermutation(absl::MakeSpan(gguf), n_head * d, cols, n_head).ok());
  EXPECT_EQ(gguf, hf);
  // A bias (one column).
  std::vector<float> bias = {0, 1, 2, 3, 10, 11, 12, 13};
  std::vector<float> permuted = ConverterPermute(bias, 2, 1);
  EXPECT_THAT(permuted, ElementsAre(0, 2, 1, 3, 10, 12, 11, 13));
  ASSERT_TRUE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 8, 1, 2).ok());
  EXPECT_EQ(permuted, bias);
  EXPECT_FALSE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 8, 1, 3).ok());
  EXPECT_FALSE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 9, 1, 1).ok());
}

TEST(ModelConfigTest, Validate) {
  ModelConfig good;
  good.architecture = "llama";
  good.vocab_size = 100;
  good.hidden_size = 64;
  good.intermediate_size = 128;
  good.num_layers = 2;
  good.num_heads = 4;
  good.num_kv_heads = 2;
  good.head_dim = 16;
  good.max_position_embeddings = 256;
  ASSERT_TRUE(good.Validate().ok());
  const std::pair<std::function<void(ModelConfig&)>, const char*> bad[] = {
      {[](ModelConfig& c) { c.architecture = ""; }, "architecture"},
      {[](ModelConfig& c) { c.vocab_size = 0; }, "vocab_size"},
      {[](ModelConfig& c) { c.vocab_size = (1 << 22) + 1; }, "vocab_size"},
      {[](ModelConfig& c) { c.hidden_size = -64; }, "hidden_size"},
      {[](ModelConfig& c) { c.hidden_size = 1 << 17; }, "hidden_size"},
      {[](ModelConfig& c) { c.num_layers = 513; }, "num_layers"},
      {[](ModelConfig& c) { c.intermediate_size = 0; }, "intermediate_size"},
      {[](ModelConfig& c) { c.max_position_embeddings = 0; }, "max_position_embeddings"},
      {[](ModelConfig& c) { c.hidden_size = 66; }, "not a multiple of num_heads"},
      {[](ModelConfig& c) { c.num_kv_heads = 3; }, "not a multiple of num_kv_heads"},
      {[](ModelConfig& c) { c.head_dim = 15; }, "odd"},
      {[](ModelConfig& c) { c.rms_norm_eps = 0; }, "rms_norm_eps"},
      {[](ModelConfig& c) { c.rms_norm_eps = INFINITY; }, "rms_norm_eps"},
      {[](ModelConfig& c) { c.rope_theta = -1; }, "rope_theta"},
      {[](ModelConfig& c) { c.rope_theta = NAN; }, "rope_theta"},
      {[](ModelConfig& c) {
         c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
         c.rope_scaling.low_freq_factor = 5;
       },
       "llama3 rope_scaling"},
  };
  for (const auto& [mutate, field] : bad) {
    ModelConfig c = good;
    mutate(c);
    absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(Msg(s), HasSubstr(field));
  }
}

}  // namespace
}  // namespace cohost::runtime
