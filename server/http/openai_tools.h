// OpenAI's function calling on /v1/chat/completions, mapped onto
// cohost.v1.ChatInput: `tools`, `tool_choice`, and the messages' `tool_calls`
// (an assistant's) and `tool_call_id` (a tool's result). The model must
// offer tools in its chat template (BuildGenerateRequest refuses a chat with
// tools otherwise, FAILED_PRECONDITION); its answer's calls come back as the
// message's `tool_calls` (runtime::ToolCallSplitter).
//
// tool_choice:
//   "auto" (the default with tools)  the model calls what it chooses;
//   "none"       the tools are not offered in the prompt and the answer is
//                text (vLLM offers them and leaves the answer unparsed);
//   "required"   the answer is one call of an offered function (at most 64
//                of them), held to {"name": <one of them>, "arguments": <an
//                object>} by the JSON grammar (its arguments are not held to
//                the function's own schema); finish_reason "tool_calls";
//   {"type": "function", "function": {"name": N}}
//                the answer is the arguments of one call of N, held to N's
//                parameters (the JSON schema subset of
//                runtime/sampling/json_schema.h), as vLLM does; its
//                finish_reason is "stop", as OpenAI's and vLLM's.
// A forced call cannot be combined with a response_format. Schemas and
// arguments keep the client's key order (runtime/tokenizer/json_rewrite.h).
// `parallel_tool_calls: false` makes at most one call: the answer ends as its
// block closes ("</tool_call>" one of its stop strings; a forced call is one
// anyway).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "cohost/v1/inference.pb.h"
#include "nlohmann/json_fwd.hpp"

namespace cohost::server::http {

// What tool_choice asks of the answer.
struct ToolOutput {
  bool calls = false;  // its calls come back as tool_calls
  // Set: the whole output is one call: the arguments of this function, or
  // (empty) a call's {"name", "arguments"} object.
  std::optional<std::string> forced;
  // finish_reason is "tool_calls" after a call (not after a named one's).
  bool calls_finish() const { return calls && !(forced && !forced->empty()); }
};

// Reads the body's tools and tool_choice into `out`'s chat, and the tool
// fields of its messages (added by the caller, one per body message, in
// order); sets the response format a forced call is held to. `text` is the
// body `body` was parsed from.
absl::Status ParseChatTools(const nlohmann::json& body, std::string_view text,
                            v1::GenerateRequest* out, ToolOutput* tools);

// `status`, from building the request (BuildGenerateRequest), in the body's
// words: a forced call's schema was the function's parameters, not a
// json_schema the client sent.
absl::Status InToolTerms(const ToolOutput& tools, absl::Status status);

}  // namespace cohost::server::http
