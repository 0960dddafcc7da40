// Validation and tokenization of API requests.

#include "server/request_builder.h"

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/loader_json.h"
#include "runtime/sampling/interned_schemas.h"
#include "server/tool_choice.h"

namespace cohost::server {
namespace {

// The chat's messages and tools as the template takes them. Roles are the
// turns every template knows, and "tool" where the template offers tools
// (any other role, or one spelling control tokens, would reach the
// template unchecked).
absl::Status ChatFrom(const v1::ChatInput& chat, const runtime::Tokenizer& tokenizer,
                      std::vector<runtime::ChatMessage>* messages, runtime::ChatOptions* options) {
  if (chat.messages().empty()) return absl::InvalidArgumentError("chat input has no messages");
  const bool tools = tokenizer.OffersTools();
  messages->reserve(chat.messages_size());
  for (int i = 0; i < chat.messages_size(); ++i) {
    const v1::ChatMessage& m = chat.messages(i);
    // A "tool" message where no tools are offered is the template's to
    // refuse (CheckToolsServed, FAILED_PRECONDITION).
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant" &&
        m.role() != "tool") {
      return absl::InvalidArgumentError(absl::StrCat(
          "messages[", i, "].role must be system, user or assistant", tools ? " (or tool)" : ""));
    }
    runtime::ChatMessage& message = messages->emplace_back();
    message.role = m.role();
    message.content = m.content();
    if (m.tool_calls_size() > 0 && m.role() != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].tool_calls: only an assistant makes calls"));
    }
    if (m.has_reasoning()) {
      if (m.role() != "assistant") {
        return absl::InvalidArgumentError(
            absl::StrCat("messages[", i, "].reasoning: only an assistant turn has reasoning"));
      }
      message.reasoning = m.reasoning();
    }
    for (int k = 0; k < m.tool_calls_size(); ++k) {
      const v1::ToolCall& call = m.tool_calls(k);
      const std::string where = absl::StrCat("messages[", i, "].tool_calls[", k, "]");
      if (!IsToolName(call.name())) {
        return absl::InvalidArgumentError(where + ".name must be 1-64 of [A-Za-z0-9_-]");
      }
      RETURN_IF_ERROR(CheckJsonObject(call.arguments(), where + ".arguments"));
      message.tool_calls.push_back({call.id(), call.name(), call.arguments()});
    }
  }
  for (const v1::Tool& tool : chat.tools()) {
    options->tools.push_back({tool.name(), tool.description(), tool.parameters()});
  }
  if (chat.has_enable_thinking()) options->enable_thinking = chat.enable_thinking();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const v1::GenerateRequest& request,
                                               const runtime::Tokenizer& tokenizer) {
  switch (request.input_case()) {
    case v1::GenerateRequest::kText:
      // An empty text is the model's BOS alone where it adds one
      // (unconditional generation, as OpenAI and vLLM allow), nothing else.
      if (request.text().empty()) {
        if (!tokenizer.adds_bos()) {
          return absl::InvalidArgumentError("text input is empty (the model adds no BOS)");
        }
        return std::vector<int32_t>{tokenizer.bos_id()};
      }
      // The same rules as `cohost run`: BOS/EOS per the model, special-token
      // spellings parsed.
      return tokenizer.Encode(request.text(), /*add_special=*/true);
    case v1::GenerateRequest::kChat: {
      std::vector<runtime::ChatMessage> messages;
      runtime::ChatOptions options;
      RETURN_IF_ERROR(ChatFrom(request.chat(), tokenizer, &messages, &options));
      // Control-token spellings in a message's content (and in tools and
      // calls) stay text (Tokenizer::EncodeChat): a client cannot forge turns.
      absl::StatusOr<std::vector<int32_t>> ids = tokenizer.EncodeChat(messages, options);
      if (!ids.ok()) {
        // The template's own NOT_FOUND must not read as "unknown model";
        // invalid UTF-8 is the client's.
        if (ids.status().code() == absl::StatusCode::kInvalidArgument) return ids.status();
        return absl::FailedPreconditionError(
            absl::StrCat("chat input is not supported by this model: ", ids.status().message()));
      }
      return ids;
    }
    case v1::GenerateRequest::kTokens: {
      // Their range is ValidateRequest's to check.
      const auto& ids = request.tokens().ids();
      if (ids.empty()) return absl::InvalidArgumentError("token input is empty");
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    case v1::GenerateRequest::INPUT_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("no input: set text, chat or tokens");
}

runtime::SamplingParams SamplingFrom(const v1::GenerateRequest& request) {
  runtime::SamplingParams p;
  const v1::SamplingParams& s = request.sampling();
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  if (s.has_presence_penalty()) p.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) p.frequency_penalty = s.frequency_penalty();
  if (s.has_seed()) p.seed = s.seed();
  for (const auto& [token, bias] : s.logit_bias()) p.logit_bias.push_back({token, bias});
  std::sort(p.logit_bias.begin(), p.logit_bias.end(), runtime::ByToken);
  p.stop_token_ids.assign(request.stop_token_ids().begin(), request.stop_token_ids().end());
  p.stop_strings.assign(request.stop().begin(), request.stop().end());
  p.ignore_eos = request.ignore_eos();
  // Beyond int32 is refused before (BuildGenerateRequest), with the value sent.
  if (request.has_logprobs()) p.logprobs = static_cast<int32_t>(request.logprobs());
  if (request.response_format() == v1::RESPONSE_FORMAT_JSON_OBJECT) {
    p.response_format = runtime::ResponseFormat::kJsonObject;
  }
  return p;
}

// The request's JSON schema, compiled (the only home of the schema's
// reading: both front doors send it here as text).
absl::StatusOr<std::shared_ptr<const runtime::JsonSchema>> SchemaFrom(
    const v1::GenerateRequest& request) {
  const bool wanted = request.response_format() == v1::RESPONSE_FORMAT_JSON_SCHEMA;
  if (wanted != !request.json_schema().empty()) {
    return absl::InvalidArgumentError(
        "json_schema is given exactly with response_format JSON_SCHEMA");
  }
  if (!wanted) return nullptr;
  ASSIGN_OR_RETURN(const nlohmann::json parsed,
                   runtime::ParseJsonStrict(request.json_schema(), "json_schema"));
  return runtime::InternedSchemas::Global().Compile(parsed);
}

// Where a chat's JSON document starts when its reasoning is split off
// (split_reasoning): after the think block its model's template has it write
// first (Qwen3's, unless the chat turns thinking off), or that its generation
// prompt opens (DeepSeek-R1's), as vLLM's structured output waits for the
// reasoning parser's end of reasoning. Otherwise at once (the output is the
// document alone), as it is where the vocabulary has no think tags as
// tokens, and for a text or token prompt (the client's own).
runtime::JsonPhase JsonPhaseOf(const v1::GenerateRequest& request, runtime::ResponseFormat format,
                               const runtime::Tokenizer& tokenizer, int32_t vocab_size) {
  // A tag past the model's rows could never be drawn (the block never closes).
  const auto in_rows = [](int32_t id, int32_t rows) { return id >= 0 && id < rows; };
  if (format == runtime::ResponseFormat::kText || !request.has_chat() ||
      !request.split_reasoning() || !tokenizer.WritesThinkBlocks() ||
      !in_rows(tokenizer.think_open_id(), vocab_size) ||
      !in_rows(tokenizer.think_close_id(), vocab_size)) {
    return runtime::JsonPhase::kDocument;
  }
  if (tokenizer.OpensThinkBlock()) return runtime::JsonPhase::kThinking;
  const v1::ChatInput& chat = request.chat();
  if (chat.has_enable_thinking() && !chat.enable_thinking()) return runtime::JsonPhase::kDocument;
  return runtime::JsonPhase::kMayThink;
}

// The rest of BuildGenerateRequest, once the cheap checks and the tools' have
// passed and any tool choice is applied.
absl::StatusOr<runtime::GenerateRequest> BuildChecked(const v1::GenerateRequest& request,
                                                      const runtime::Tokenizer& tokenizer,
                                                      const runtime::RequestLimits& limits);

}  // namespace

