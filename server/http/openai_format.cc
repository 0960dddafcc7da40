// OpenAI-shaped JSON out.

#include "server/http/openai_format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"
#include "runtime/batching/request_validation.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

std::string_view ErrorType(int http_status) {
  switch (http_status) {
    case 400:
    case 404:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return "server_error";
  }
}

// The gRPC code's canonical name in lower case, e.g. "resource_exhausted".
std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

constexpr char kParamPayload[] = "cohost.dev/openai_param";

Json ErrorJson(const absl::Status& status) {
  // OpenAI's code for a request longer than the model holds, which clients
  // (LiteLLM's context-window fallbacks, agent frameworks' condensers) act on.
  const std::string code = runtime::IsContextLengthExceeded(status) ? "context_length_exceeded"
                                                                    : CodeName(status.code());
  const auto param = status.GetPayload(kParamPayload);
  return Json{{"error",
               {{"message", std::string(status.message())},
                {"type", ErrorType(HttpStatusFor(status.code()))},
                {"param", param ? Json(std::string(*param)) : Json(nullptr)},
                {"code", code}}}};
}

Json Header(const ResponseHeader& h, bool chunk) {
  const bool chat = h.endpoint == Endpoint::kChatCompletions;
  const char* object =
      chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return Json{{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

Json UsageJson(const UsageCounts& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}}};
}

std::string Event(const Json& j) {
  // Invalid UTF-8 cannot reach here (text deltas are UTF-8-safe); replace
  // rather than throw should it ever.
  return absl::StrCat("data: ", j.dump(-1, ' ', false, Json::error_handler_t::replace), "\n\n");
}

// OpenAI shows a token the model rules out as -9999.
double ShownValue(float logprob) { return std::isfinite(logprob) ? logprob : -9999.0; }

Json Bytes(const std::string& token) {
  Json bytes = Json::array();
  for (unsigned char c : token) bytes.push_back(static_cast<int>(c));
  return bytes;
}

Json ChatEntry(const ShownLogprob& t) {
  return Json{{"token", t.token}, {"logprob", ShownValue(t.logprob)}, {"bytes", Bytes(t.token)}};
}

}  // namespace

void TextOffset::Add(std::string_view bytes) {
  for (const unsigned char c : bytes) {
    if (c >= 0x80 && c < 0xC0 && open > 0) {  // continues the open character
      --open;
      continue;
    }
    ++chars;  // a character's first byte, or a stray byte shown as U+FFFD
    const size_t length = Utf8SequenceLength(c);
    open = length > 1 ? static_cast<int>(length) - 1 : 0;
  }
}

TextOffset TextOffsetAfter(const std::vector<ShownToken>& tokens, TextOffset offset) {
  for (const ShownToken& t : tokens) offset.Add(t.chosen.token);
  return offset;
}

