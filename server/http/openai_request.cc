// JSON -> GenerateRequest for the OpenAI endpoints.

#include "server/http/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/loader_json.h"
#include "runtime/sampling/sampling_params.h"
#include "server/http/openai_format.h"
#include "server/http/openai_tools.h"
#include "server/http/request_fields.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

absl::StatusOr<std::optional<double>> Number(const Json& body, const char* name) {
  const Json* v = Field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return Bad(name, "must be a number");
  return v->get<double>();
}

absl::StatusOr<std::optional<int64_t>> Integer(const Json& body, const char* name) {
  const Json* v = Field(body, name);
  if (v == nullptr) return std::nullopt;
  // Stored unsigned above INT64_MAX: get<int64_t> would wrap it negative.
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Bad(name, "is out of range");
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  // 3.0 is an integer; 3.5 is not. A whole number past int64 (the parser
  // reads 2^64 and beyond as a double) is out of range, as 2^63 is.
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && std::floor(d) == d) {
      if (std::abs(d) < 0x1p63) return static_cast<int64_t>(d);  // exact: d is whole
      return Bad(name, "is out of range");
    }
  }
  return Bad(name, "must be an integer");
}

// A chat message's content: a string, or a list of {"type": "text"} parts.
absl::StatusOr<std::string> MessageContent(const Json& message, size_t index) {
  const std::string field = absl::StrCat("messages[", index, "].content");
  const Json* content = Field(message, "content");
  if (content == nullptr) return std::string();  // an assistant turn with tool calls has none
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) return Bad(field, "must be a string or a list of text parts");
  // Parts are joined by newlines, as vLLM joins them.
  std::string text;
  for (const Json& part : *content) {
    const Json* type = part.is_object() ? Field(part, "type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
      return Bad(field,
                 "may hold only parts of type \"text\" (this server takes no images or audio)");
    }
    const Json* t = Field(part, "text");
    if (t == nullptr || !t->is_string()) return Bad(field, "has a text part without text");
    if (&part != &content->front()) text += '\n';
    text += t->get<std::string>();
  }
  return text;
}

// vLLM's chat_template_kwargs: the variables a template reads. cohost's
// formats read enable_thinking (Qwen3's); the others are ignored, as a
// template ignores variables it does not use.
absl::Status ParseTemplateKwargs(const Json& body, v1::ChatInput* chat) {
  const Json* kwargs = Field(body, "chat_template_kwargs");
  if (kwargs == nullptr) return absl::OkStatus();
  if (!kwargs->is_object()) return Bad("chat_template_kwargs", "must be an object");
  if (const Json* thinking = Field(*kwargs, "enable_thinking")) {
    if (!thinking->is_boolean()) {
      return Bad("chat_template_kwargs.enable_thinking", "must be true or false");
    }
    chat->set_enable_thinking(thinking->get<bool>());
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const Json& body, v1::GenerateRequest* out) {
  const Json* messages = Field(body, "messages");
  if (messages == nullptr) return Bad("messages", "is required");
  if (!messages->is_array() || messages->empty())
    return Bad("messages", "must be a non-empty list");
  v1::ChatInput* chat = out->mutable_chat();
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Bad(field, "must be an object");
    const Json* role = Field(m, "role");
    if (role == nullptr || !role->is_string()) return Bad(field + ".role", "is required");
    // The roles allowed are BuildGenerateRequest's to check (as over gRPC).
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system turn
    absl::StatusOr<std::string> content = MessageContent(m, i);
    if (!content.ok()) return content.status();
    v1::ChatMessage* msg = chat->add_messages();
    // An assistant turn's reasoning as replies give it (and clients send
    // back): vLLM's `reasoning`, which it reads first, or the older
    // `reasoning_content` (DeepSeek's). Ignored on other turns, as vLLM
    // ignores it.
    for (const char* name : {"reasoning", "reasoning_content"}) {
      const Json* reasoning = Field(m, name);
      if (reasoning == nullptr) continue;
      if (!reasoning->is_string()) return Bad(absl::StrCat(field, ".", name), "must be a string");
      if (r == "assistant" && !msg->has_reasoning()) {
        msg->set_reasoning(reasoning->get<std::string>());
      }
    }
    msg->set_role(std::move(r));
    msg->set_content(*std::move(content));
  }
  return ParseTemplateKwargs(body, chat);
}

