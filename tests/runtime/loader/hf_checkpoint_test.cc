// A real-sized Hugging Face checkpoint: the default model's BF16 variant
// written as config.json, model.safetensors and tokenizer files by
// scripts/make_hf_variant.py (scripts/make_model_variants.sh), so that the
// Hugging Face path is checked on a whole model and a 49,152-token
// vocabulary, offline. Its tokenizer.json tokenizes as Hugging Face
// `tokenizers` does (the ids of tests/data/tokenizer_reference_smollm2.json,
// which the GGUF's tokenizer is checked against too); its config, special
// tokens and chat format are the GGUF's; and, loaded with the GGUF's q and k
// rows put back in the checkpoint's order (map_file false), the two give the
// same logits bit for bit.

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/loaded_model.h"
#include "tests/support/last_logits.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAreArray;

const std::string kGguf =
    std::string(COHOST_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.BF16.gguf";
const std::string kCheckpoint =
    std::string(COHOST_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.BF16-hf";

nlohmann::json TokenizerReference() {
  std::ifstream in(std::string(COHOST_SOURCE_DIR) + "/tests/data/tokenizer_reference_smollm2.json");
  EXPECT_TRUE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(HfCheckpointTest, TokenizesAsHuggingFaceTokenizers) {
  absl::StatusOr<ModelDescription> hf = DescribeModel(kCheckpoint);
  ASSERT_TRUE(hf.ok()) << hf.status();
  const nlohmann::json reference = TokenizerReference();
  ASSERT_GE(reference["cases"].size(), 30u);
  for (const auto& c : reference["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    const auto ids = hf->tokenizer->Encode(text, /*add_special=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_THAT(*ids, ElementsAreArray(c["ids"].get<std::vector<int32_t>>()));
    const auto plain = hf->tokenizer->Encode(text, false, /*parse_special=*/false);
    ASSERT_TRUE(plain.ok()) << plain.status();
    EXPECT_THAT(*plain, ElementsAreArray(c["ids_no_parse_special"].get<std::vector<int32_t>>()));
    EXPECT_EQ(hf->tokenizer->Decode(c["ids"].get<std::vector<int32_t>>(), false), text);
  }
}

TEST(HfCheckpointTest, ConfigSpecialTokensAndChatFormatAreTheGgufs) {
  absl::StatusOr<ModelDescription> hf = DescribeModel(kCheckpoint);
  absl::StatusOr<ModelDescription> gguf = DescribeModel(kGguf);
  ASSERT_TRUE(hf.ok()) << hf.status();
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ(ShapeChange(hf->config, gguf->config), "") << "the configs differ in it";
  const Tokenizer& t = *hf->tokenizer;
  const Tokenizer& u = *gguf->tokenizer;
  ASSERT_EQ(t.vocab_size(), u.vocab_size());
  EXPECT_EQ(t.bos_id(), u.bos_id());
  EXPECT_EQ(t.eos_id(), u.eos_id());
  EXPECT_EQ(t.adds_bos(), u.adds_bos());
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    ASSERT_EQ(t.IsEndOfGeneration(id), u.IsEndOfGeneration(id)) << "id " << id;
    ASSERT_EQ(t.IsSpecial(id), u.IsSpecial(id)) << "id " << id;
  }
  const std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "What is 12 times 7?"}};
  absl::StatusOr<std::string> hf_text = t.ApplyChatTemplate(chat);
  absl::StatusOr<std::string> gguf_text = u.ApplyChatTemplate(chat);
  ASSERT_TRUE(hf_text.ok()) << hf_text.status();
  ASSERT_TRUE(gguf_text.ok()) << gguf_text.status();
  EXPECT_EQ(*hf_text, *gguf_text);
}

// The same bf16 matrices, the same rotate-half RoPE (the GGUF copied, its q
// and k rows put back in order: map_file false) and the same kernels: the
// same logits, to the bit, decode steps and prompts alike, whichever path
// the CPU's 16-bit products take.
TEST(HfCheckpointTest, LogitsAreTheGgufsBitForBit) {
  const std::unique_ptr<kernels::Backend> be = kernels::MakeCpuBackend(0, kernels::DType::kF16);
  const WeightsPolicy policy{.keep_quantized = true, .map_file = false};
  absl::StatusOr<LoadedModel> hf = LoadModel(kCheckpoint, be.get(), nullptr, policy);
  absl::StatusOr<LoadedModel> gguf = LoadModel(kGguf, be.get(), nullptr, policy);
  ASSERT_TRUE(hf.ok()) << hf.status();
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ(hf->model->weights_bytes(), gguf->model->weights_bytes());
  for (const char* prompt : {"The capital of France is", "1, 2, 3, 4, 5, 6, 7, 8,",
                             "def fibonacci(n):\n    if n < 2:\n        return n\n    return"}) {
    SCOPED_TRACE(prompt);
    absl::StatusOr<std::vector<int32_t>> ids = hf->tokenizer->Encode(prompt);
    ASSERT_TRUE(ids.ok()) << ids.status();
    // One chunk (a prompt's rows in one product) and a token at a time.
    for (const int32_t chunk : {static_cast<int32_t>(ids->size()), 1}) {
      const std::vector<float> a = cohost::testing::LastLogits(*hf->model, be.get(), *ids, chunk);
      const std::vector<float> b = cohost::testing::LastLogits(*gguf->model, be.get(), *ids, chunk);
      ASSERT_EQ(a.size(), static_cast<size_t>(hf->config().vocab_size));
      EXPECT_EQ(a, b) << "chunk " << chunk;
    }
  }
}

}  // namespace
}  // namespace cohost::runtime
