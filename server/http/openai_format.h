// What the OpenAI endpoints send back: the JSON bodies of completions and
// their stream chunks (server-sent events), the model list, and errors as
// OpenAI-style bodies with the HTTP status each gRPC code maps to. The one
// home of absl::Status -> HTTP status for the HTTP front door.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/batching/request.h"
#include "runtime/tokenizer/tool_call_split.h"
#include "server/http/openai_request.h"

namespace cohost::server::http {

// 400, 401, 403, 404, 429, 503, 504, 501 or 500.
int HttpStatusFor(absl::StatusCode code);

// {"error": {"message", "type", "param", "code"}}: `param` the request
// field the error names (WithParam), else null.
std::string ErrorBody(const absl::Status& status);
// `status`, naming the request field it is about (OpenAI's error `param`).
absl::Status WithParam(absl::Status status, std::string_view param);

// What identifies one response: its id, creation time and model.
struct ResponseHeader {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
  Endpoint endpoint = Endpoint::kChatCompletions;
};

// Token counts over all choices (the prompt counted once).
struct UsageCounts {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// "stop", "length", or "tool_calls" for a stop after the answer made calls;
// nullopt for reasons that are not a normal finish.
std::optional<std::string_view> OpenAiFinishReason(runtime::FinishReason reason,
                                                   bool made_calls = false);

// What a call the answer made (runtime::ToolCallSplitter's) adds to a whole
// reply's JSON, besides its arguments' text.
size_t ToolCallBytes(const runtime::ParsedToolCall& call);

// A token as OpenAI shows it in logprobs: its bytes (shown as text, invalid
// UTF-8 replaced, and as a byte list) and its log-probability.
struct ShownLogprob {
  std::string token;
  float logprob = 0;
};
struct ShownToken {
  ShownLogprob chosen;
  std::vector<ShownLogprob> top;
};

struct ChoiceResult {
  std::string text;  // the answer (chat's message.content)
  runtime::FinishReason reason = runtime::FinishReason::kStop;
  std::optional<std::vector<ShownToken>> logprobs;  // when the request asked
  // When the reasoning was split from the answer (CallOptions::split_reasoning):
  // the message's `reasoning` and `reasoning_content`, null when empty.
  std::optional<std::string> reasoning = std::nullopt;
  // The answer's calls: the message's `tool_calls` (its content null when
  // empty); finish_reason "tool_calls" after them when `calls_finish`.
  std::vector<runtime::ParsedToolCall> tool_calls = {};
  bool calls_finish = true;
};

// /v1/completions' text_offset: characters, as Python's str and OpenAI's
// count them, of the text the chosen tokens' bytes show (the one rule for it,
// in a whole body and across the chunks of a stream). A character split over
// tokens counts at the token holding its first byte; a byte that starts no
// character and continues none (the text shows U+FFFD) counts as one.
struct TextOffset {
  int64_t chars = 0;
  int open = 0;  // continuation bytes the last character started still takes
  void Add(std::string_view bytes);
};

// What one stream chunk carries for one choice.
struct ChunkDelta {
  int index = 0;
  bool first = false;  // the choice's first chunk (chat adds the role)
  std::string_view text;
  // Chat: reasoning split from the answer, shown as the delta's `reasoning`
  // and `reasoning_content` when not empty.
  std::string_view reasoning;
  std::optional<std::string_view> finish_reason;      // on the choice's last chunk
  const std::vector<ShownToken>* logprobs = nullptr;  // this chunk's tokens, when asked
  TextOffset text_offset;  // /v1/completions: where this chunk's text starts
  // Chat: the pieces of calls written since the last chunk (a call's first,
  // with its id and name; a further one, without, more of its arguments).
  const std::vector<runtime::ParsedToolCall>* tool_calls = nullptr;
};

// Where the text after `tokens` starts, for text that starts at `offset`.
TextOffset TextOffsetAfter(const std::vector<ShownToken>& tokens, TextOffset offset);

// What a whole (non-streamed) response's JSON takes for `text`, escaped as
// it is written, and for one logprobs entry (the chosen token or an
// alternative) of a token of `token_bytes` bytes: at most, over both
// endpoints' layouts. CompletionCall adds them up as the output comes, and
// ends a whole reply that passes its bound.
size_t JsonTextBytes(std::string_view text);
size_t LogprobEntryBytes(size_t token_bytes);

// The whole (non-streamed) response.
std::string CompletionBody(const ResponseHeader& h, const std::vector<ChoiceResult>& choices,
                           const UsageCounts& usage);

// One server-sent event ("data: {...}\n\n") for a stream chunk of one
// choice. `with_usage_null` adds "usage": null, as OpenAI does on every chunk
// when the stream ends with usage.
std::string ChunkEvent(const ResponseHeader& h, const ChunkDelta& delta, bool with_usage_null);
// The usage chunk (no choices) that ends a stream when include_usage asked.
std::string UsageEvent(const ResponseHeader& h, const UsageCounts& usage);
// An error inside a stream that already started.
std::string ErrorEvent(const absl::Status& status);
inline constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

// GET /v1/models.
std::string ModelListBody(const std::vector<std::string>& names, int64_t created);
// GET /v1/models/{id}: one model object, as each entry of the list.
std::string ModelBody(const std::string& name, int64_t created);

}  // namespace cohost::server::http