// A string, a list of one string, or a list of token ids.
absl::Status ParsePrompt(const Json& body, v1::GenerateRequest* out) {
  const Json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return Bad("prompt", "is required");
  if (prompt->is_string()) {
    out->set_text(prompt->get<std::string>());
    return absl::OkStatus();
  }
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    out->set_text((*prompt)[0].get<std::string>());
    return absl::OkStatus();
  }
  // One prompt of token ids may come as a list of one list (the OpenAI
  // types allow it; lm-evaluation-harness sends it).
  const Json* ids = prompt;
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_array()) ids = &(*prompt)[0];
  if (ids->is_array() && !ids->empty()) {
    v1::TokenInput* tokens = out->mutable_tokens();
    for (const Json& id : *ids) {
      if (!id.is_number_integer()) {
        return Bad("prompt",
                   "must be a string, a list of one string, or a list of token ids (or a "
                   "list of one such list; send several prompts as several requests)");
      }
      const int64_t v = id.get<int64_t>();
      if (v < 0 || v > std::numeric_limits<int32_t>::max()) {
        return Bad("prompt", "holds a token id out of range");
      }
      tokens->add_ids(static_cast<int32_t>(v));
    }
    return absl::OkStatus();
  }
  return Bad("prompt", "must be a non-empty string or list");
}

// response_format: {"type": "text"} (the default), {"type": "json_object"},
// or {"type": "json_schema", "json_schema": {"name", "schema", "strict"}};
// or vLLM's guided_json (a schema, or its text). On both endpoints, as vLLM
// has them. The schema travels as text and is read where gRPC's is
// (BuildGenerateRequest).
absl::Status ParseResponseFormat(const Json& body, v1::GenerateRequest* out) {
  if (const Json* guided = Field(body, "guided_json")) {
    if (Field(body, "response_format") != nullptr) {
      return Bad("guided_json", "cannot be combined with response_format");
    }
    if (!guided->is_object() && !guided->is_string()) {
      return Bad("guided_json", "must be a JSON schema (an object, or its text)");
    }
    out->set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
    out->set_json_schema(guided->is_string() ? guided->get<std::string>() : guided->dump());
    return absl::OkStatus();
  }
  const Json* format = Field(body, "response_format");
  if (format == nullptr) return absl::OkStatus();
  const Json* type = format->is_object() ? Field(*format, "type") : nullptr;
  if (type == nullptr || !type->is_string()) {
    return Bad("response_format", "must be an object with a string \"type\"");
  }
  const std::string& name = type->get_ref<const std::string&>();
  if (name == "json_object") {
    out->set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
  } else if (name == "json_schema") {
    const Json* spec = Field(*format, "json_schema");
    const Json* schema = spec != nullptr && spec->is_object() ? Field(*spec, "schema") : nullptr;
    if (schema == nullptr || !schema->is_object()) {
      return Bad("response_format", "json_schema needs a \"schema\" object");
    }
    out->set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
    out->set_json_schema(schema->dump());
  } else if (name != "text") {
    return Bad("response_format",
               "is not supported by this server with that type (only \"text\", "
               "\"json_object\" and \"json_schema\")");
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const Json& body, v1::GenerateRequest* out) {
  const Json* stop = Field(body, "stop");
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    out->add_stop(stop->get<std::string>());
    return absl::OkStatus();
  }
  if (!stop->is_array()) return Bad("stop", "must be a string or a list of strings");
  for (const Json& s : *stop) {
    if (!s.is_string()) return Bad("stop", "must be a string or a list of strings");
    out->add_stop(s.get<std::string>());
  }
  return absl::OkStatus();
}

// vLLM's extension: generation also ends at any of these token ids (which are
// checked against the vocabulary with the rest of the sampling parameters).
absl::Status ParseStopTokenIds(const Json& body, v1::GenerateRequest* out) {
  const Json* ids = Field(body, "stop_token_ids");
  if (ids == nullptr || ids->is_null()) return absl::OkStatus();
  if (!ids->is_array()) return Bad("stop_token_ids", "must be a list of token ids");
  for (const Json& id : *ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Bad("stop_token_ids", "must be a list of token ids");
    }
    out->add_stop_token_ids(static_cast<int32_t>(id.get<int64_t>()));
  }
  return absl::OkStatus();
}

