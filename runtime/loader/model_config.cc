// ModelConfig::Validate: the bounds every loader applies before sizing buffers.
#include "runtime/loader/model_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

// Upper bounds far above any released model; they stop absurd values from
// becoming absurd allocations.
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxHidden = 65536;
constexpr int64_t kMaxIntermediate = 1 << 20;
constexpr int64_t kMaxLayers = 512;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxPositions = 1 << 26;
// DeepSeek-V3 and Qwen3-235B have 256 and 128 experts, 8 of them used; all
// of a model's experts together, 15k and 12k. The cap on the product keeps a
// header of a few bytes from listing millions of tensors.
constexpr int64_t kMaxExperts = 1024;
constexpr int64_t kMaxLayerExperts = 1 << 16;

absl::Status CheckRange(const char* field, int64_t v, int64_t max) {
  if (v <= 0 || v > max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: %s = %d is outside [1, %d]", field, v, max));
  }
  return absl::OkStatus();
}

bool FinitePositive(float v) { return std::isfinite(v) && v > 0.f; }

}  // namespace

bool SupportedArchitecture(std::string_view architecture) {
  return std::find(kArchitectures.begin(), kArchitectures.end(), architecture) !=
         kArchitectures.end();
}

std::string SupportedArchitectures() {
  std::string list;
  for (std::string_view a : kArchitectures) {
    if (!list.empty()) list += ", ";
    list += a;
  }
  return list;
}

absl::Status ModelConfig::Validate() const {
  if (architecture.empty()) return absl::InvalidArgumentError("config: architecture is empty");
  const struct {
    const char* field;
    int64_t value;
    int64_t max;
  } ranges[] = {
      {"vocab_size", vocab_size, kMaxVocab},
      {"hidden_size", hidden_size, kMaxHidden},
      {"intermediate_size", intermediate_size, kMaxIntermediate},
      {"num_layers", num_layers, kMaxLayers},
      {"num_heads", num_heads, kMaxHeads},
      {"num_kv_heads", num_kv_heads, kMaxHeads},
      {"head_dim", head_dim, kMaxHeadDim},
      {"max_position_embeddings", max_position_embeddings, kMaxPositions},
  };
  for (const auto& r : ranges) {
    RETURN_IF_ERROR(CheckRange(r.field, r.value, r.max));
  }
  if (moe()) {
    RETURN_IF_ERROR(CheckRange("num_experts", num_experts, kMaxExperts));
    RETURN_IF_ERROR(CheckRange("num_experts_used", num_experts_used, num_experts));
    RETURN_IF_ERROR(
        CheckRange("expert_intermediate_size", expert_intermediate_size, kMaxIntermediate));
    if (int64_t{num_layers} * num_experts > kMaxLayerExperts) {
      return absl::InvalidArgumentError(
          absl::StrFormat("config: %d layers of %d experts is over %d experts in all", num_layers,
                          num_experts, kMaxLayerExperts));
    }
  } else if (num_experts != 0 || num_experts_used != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: num_experts = %d with num_experts_used = %d", num_experts, num_experts_used));
  }
  if (hidden_size % num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: hidden_size %d is not a multiple of num_heads %d", hidden_size, num_heads));
  }
  if (num_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: num_heads %d is not a multiple of num_kv_heads %d", num_heads, num_kv_heads));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: head_dim %d is odd (RoPE rotates pairs)", head_dim));
  }
  if (!FinitePositive(rms_norm_eps) || rms_norm_eps >= 1.f) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: rms_norm_eps %g is not in (0, 1)", rms_norm_eps));
  }
  if (!FinitePositive(rope_theta)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: rope_theta %g is not a finite positive number", rope_theta));
  }
  return rope_scaling.Validate();
}

absl::Status RopeScaling::Validate() const {
  if (kind != Kind::kLlama3) return absl::OkStatus();
  if (!std::isfinite(factor) || factor < 1.f || !FinitePositive(low_freq_factor) ||
      !FinitePositive(high_freq_factor) || !(low_freq_factor < high_freq_factor) ||
      original_max_position_embeddings <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: invalid llama3 rope_scaling (factor %g, low_freq_factor %g, high_freq_factor "
        "%g, original_max_position_embeddings %d)",
        factor, low_freq_factor, high_freq_factor, original_max_position_embeddings));
  }
  return absl::OkStatus();
}

std::string ShapeChange(const ModelConfig& was, const ModelConfig& now) {
  if (was.architecture != now.architecture) {
    return absl::StrFormat("architecture %s -> %s", was.architecture, now.architecture);
  }
  const std::pair<const char*, std::pair<int64_t, int64_t>> ints[] = {
      {"vocab_size", {was.vocab_size, now.vocab_size}},
      {"hidden_size", {was.hidden_size, now.hidden_size}},
      {"intermediate_size", {was.intermediate_size, now.intermediate_size}},
      {"num_layers", {was.num_layers, now.num_layers}},
      {"num_heads", {was.num_heads, now.num_heads}},
      {"num_kv_heads", {was.num_kv_heads, now.num_kv_heads}},
      {"head_dim", {was.head_dim, now.head_dim}},
      {"max_position_embeddings", {was.max_position_embeddings, now.max_position_embeddings}},
      {"tie_word_embeddings", {was.tie_word_embeddings, now.tie_word_embeddings}},
      {"attention_bias", {was.attention_bias, now.attention_bias}},
      {"num_experts", {was.num_experts, now.num_experts}},
      {"num_experts_used", {was.num_experts_used, now.num_experts_used}},
      {"expert_intermediate_size", {was.expert_intermediate_size, now.expert_intermediate_size}},
      {"norm_topk_prob", {was.norm_topk_prob, now.norm_topk_prob}},
  };
  for (const auto& [field, values] : ints) {
    if (values.first != values.second) {
      return absl::StrFormat("%s %d -> %d", field, values.first, values.second);
    }
  }
  if (was.rope_theta != now.rope_theta || was.rms_norm_eps != now.rms_norm_eps ||
      was.rope_scaling.kind != now.rope_scaling.kind ||
      was.rope_scaling.factor != now.rope_scaling.factor) {
    return "its RoPE or norm settings";
  }
  return "";
}

}  // namespace cohost::runtime
