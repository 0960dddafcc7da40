// Architecture facts of one model, read from GGUF metadata or a Hugging Face
// config.json; everything the forward pass needs to size and run itself.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "runtime/loader/dequant.h"

namespace cohost::runtime {

struct RopeScaling {
  enum class Kind : uint8_t { kNone, kLlama3 };
  Kind kind = Kind::kNone;
  float factor = 1.f;
  float low_freq_factor = 1.f;
  float high_freq_factor = 4.f;
  int32_t original_max_position_embeddings = 8192;

  // OK, or INVALID_ARGUMENT for Llama-3 scaling that cannot hold (a factor
  // below 1, low_freq_factor not below high_freq_factor, an original context
  // of 0). ModelConfig::Validate runs it.
  absl::Status Validate() const;
};

// The architectures the forward pass runs, as a GGUF's general.architecture
// names them (a Hugging Face config's classes map onto these).
// "qwen3moe" is Qwen3 with a mixture of experts in every layer; a Llama or
// Mistral file with experts (ModelConfig::num_experts) is a Mixtral.
inline constexpr std::array<std::string_view, 5> kArchitectures = {"llama", "mistral", "qwen2",
                                                                   "qwen3", "qwen3moe"};
bool SupportedArchitecture(std::string_view architecture);
// kArchitectures for a message: "llama, mistral, qwen2, qwen3, qwen3moe".
std::string SupportedArchitectures();

struct ModelConfig {
  std::string architecture;  // one of kArchitectures
  std::string name;          // human-readable, from metadata when present
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;  // hidden_size / num_heads unless the config says otherwise
  int32_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2)
  // RoPE turns adjacent dims (2i, 2i + 1) together instead of (i, i +
  // head_dim / 2) (kernels::RopePairs): set where the loader keeps a Llama
  // GGUF's q and k rows in the file's order (LoadOptions::map_weights)
  // instead of undoing the converter's permutation.
  bool rope_adjacent_pairs = false;
  // How the file stores each tensor (a GGUF's types; a safetensors file's
  // F32, F16 or BF16): what Model::PredictWeightsBytes reads for weights that
  // stay as stored.
  std::map<std::string, GgmlType> stored_types;
  // A mixture of experts in place of every layer's FFN (Mixtral's, Qwen3-MoE's):
  // a router [num_experts, hidden] picks each token's num_experts_used
  // experts by softmax over its logits, each expert an FFN of
  // expert_intermediate_size, and the token's output is their sum weighted
  // by the picked probabilities (divided by their sum where
  // norm_topk_prob). 0 experts: the dense FFN of intermediate_size.
  int32_t num_experts = 0;
  int32_t num_experts_used = 0;
  int32_t expert_intermediate_size = 0;
  bool norm_topk_prob = true;

  // Each q and k head is RMS-normalized (weights [head_dim], one for q and
  // one for k, per layer) before RoPE: Qwen3's.
  bool qk_norm() const { return architecture == "qwen3" || architecture == "qwen3moe"; }
  bool moe() const { return num_experts > 0; }
  // The FFN width a token's activations take: all its experts' together.
  int64_t ffn_width() const {
    return moe() ? int64_t{num_experts_used} * expert_intermediate_size : intermediate_size;
  }

  // INVALID_ARGUMENT naming the first inconsistent field (zero sizes, heads that
  // do not divide, absurd dimensions).
  absl::Status Validate() const;
};

// "" when `now` is the model `was` describes (architecture, vocabulary,
// dimensions, context, RoPE; not how the file stores its tensors), else the
// first difference, e.g. "vocab_size 49152 -> 32000": a file replaced by
// another model's between two reads of it.
std::string ShapeChange(const ModelConfig& was, const ModelConfig& now);

}  // namespace cohost::runtime