// OpenAI's {"50256": -100, ...}: token ids as the keys (decimal strings),
// biases as the values. Their ranges and count are checked with the rest of
// the sampling parameters (BuildGenerateRequest, SamplingParams::Validate).
absl::Status ParseLogitBias(const Json& body, v1::SamplingParams* s) {
  const Json* bias = Field(body, "logit_bias");
  if (bias == nullptr) return absl::OkStatus();
  if (!bias->is_object()) return Bad("logit_bias", "must be an object of token id -> bias");
  // Before each entry is read.
  if (absl::Status s = runtime::CheckLogitBiasCount(bias->size()); !s.ok()) {
    return WithParam(std::move(s), "logit_bias");
  }
  for (const auto& [key, value] : bias->items()) {
    // Decimal without leading zeros, so that no two keys name one token.
    int32_t token = 0;
    if (key.empty() || key.size() > 10 || (key.size() > 1 && key[0] == '0') ||
        !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(key, &token)) {
      return Bad("logit_bias", "keys must be token ids (\"50256\")");
    }
    if (!value.is_number()) return Bad("logit_bias", "values must be numbers");
    // Held inside float's range; SamplingParams::Validate refuses past [-100, 100].
    (*s->mutable_logit_bias())[token] =
        static_cast<float>(std::clamp(value.get<double>(), -1e30, 1e30));
  }
  return absl::OkStatus();
}

absl::Status ParseSampling(const Json& body, CompletionRequest* out) {
  v1::GenerateRequest& r = out->request;
  v1::SamplingParams* s = r.mutable_sampling();
  struct FloatField {
    const char* name;
    void (v1::SamplingParams::*set)(float);
  };
  for (const FloatField& f : {
           FloatField{"temperature", &v1::SamplingParams::set_temperature},
           FloatField{"top_p", &v1::SamplingParams::set_top_p},
           FloatField{"min_p", &v1::SamplingParams::set_min_p},
           FloatField{"presence_penalty", &v1::SamplingParams::set_presence_penalty},
           FloatField{"frequency_penalty", &v1::SamplingParams::set_frequency_penalty},
           FloatField{"repetition_penalty", &v1::SamplingParams::set_repetition_penalty},
       }) {
    absl::StatusOr<std::optional<double>> v = Number(body, f.name);
    if (!v.ok()) return v.status();
    if (*v) (s->*f.set)(static_cast<float>(**v));
  }
  absl::StatusOr<std::optional<int64_t>> top_k = Integer(body, "top_k");
  if (!top_k.ok()) return top_k.status();
  if (*top_k) {
    // vLLM's "no top-k" is -1; ours is 0.
    if (**top_k == -1) **top_k = 0;
    if (**top_k < 0 || **top_k > std::numeric_limits<int32_t>::max()) {
      return Bad("top_k", "must be -1, 0 or a positive integer");
    }
    s->set_top_k(static_cast<int32_t>(**top_k));
  }
  absl::StatusOr<std::optional<int64_t>> seed = Integer(body, "seed");
  if (!seed.ok()) return seed.status();
  if (*seed) s->set_seed(static_cast<uint64_t>(**seed));
  if (absl::Status st = ParseLogitBias(body, s); !st.ok()) return st;

  // max_completion_tokens is the newer name; it wins when both are given.
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    absl::StatusOr<std::optional<int64_t>> v = Integer(body, name);
    if (!v.ok()) return v.status();
    if (!*v) continue;
    if (**v < 1) return Bad(name, "must be at least 1");
    if (**v > std::numeric_limits<uint32_t>::max()) {
      return Bad(name, absl::StrCat("(", **v, ") is more than any model's context"));
    }
    r.set_max_tokens(static_cast<uint32_t>(**v));
  }
  // vLLM's extension: a lower value starts first among the model's waiting
  // requests (vLLM's --scheduling-policy priority), so cohost's priority,
  // where higher starts first, is its negation.
  absl::StatusOr<std::optional<int64_t>> priority = Integer(body, "priority");
  if (!priority.ok()) return priority.status();
  if (*priority) {
    constexpr int64_t kLeast = std::numeric_limits<int32_t>::min();
    constexpr int64_t kMost = std::numeric_limits<int32_t>::max();
    if (**priority < kLeast || **priority > kMost) {
      return Bad("priority", "must be a 32-bit integer");
    }
    // INT32_MIN's negation is one past INT32_MAX, the highest there is.
    r.set_priority(static_cast<int32_t>(std::min(-**priority, kMost)));
  }
  absl::StatusOr<bool> ignore_eos = Boolean(body, "ignore_eos");
  if (!ignore_eos.ok()) return ignore_eos.status();
  r.set_ignore_eos(*ignore_eos);
  if (absl::Status st = ParseStopTokenIds(body, &r); !st.ok()) return st;
  if (absl::Status st = ParseResponseFormat(body, &r); !st.ok()) return st;
  return ParseStop(body, &r);
}