absl::StatusOr<runtime::GenerateRequest> BuildGenerateRequest(const v1::GenerateRequest& request,
                                                              const runtime::Tokenizer& tokenizer,
                                                              const runtime::RequestLimits& limits,
                                                              ToolOutput* tools) {
  // Cheap checks first: a bad request should not cost a tokenization.
  if (request.has_max_tokens() && request.max_tokens() == 0) {
    return absl::InvalidArgumentError("max_tokens must be >= 1, got 0");
  }
  // Past int32 it would read as another number: said here with the value sent
  // (below it, SamplingParams::Validate says the same).
  if (request.has_logprobs() &&
      request.logprobs() > static_cast<uint32_t>(runtime::kMaxTopLogprobs)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "logprobs must be in [0, %d], got %u", runtime::kMaxTopLogprobs, request.logprobs()));
  }
  // Before the map is copied and sorted.
  RETURN_IF_ERROR(runtime::CheckLogitBiasCount(request.sampling().logit_bias_size()));
  if (!v1::ResponseFormat_IsValid(request.response_format())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "response_format must be TEXT (0), JSON_OBJECT (1) or JSON_SCHEMA (2), got %d",
        request.response_format()));
  }
  // The chat's tools, checked once (the prompt may leave them out).
  if (request.has_chat()) RETURN_IF_ERROR(CheckTools(request.chat()));
  // A tool choice is applied to a copy (a forced call's schema, a stop
  // string, the tools left out), which is then built as any request.
  if (AsksToolChoice(request)) {
    v1::GenerateRequest applied = request;
    ASSIGN_OR_RETURN(const ToolOutput choice, ApplyToolChoice(&applied));
    absl::StatusOr<runtime::GenerateRequest> built = BuildChecked(applied, tokenizer, limits);
    if (!built.ok()) return InToolTerms(choice, built.status());
    if (tools != nullptr) *tools = choice;
    return built;
  }
  if (tools != nullptr) {
    *tools = ToolOutput{.calls = request.chat().tools_size() > 0, .forced = std::nullopt};
  }
  return BuildChecked(request, tokenizer, limits);
}

