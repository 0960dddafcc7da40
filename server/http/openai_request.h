// OpenAI's /v1/chat/completions and /v1/completions request bodies, mapped
// onto cohost.v1.GenerateRequest: from there on a request takes the same path
// as a gRPC one (server::BuildGenerateRequest validates and tokenizes it).
// Only the JSON's shape is checked here: a wrong type or a field cohost
// cannot honour (legacy functions, tools on /v1/completions, a
// response_format type other than text, json_object
// and json_schema, echo, suffix, best_of above n; vLLM's guided_*
// other than guided_json, min_tokens, prompt_logprobs,
// truncate_prompt_tokens, bad_words, allowed_token_ids, and its output
// switches other than their defaults) is INVALID_ARGUMENT naming the
// field. OpenAI's logit_bias and tools (openai_tools.h) and vLLM's
// stop_token_ids and ignore_eos are served. Other unknown fields are ignored, as vLLM ignores them
// (OpenAI refuses them; clients send fields of newer API versions freely).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cohost/v1/inference.pb.h"
#include "server/tool_choice.h"

namespace cohost::server::http {

enum class Endpoint { kChatCompletions, kCompletions };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  v1::GenerateRequest request;  // model, input, sampling, max_tokens, stop
  int n = 1;                    // choices, each its own engine request
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  std::optional<std::string> user;  // a tenant hint, used only without API keys
  ToolOutput tools;  // chat: what tool_choice asks of the answer (BuildGenerateRequest sets it)
};

inline constexpr int kMaxChoices = 8;

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, Endpoint endpoint);

}  // namespace cohost::server::http