// Chat: logprobs (bool) and top_logprobs (0..20). Completions: logprobs, the
// number of alternatives (0..20; 0 = the chosen tokens only).
absl::Status ParseLogprobs(const Json& body, Endpoint endpoint, v1::GenerateRequest* out) {
  auto in_range = [](const char* name, int64_t n) {
    return n >= 0 && n <= runtime::kMaxTopLogprobs
               ? absl::OkStatus()
               : Bad(name, absl::StrCat("must be in [0, ", runtime::kMaxTopLogprobs, "]"));
  };
  if (endpoint == Endpoint::kCompletions) {
    absl::StatusOr<std::optional<int64_t>> n = Integer(body, "logprobs");
    if (!n.ok()) return n.status();
    if (!*n) return absl::OkStatus();
    if (absl::Status s = in_range("logprobs", **n); !s.ok()) return s;
    out->set_logprobs(static_cast<uint32_t>(**n));
    return absl::OkStatus();
  }
  absl::StatusOr<bool> wanted = Boolean(body, "logprobs");
  if (!wanted.ok()) return wanted.status();
  absl::StatusOr<std::optional<int64_t>> top = Integer(body, "top_logprobs");
  if (!top.ok()) return top.status();
  // top_logprobs: 0 asks for nothing (LangChain sends it): only more needs
  // logprobs, as vLLM has it.
  if (*top && **top != 0 && !*wanted) return Bad("top_logprobs", "needs logprobs: true");
  if (!*wanted) return absl::OkStatus();
  const int64_t n = top->value_or(0);
  if (absl::Status s = in_range("top_logprobs", n); !s.ok()) return s;
  out->set_logprobs(static_cast<uint32_t>(n));
  return absl::OkStatus();
}

