// Per-request sampling and stopping settings (OpenAI/vLLM names and ranges), and
// their validation. The Sampler and StopChecker read these; the server fills them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cohost/kernels/sample_spec.h"
#include "runtime/sampling/json_schema.h"

namespace cohost::runtime {

// Limits on stop strings, so matching cost and held-back text stay bounded.
inline constexpr int32_t kMaxStopStrings = 16;
inline constexpr int32_t kMaxStopStringBytes = 256;
// And on stop token ids, each of which every generated token is checked
// against on the device's one stepping thread.
inline constexpr int32_t kMaxStopTokenIds = 256;
// The most alternatives a request may ask log-probabilities for (OpenAI's
// limit): what the device computes at most (Backend::RowLogprobs).
inline constexpr int32_t kMaxTopLogprobs = kernels::kMaxTopLogprobs;

// OpenAI's limits on `logit_bias`: at most 300 tokens, each bias in [-100,
// 100] (-100 rules a token out in practice, 100 all but forces it).
inline constexpr int32_t kMaxLogitBias = 300;
inline constexpr float kMaxLogitBiasValue = 100.f;
// INVALID_ARGUMENT past kMaxLogitBias entries: the one wording of the limit,
// which the front doors check before they read or copy the entries.
absl::Status CheckLogitBiasCount(size_t entries);

// A token's logit bias: added to its raw logit before the penalties (as
// vLLM's logits processor does; kernels::PenaltyTerm::add on the device).
struct LogitBias {
  int32_t token = 0;
  float bias = 0.f;
  friend bool operator==(const LogitBias&, const LogitBias&) = default;
};
// The order SamplingParams::logit_bias is kept in.
inline bool ByToken(const LogitBias& a, const LogitBias& b) { return a.token < b.token; }

// What the sampled text must be. kJsonObject: a JSON document whose top
// level is an object (json_grammar.h), the end of generation allowed only
// once it is whole (OpenAI's `response_format: {"type": "json_object"}`).
// kJsonSchema: a JSON document that `json_schema` allows (json_schema.h;
// OpenAI's `{"type": "json_schema"}`).
enum class ResponseFormat : uint8_t { kText, kJsonObject, kJsonSchema };

// Where a JSON response format's document starts in the output: the server
// decides for a chat on a model whose template writes think blocks
// (BuildGenerateRequest), and a vocabulary without both tags as tokens
// starts it at once (JsonConstraint::Thinks).
//   kDocument  at the first token;
//   kMayThink  after a think block the output may open first (Qwen3's);
//   kThinking  after the block the prompt opened closes (DeepSeek-R1's).
// Until then the output is free, but for what would end it (its ends of
// generation and stop ids, the closing tag excepted): the document follows
// the block.
enum class JsonPhase : uint8_t { kDocument, kMayThink, kThinking };

struct SamplingParams {
  float temperature = 1.0f;               // 0 = greedy (argmax); valid [0, 100]
  int32_t top_k = 0;                      // 0 = off; valid [0, vocab]
  float top_p = 1.0f;                     // (0, 1]
  float min_p = 0.0f;                     // [0, 1]
  float repetition_penalty = 1.0f;        // (0, 10]; HF/vLLM: logit > 0 ? logit/p : logit*p,
                                          // over tokens in prompt+generated
  float presence_penalty = 0.0f;          // [-2, 2] OpenAI semantics, over generated tokens
  float frequency_penalty = 0.0f;         // [-2, 2]
  std::vector<LogitBias> logit_bias;      // by token, each once; see kMaxLogitBias
  std::optional<uint64_t> seed;           // same seed, same output
  int32_t max_tokens = 256;               // >= 1
  std::vector<int32_t> stop_token_ids;    // each in [0, vocab), at most 256
  std::vector<std::string> stop_strings;  // non-empty, each <= 256 bytes, at most 16
  bool ignore_eos = false;
  // Set: each generated token comes with its log-probability (runtime/sampling/
  // logprobs.h) and those of the `*logprobs` most likely tokens; [0, 20].
  std::optional<int32_t> logprobs;
  ResponseFormat response_format = ResponseFormat::kText;
  std::shared_ptr<const JsonSchema> json_schema;  // set with kJsonSchema, compiled
  JsonPhase json_phase = JsonPhase::kDocument;    // with a JSON response format

  // The schema the output is held to: json_schema, JsonSchema::AnyObject()
  // for kJsonObject; null for text.
  std::shared_ptr<const JsonSchema> OutputSchema() const;
  // Whether the output may hold a think block: text, or JSON that follows one.
  bool MayThink() const {
    return response_format == ResponseFormat::kText || json_phase != JsonPhase::kDocument;
  }

  // INVALID_ARGUMENT naming the field and the bad value; NaN and infinities rejected.
  absl::Status Validate(int32_t vocab_size) const;
};

}  // namespace cohost::runtime