namespace {

// choice.logprobs in the endpoint's shape.
Json LogprobsJson(Endpoint endpoint, const std::vector<ShownToken>& tokens,
                  TextOffset text_offset) {
  if (endpoint == Endpoint::kChatCompletions) {
    Json content = Json::array();
    for (const ShownToken& t : tokens) {
      Json entry = ChatEntry(t.chosen);
      Json top = Json::array();
      for (const ShownLogprob& alt : t.top) top.push_back(ChatEntry(alt));
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    return Json{{"content", std::move(content)}, {"refusal", nullptr}};
  }
  Json text = Json::array(), values = Json::array(), top = Json::array(), offsets = Json::array();
  for (const ShownToken& t : tokens) {
    text.push_back(t.chosen.token);
    values.push_back(ShownValue(t.chosen.logprob));
    // Keyed by the text as shown: byte tokens that show alike (a lone lead
    // byte each shows as U+FFFD) would be duplicate keys, of which a JSON
    // parser keeps only one; the likelier is kept.
    Json alternatives = Json::object();
    for (const ShownLogprob& alt : t.top) {
      const std::string shown = runtime::SanitizeUtf8(alt.token);
      const double value = ShownValue(alt.logprob);
      auto it = alternatives.find(shown);
      if (it == alternatives.end() || it->get<double>() < value) alternatives[shown] = value;
    }
    top.push_back(std::move(alternatives));
    offsets.push_back(text_offset.chars);
    text_offset.Add(t.chosen.token);
  }
  return Json{{"tokens", std::move(text)},
              {"token_logprobs", std::move(values)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

// A message's tool_calls; a stream's number theirs, and a call's further
// piece (no id) is its index and more of its arguments.
Json ToolCallsJson(const std::vector<runtime::ParsedToolCall>& calls, bool stream) {
  Json list = Json::array();
  for (const runtime::ParsedToolCall& c : calls) {
    if (c.id.empty()) {
      list.push_back({{"index", c.index}, {"function", {{"arguments", c.arguments}}}});
      continue;
    }
    Json call{{"id", c.id},
              {"type", "function"},
              {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
    if (stream) call["index"] = c.index;
    list.push_back(std::move(call));
  }
  return list;
}

Json Finish(std::optional<std::string_view> reason) {
  return reason ? Json(std::string(*reason)) : Json(nullptr);
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

std::string ErrorBody(const absl::Status& status) {
  return ErrorJson(status).dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::Status WithParam(absl::Status status, std::string_view param) {
  status.SetPayload(kParamPayload, absl::Cord(absl::string_view(param.data(), param.size())));
  return status;
}

std::optional<std::string_view> OpenAiFinishReason(runtime::FinishReason reason, bool made_calls) {
  switch (reason) {
    case runtime::FinishReason::kStop:
    case runtime::FinishReason::kStopString:
      return made_calls ? "tool_calls" : "stop";
    case runtime::FinishReason::kLength:
      return "length";
    case runtime::FinishReason::kCancelled:
    case runtime::FinishReason::kError:
      break;
  }
  return std::nullopt;
}

size_t ToolCallBytes(const runtime::ParsedToolCall& call) {
  // {"index":N,"id":"..","type":"function","function":{"name":"..","arguments":""}}
  // with its comma, the stream's layout (the larger).
  return 96 + call.id.size() + JsonTextBytes(call.name);
}

size_t JsonTextBytes(std::string_view text) {
  size_t bytes = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
      bytes += 2;
    } else {
      bytes += c < 0x20 ? 6 : 1;  // \u00XX; output text is whole UTF-8 (TokenDelta)
    }
  }
  return bytes;
}

size_t LogprobEntryBytes(size_t token_bytes) {
  // Chat's {"token":"..","logprob":..,"bytes":[..],"top_logprobs":[]} with
  // its comma, the largest layout: 55 bytes and the logprob, a float shown
  // as the shortest double that reads back (up to 24 characters:
  // -1.1920928955078125e-07), the token escaped (at most 6 a byte) and
  // listed (at most 4 a byte).
  return 84 + 10 * token_bytes;
}

std::string CompletionBody(const ResponseHeader& h, const std::vector<ChoiceResult>& choices,
                           const UsageCounts& usage) {
  Json j = Header(h, /*chunk=*/false);
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& choice = choices[i];
    const bool calls = !choice.tool_calls.empty();
    Json c{
        {"index", i},
        {"logprobs", choice.logprobs ? LogprobsJson(h.endpoint, *choice.logprobs, TextOffset{})
                                     : Json(nullptr)},
        {"finish_reason", Finish(OpenAiFinishReason(choice.reason, calls && choice.calls_finish))}};
    if (h.endpoint == Endpoint::kChatCompletions) {
      c["message"] = {
          {"role", "assistant"},
          {"content", calls && choice.text.empty() ? Json(nullptr) : Json(choice.text)}};
      if (calls) c["message"]["tool_calls"] = ToolCallsJson(choice.tool_calls, /*stream=*/false);
      if (const std::optional<std::string>& r = choice.reasoning) {
        // vLLM's name, and the one DeepSeek and llama.cpp's server use.
        const Json shown = r->empty() ? Json(nullptr) : Json(*r);
        c["message"]["reasoning"] = shown;
        c["message"]["reasoning_content"] = shown;
      }
    } else {
      c["text"] = choice.text;
    }
    list.push_back(std::move(c));
  }
  j["choices"] = std::move(list);
  j["usage"] = UsageJson(usage);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ChunkEvent(const ResponseHeader& h, const ChunkDelta& d, bool with_usage_null) {
  Json j = Header(h, /*chunk=*/true);
  Json c{{"index", d.index},
         {"logprobs", d.logprobs != nullptr ? LogprobsJson(h.endpoint, *d.logprobs, d.text_offset)
                                            : Json(nullptr)},
         {"finish_reason", Finish(d.finish_reason)}};
  if (h.endpoint == Endpoint::kChatCompletions) {
    Json delta = Json::object();
    const bool calls = d.tool_calls != nullptr && !d.tool_calls->empty();
    if (d.first) delta["role"] = "assistant";
    if (!d.text.empty()) {
      delta["content"] = std::string(d.text);
    } else if (d.first && !d.finish_reason) {
      delta["content"] = calls ? Json(nullptr) : Json("");  // OpenAI's first chunk of calls
    }
    if (!d.reasoning.empty()) {
      delta["reasoning"] = std::string(d.reasoning);
      delta["reasoning_content"] = std::string(d.reasoning);
    }
    if (calls) delta["tool_calls"] = ToolCallsJson(*d.tool_calls, /*stream=*/true);
    c["delta"] = std::move(delta);
  } else {
    c["text"] = std::string(d.text);
  }
  j["choices"] = Json::array({std::move(c)});
  if (with_usage_null) j["usage"] = nullptr;
  return Event(j);
}

std::string UsageEvent(const ResponseHeader& h, const UsageCounts& usage) {
  Json j = Header(h, /*chunk=*/true);
  j["choices"] = Json::array();
  j["usage"] = UsageJson(usage);
  return Event(j);
}

std::string ErrorEvent(const absl::Status& status) { return Event(ErrorJson(status)); }

namespace {

Json ModelObject(const std::string& name, int64_t created) {
  return {{"id", name}, {"object", "model"}, {"created", created}, {"owned_by", "cohost"}};
}

}  // namespace

std::string ModelListBody(const std::vector<std::string>& names, int64_t created) {
  Json data = Json::array();
  for (const std::string& name : names) data.push_back(ModelObject(name, created));
  return Json{{"object", "list"}, {"data", std::move(data)}}.dump();
}

std::string ModelBody(const std::string& name, int64_t created) {
  return ModelObject(name, created).dump();
}

}  // namespace cohost::server::http
