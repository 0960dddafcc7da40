// Turns an API GenerateRequest into the engine's runtime::GenerateRequest:
// validates every client-controlled field (INVALID_ARGUMENT naming it) and
// tokenizes the input on the calling (gRPC) thread, never the engine's.
#pragma once

#include "absl/status/statusor.h"
#include "cohost/v1/inference.pb.h"
#include "runtime/batching/request.h"
#include "runtime/batching/request_validation.h"
#include "runtime/tokenizer/tokenizer.h"
#include "server/tool_choice.h"

namespace cohost::server {

// Fills prompt_ids, sampling and external_id; the caller adds tenant and
// deadline. An unset max_tokens becomes runtime::DefaultMaxTokens. The result
// passes runtime::ValidateRequest against `limits` (the engine's), whose
// INVALID_ARGUMENT comes back as is; also INVALID_ARGUMENT for no or empty
// input, an empty chat or a message whose role is not system, user or
// assistant, invalid UTF-8, and
// max_tokens 0. FAILED_PRECONDITION when chat input meets a model without a
// usable chat template. A chat's tool_choice and parallel_tool_calls are
// applied first (ApplyToolChoice, tool_choice.h); `tools`, when given, is set
// to what they ask of the answer.
absl::StatusOr<runtime::GenerateRequest> BuildGenerateRequest(const v1::GenerateRequest& request,
                                                              const runtime::Tokenizer& tokenizer,
                                                              const runtime::RequestLimits& limits,
                                                              ToolOutput* tools = nullptr);

}  // namespace cohost::server