namespace {

absl::StatusOr<runtime::GenerateRequest> BuildChecked(const v1::GenerateRequest& request,
                                                      const runtime::Tokenizer& tokenizer,
                                                      const runtime::RequestLimits& limits) {
  runtime::GenerateRequest out;
  out.sampling = SamplingFrom(request);
  ASSIGN_OR_RETURN(out.sampling.json_schema, SchemaFrom(request));
  if (out.sampling.json_schema) out.sampling.response_format = runtime::ResponseFormat::kJsonSchema;
  out.sampling.max_tokens = 1;  // a placeholder until the prompt's length is known
  RETURN_IF_ERROR(out.sampling.Validate(limits.vocab_size));

  // Every message costs at least a token: more than the context holds can
  // never fit, and templating and tokenizing them first would let a 4 MB
  // request of tiny messages cost tens of times that in memory.
  if (request.has_chat() && limits.context_length > 0 &&
      request.chat().messages_size() > limits.context_length) {
    return runtime::ContextLengthExceeded(absl::StrFormat(
        "This model's maximum context length is %d tokens; the chat input has %d messages",
        limits.context_length, request.chat().messages_size()));
  }
  ASSIGN_OR_RETURN(out.prompt_ids, PromptIds(request, tokenizer));
  out.sampling.json_phase =
      JsonPhaseOf(request, out.sampling.response_format, tokenizer, limits.vocab_size);
  if (out.prompt_ids.empty()) return absl::InvalidArgumentError("the input encodes to no tokens");
  if (request.has_max_tokens()) {
    // Beyond int32 is beyond every context, said with the value sent.
    if (request.max_tokens() > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrFormat("max_tokens (%d) is past every model's context (this one's is %d "
                          "tokens)",
                          request.max_tokens(), limits.context_length));
    }
    out.sampling.max_tokens = static_cast<int32_t>(request.max_tokens());
  } else {
    ASSIGN_OR_RETURN(out.sampling.max_tokens,
                     runtime::DefaultMaxTokens(out.prompt_ids.size(), limits));
  }
  RETURN_IF_ERROR(runtime::ValidateRequest(out, limits));
  out.external_id = request.request_id();
  out.priority = request.priority();
  return out;
}

}  // namespace
}  // namespace cohost::server
