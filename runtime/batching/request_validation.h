// The one home of the rules a GenerateRequest must meet before an engine takes
// it: a non-empty prompt of ids inside the vocabulary, valid sampling values,
// and prompt + max_tokens within the context, the whole KV pool and (without
// chunked prefill) one step. The server, the engine and `cohost run` all call
// ValidateRequest; its messages are what clients see.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/batching/request.h"

namespace cohost::runtime {

// max_tokens when the client leaves it unset (then capped by DefaultMaxTokens).
inline constexpr int32_t kDefaultMaxTokens = 256;

// What one engine can take. Engine::request_limits() fills every field.
struct RequestLimits {
  int32_t vocab_size = 0;            // prompt and stop ids in [0, vocab_size)
  int32_t context_length = 0;        // prompt + max_tokens <= context_length
  int64_t kv_capacity_tokens = 0;    // prompt + max_tokens <= the whole KV pool; 0: not checked
  int32_t max_unchunked_tokens = 0;  // > 0 when prefill is not chunked: a (re)started
                                     // sequence's prompt + max_tokens - 1 must fit one step
};

// OK, or INVALID_ARGUMENT naming the field and the limit it breaks.
absl::Status ValidateRequest(const GenerateRequest& request, const RequestLimits& limits);
// Its size checks alone, for a request already valid under other limits
// of the same model (the context, the KV pool, an unchunked step).
absl::Status CheckRequestFits(int64_t prompt_tokens, int32_t max_tokens,
                              const RequestLimits& limits);

// INVALID_ARGUMENT for a request longer than the model can hold, tagged so
// that a front door can say so in its clients' terms (the OpenAI API's
// `context_length_exceeded`). `message` follows vLLM's wording ("This
// model's maximum context length is N tokens"), which clients match.
absl::Status ContextLengthExceeded(std::string_view message);
bool IsContextLengthExceeded(const absl::Status& status);

// max_tokens for a request that did not set it: kDefaultMaxTokens, capped by
// the room the prompt leaves in the context and the KV pool. INVALID_ARGUMENT
// when the prompt leaves no room for one token.
absl::StatusOr<int32_t> DefaultMaxTokens(int64_t prompt_tokens, const RequestLimits& limits);

}  // namespace cohost::runtime
