// Turns an API GenerateRequest into the engine's runtime::GenerateRequest:
// validates every client-controlled field (INVALID_ARGUMENT naming it) and
// tokenizes the input on the calling (gRPC) thread, never the engine's.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "cohost/v1/inference.pb.h"
#include "runtime/request.h"
#include "runtime/tokenizer.h"

namespace cohost::server {

// max_tokens when the client leaves it unset (then capped by the context).
inline constexpr int32_t kDefaultMaxTokens = 256;

struct ModelLimits {
  int32_t vocab_size = 0;      // token ids must be in [0, vocab_size)
  int32_t context_length = 0;  // prompt + max_tokens must fit
};

// Fills prompt_ids, sampling and external_id; the caller adds tenant and
// deadline. INVALID_ARGUMENT for: no or empty input, an empty chat, invalid
// UTF-8, token ids outside the vocabulary, out-of-range or NaN sampling values,
// max_tokens 0 or prompt + max_tokens beyond the context, too many or too long
// stop strings. FAILED_PRECONDITION when chat input meets a model without a
// usable chat template.
absl::StatusOr<runtime::GenerateRequest> BuildGenerateRequest(const v1::GenerateRequest& request,
                                                              const runtime::Tokenizer& tokenizer,
                                                              const ModelLimits& limits);

}  // namespace cohost::server
