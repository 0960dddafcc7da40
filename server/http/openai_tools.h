// OpenAI's function calling on /v1/chat/completions, mapped onto
// cohost.v1.ChatInput: `tools`, `tool_choice`, and the messages' `tool_calls`
// (an assistant's) and `tool_call_id` (a tool's result). The model must
// offer tools in its chat template (BuildGenerateRequest refuses a chat with
// tools otherwise, FAILED_PRECONDITION); its answer's calls come back as the
// message's `tool_calls` (runtime::ToolCallSplitter).
//
// tool_choice ("none", "auto", "required", {"type": "function", "function":
// {"name": N}}) and parallel_tool_calls are read into the chat's fields of the
// same names; what they ask of the answer is server/tool_choice.h's (a
// forced call's finish_reason "tool_calls" for "required", "stop" for a named
// one, as OpenAI's and vLLM's). Schemas and arguments keep the client's key
// order (runtime/tokenizer/json_rewrite.h).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "cohost/v1/inference.pb.h"
#include "nlohmann/json_fwd.hpp"

namespace cohost::server::http {

// Reads the body's tools, tool_choice and parallel_tool_calls into `out`'s
// chat, and the tool fields of its messages (added by the caller, one per
// body message, in order). `text` is the body `body` was parsed from.
absl::Status ParseChatTools(const nlohmann::json& body, std::string_view text,
                            v1::GenerateRequest* out);

// `status`, from building the request (BuildGenerateRequest), naming the
// body's field it is about where it starts with tool_choice,
// parallel_tool_calls, a tool's name or parameters or a call's name or
// arguments (said as the body's tools[i].function.name and .parameters,
// messages[i].tool_calls[k].function.name and .arguments).
absl::Status InBodyTerms(absl::Status status);

}  // namespace cohost::server::http
