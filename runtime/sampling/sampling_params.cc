#include "runtime/sampling/sampling_params.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"

namespace cohost::runtime {
namespace {

// Closed range [lo, hi], or (lo, hi] when lo_open. NaN fails every comparison, so
// it (and +/-inf, outside every finite range) is rejected without a special case.
absl::Status CheckRange(const char* field, float value, float lo, float hi, bool lo_open) {
  const bool lo_ok = lo_open ? value > lo : value >= lo;
  if (lo_ok && value <= hi && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s must be in %c%g, %g], got %g", field,
                                                    lo_open ? '(' : '[', lo, hi, value));
}

}  // namespace

absl::Status CheckLogitBiasCount(size_t entries) {
  if (entries <= static_cast<size_t>(kMaxLogitBias)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("logit_bias has %d entries, at most %d allowed", entries, kMaxLogitBias));
}

absl::Status SamplingParams::Validate(int32_t vocab_size) const {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab_size must be positive, got %d", vocab_size));
  }
  for (const absl::Status& s : {
           CheckRange("temperature", temperature, 0.f, 100.f, false),
           CheckRange("top_p", top_p, 0.f, 1.f, true),
           CheckRange("min_p", min_p, 0.f, 1.f, false),
           CheckRange("repetition_penalty", repetition_penalty, 0.f, 10.f, true),
           CheckRange("presence_penalty", presence_penalty, -2.f, 2.f, false),
           CheckRange("frequency_penalty", frequency_penalty, -2.f, 2.f, false),
       }) {
    if (!s.ok()) return s;
  }
  if (top_k < 0 || top_k > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_k must be in [0, %d] (0 = off), got %d", vocab_size, top_k));
  }
  if (max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be >= 1, got %d", max_tokens));
  }
  if (stop_token_ids.size() > static_cast<size_t>(kMaxStopTokenIds)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("stop_token_ids has %d entries, at most %d allowed", stop_token_ids.size(),
                        kMaxStopTokenIds));
  }
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    if (stop_token_ids[i] < 0 || stop_token_ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop_token_ids[%d] must be in [0, %d), got %d", i, vocab_size, stop_token_ids[i]));
    }
  }
  if (absl::Status s = CheckLogitBiasCount(logit_bias.size()); !s.ok()) return s;
  for (size_t i = 0; i < logit_bias.size(); ++i) {
    const LogitBias& b = logit_bias[i];
    if (b.token < 0 || b.token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logit_bias names token %d, outside the vocabulary [0, %d)", b.token, vocab_size));
    }
    if (i > 0 && b.token <= logit_bias[i - 1].token) {
      return absl::InvalidArgumentError("logit_bias must name each token once, in order");
    }
    const std::string field = absl::StrFormat("logit_bias of token %d", b.token);
    if (absl::Status s =
            CheckRange(field.c_str(), b.bias, -kMaxLogitBiasValue, kMaxLogitBiasValue, false);
        !s.ok()) {
      return s;
    }
  }
  if (logprobs && (*logprobs < 0 || *logprobs > kMaxTopLogprobs)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("logprobs must be in [0, %d], got %d", kMaxTopLogprobs, *logprobs));
  }
  if (response_format != ResponseFormat::kText && response_format != ResponseFormat::kJsonObject &&
      response_format != ResponseFormat::kJsonSchema) {
    return absl::InvalidArgumentError("response_format is not one this server knows");
  }
  if ((response_format == ResponseFormat::kJsonSchema) != (json_schema != nullptr)) {
    return absl::InvalidArgumentError(
        "json_schema is set exactly with a JSON schema response format");
  }
  if (response_format != ResponseFormat::kText && ignore_eos) {
    // A whole document may end only at an end of generation.
    return absl::InvalidArgumentError("ignore_eos cannot be set with a JSON response format");
  }
  // Named as clients name them (the APIs' and `cohost run`'s "stop").
  if (stop_strings.size() > static_cast<size_t>(kMaxStopStrings)) {
    return absl::InvalidArgumentError(absl::StrFormat("stop has %d entries, at most %d allowed",
                                                      stop_strings.size(), kMaxStopStrings));
  }
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    if (stop_strings[i].empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("stop[%d] is empty", i));
    }
    if (stop_strings[i].size() > static_cast<size_t>(kMaxStopStringBytes)) {
      return absl::InvalidArgumentError(absl::StrFormat("stop[%d] is %d bytes, at most %d allowed",
                                                        i, stop_strings[i].size(),
                                                        kMaxStopStringBytes));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<const JsonSchema> SamplingParams::OutputSchema() const {
  switch (response_format) {
    case ResponseFormat::kJsonObject:
      // The one static schema, owned by nobody.
      return std::shared_ptr<const JsonSchema>(std::shared_ptr<void>(), &JsonSchema::AnyObject());
    case ResponseFormat::kJsonSchema:
      return json_schema;
    default:
      return nullptr;
  }
}

}  // namespace cohost::runtime