// OpenAI fields whose effect this server does not produce. Ignoring one would
// answer 200 with output the client did not ask for (free text where it
// dispatches tool calls or reads a suffix), so a value that
// asks for the effect is refused, naming the field. Values that ask for
// nothing (an empty list, "text", "none", false) pass.
absl::Status RefuseUnsupported(const Json& body, Endpoint endpoint, int n) {
  auto unsupported = [](std::string_view field) {
    return Bad(field, "is not supported by this server");
  };
  auto non_empty = [](const Json* v) {
    return v != nullptr && !((v->is_array() || v->is_object() || v->is_string()) && v->empty());
  };
  for (const char* name : {"functions", "suffix", "guided_regex", "guided_choice", "guided_grammar",
                           "audio", "bad_words", "allowed_token_ids"}) {
    if (non_empty(Field(body, name))) return unsupported(name);
  }
  // A chat's tools are openai_tools.cc's; a text completion has none.
  if (endpoint == Endpoint::kCompletions && non_empty(Field(body, "tools"))) {
    return unsupported("tools");
  }
  // vLLM's output switches, refused where they ask for what this server
  // does not do (and so would answer with output of another shape).
  struct Switch {
    const char* name;
    bool fine;  // the only value served
  };
  for (const Switch& sw :
       {Switch{"include_stop_str_in_output", false}, Switch{"skip_special_tokens", true},
        Switch{"spaces_between_special_tokens", true}, Switch{"add_generation_prompt", true},
        Switch{"continue_final_message", false}, Switch{"use_beam_search", false},
        Switch{"return_tokens_as_token_ids", false}}) {
    absl::StatusOr<bool> v = Boolean(body, sw.name);
    if (!v.ok()) return v.status();
    if (Field(body, sw.name) != nullptr && *v != sw.fine) return unsupported(sw.name);
  }
  absl::StatusOr<std::optional<int64_t>> min_tokens = Integer(body, "min_tokens");
  if (!min_tokens.ok()) return min_tokens.status();
  if (*min_tokens && **min_tokens != 0) return unsupported("min_tokens");
  for (const char* name : {"prompt_logprobs", "truncate_prompt_tokens"}) {
    if (Field(body, name) != nullptr) return unsupported(name);
  }
  for (const std::string_view name : {"tool_choice", "function_call"}) {
    // A chat's tool_choice is openai_tools.cc's.
    if (name == "tool_choice" && endpoint == Endpoint::kChatCompletions) continue;
    const Json* choice = Field(body, std::string(name).c_str());
    if (choice == nullptr) continue;
    if (!choice->is_string() ||
        (choice->get<std::string>() != "none" && choice->get<std::string>() != "auto")) {
      return unsupported(name);
    }
  }
  absl::StatusOr<bool> echo = Boolean(body, "echo");
  if (!echo.ok()) return echo.status();
  if (*echo) return unsupported("echo");
  absl::StatusOr<std::optional<int64_t>> best_of = Integer(body, "best_of");
  if (!best_of.ok()) return best_of.status();
  if (*best_of && **best_of != 1 && **best_of != n) return unsupported("best_of");
  if (const Json* messages = Field(body, "messages"); messages != nullptr && messages->is_array()) {
    for (size_t i = 0; i < messages->size(); ++i) {
      const Json& m = (*messages)[i];
      if (!m.is_object()) continue;
      if (non_empty(Field(m, "function_call"))) {
        return unsupported(absl::StrCat("messages[", i, "].function_call"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, Endpoint endpoint) {
  // Strict, as the model files' JSON: a duplicate key (which nlohmann would
  // let the last of win, so that two readers of one body could disagree) or
  // absurd nesting is an error, and nothing throws.
  absl::StatusOr<Json> parsed =
      runtime::ParseJsonStrict(absl::string_view(body.data(), body.size()), "the body");
  if (!parsed.ok()) return parsed.status();
  const Json& json = *parsed;
  if (!json.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");

  CompletionRequest out;
  out.endpoint = endpoint;
  const Json* model = Field(json, "model");
  if (model == nullptr || !model->is_string() || model->get<std::string>().empty()) {
    return Bad("model", "is required (a name from GET /v1/models)");
  }
  out.request.set_model(model->get<std::string>());

  absl::Status input = endpoint == Endpoint::kChatCompletions ? ParseMessages(json, &out.request)
                                                              : ParsePrompt(json, &out.request);
  if (!input.ok()) return input;
  if (absl::Status s = ParseSampling(json, &out); !s.ok()) return s;
  if (endpoint == Endpoint::kChatCompletions) {
    if (absl::Status s = ParseChatTools(json, body, &out.request); !s.ok()) return s;
  }

  absl::StatusOr<std::optional<int64_t>> n = Integer(json, "n");
  if (!n.ok()) return n.status();
  if (*n) {
    if (**n < 1 || **n > kMaxChoices)
      return Bad("n", absl::StrCat("must be in [1, ", kMaxChoices, "]"));
    out.n = static_cast<int>(**n);
  }
  if (absl::Status s = RefuseUnsupported(json, endpoint, out.n); !s.ok()) return s;
  absl::StatusOr<bool> stream = Boolean(json, "stream");
  if (!stream.ok()) return stream.status();
  out.stream = *stream;
  if (const Json* options = Field(json, "stream_options")) {
    if (!options->is_object()) return Bad("stream_options", "must be an object");
    // As OpenAI's and vLLM's: options of a stream only with one (an empty
    // object asks nothing).
    if (!out.stream && !options->empty()) {
      return Bad("stream_options", "is only allowed with stream: true");
    }
    absl::StatusOr<bool> usage = Boolean(*options, "include_usage");
    if (!usage.ok()) return Bad("stream_options.include_usage", "must be true or false");
    out.include_usage = *usage;
  }
  if (absl::Status s = ParseLogprobs(json, endpoint, &out.request); !s.ok()) return s;
  if (const Json* user = Field(json, "user")) {
    if (!user->is_string()) return Bad("user", "must be a string");
    out.user = user->get<std::string>();
  }
  return out;
}

}  // namespace cohost::server::http
