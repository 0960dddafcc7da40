#include "runtime/batching/request_validation.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

constexpr char kContextLengthPayload[] = "cohost.dev/context_length_exceeded";

}  // namespace

absl::Status ValidateRequest(const GenerateRequest& request, const RequestLimits& limits) {
  const std::vector<int32_t>& ids = request.prompt_ids;
  if (ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prompt token %d is id %d, outside the vocabulary [0, %d)", i, ids[i],
                          limits.vocab_size));
    }
  }
  RETURN_IF_ERROR(request.sampling.Validate(limits.vocab_size));
  return CheckRequestFits(static_cast<int64_t>(ids.size()), request.sampling.max_tokens, limits);
}

absl::Status ContextLengthExceeded(std::string_view message) {
  absl::Status status =
      absl::InvalidArgumentError(absl::string_view(message.data(), message.size()));
  status.SetPayload(kContextLengthPayload, absl::Cord("1"));
  return status;
}

bool IsContextLengthExceeded(const absl::Status& status) {
  return status.GetPayload(kContextLengthPayload).has_value();
}

absl::Status CheckRequestFits(int64_t prompt, int32_t max_tokens, const RequestLimits& limits) {
  const int64_t need = prompt + max_tokens;
  if (need > limits.context_length) {
    return ContextLengthExceeded(absl::StrFormat(
        "This model's maximum context length is %d tokens; the prompt (%d tokens) plus "
        "max_tokens (%d) exceed it",
        limits.context_length, prompt, max_tokens));
  }
  if (limits.max_unchunked_tokens > 0 && need - 1 > limits.max_unchunked_tokens) {
    // Without chunking a sequence (re)starts whole, and after a preemption
    // "whole" includes its generated tokens.
    return ContextLengthExceeded(absl::StrFormat(
        "This model's maximum context length is %d tokens here (chunked prefill is off: one "
        "step's); the prompt (%d tokens) plus max_tokens (%d) exceed it",
        limits.max_unchunked_tokens + 1, prompt, max_tokens));
  }
  if (limits.kv_capacity_tokens > 0 && need > limits.kv_capacity_tokens) {
    return ContextLengthExceeded(absl::StrFormat(
        "This model's maximum context length is %d tokens here (its KV pool); the prompt (%d "
        "tokens) plus max_tokens (%d) exceed it",
        limits.kv_capacity_tokens, prompt, max_tokens));
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> DefaultMaxTokens(int64_t prompt_tokens, const RequestLimits& limits) {
  int64_t room = limits.context_length - prompt_tokens;
  if (limits.kv_capacity_tokens > 0) {
    room = std::min(room, limits.kv_capacity_tokens - prompt_tokens);
  }
  if (limits.max_unchunked_tokens > 0) {
    room = std::min(room, limits.max_unchunked_tokens + 1 - prompt_tokens);
  }
  if (room < 1) {
    // The limit that binds: the context, the KV pool, or one step.
    int64_t most = limits.context_length;
    if (limits.kv_capacity_tokens > 0) most = std::min<int64_t>(most, limits.kv_capacity_tokens);
    if (limits.max_unchunked_tokens > 0) {
      most = std::min<int64_t>(most, int64_t{limits.max_unchunked_tokens} + 1);
    }
    return ContextLengthExceeded(absl::StrFormat(
        "This model's maximum context length is %d tokens here; the prompt has %d tokens and "
        "leaves no room to generate one",
        most, prompt_tokens));
  }
  return static_cast<int32_t>(std::min<int64_t>(kDefaultMaxTokens, room));
}

}  // namespace cohost::runtime
