// `cohost generate`: one streamed generation from a running `cohost serve`. Text
// goes to stdout as it arrives; the time to first token (as this client saw it,
// and as the server measured it) goes to stderr at the end. --json prints one
// object with `cohost run --json`'s fields instead.

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/client/client_commands.h"
#include "tools/client/client_common.h"
#include "tools/client/tool_flags.h"
#include "tools/common/arg_parser.h"
#include "tools/common/sampling_flags.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> GenerateFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"server", "ADDR", "the server, HOST:PORT (required)"},
      {"model", "NAME", "the served model's name (required)"},
      {"prompt", "TEXT", "the prompt (this, or --tokens, is required)"},
      {"tokens", "ID,ID,...", "token ids to use as the prompt, as given"},
      {"chat", "", "send the prompt as a user turn for the model's chat template"},
      {"system", "TEXT", "system message for --chat"},
      {"timeout-ms", "N", "the call's deadline"},
      {"tenant", "T", "tenant name (call metadata x-cohost-tenant)"},
      {"json", "", "print one JSON object (cohost run --json's fields) instead of text"},
      {"help", "", "show this help"},
  };
  for (FlagSpec& s : ToolFlagSpecs()) specs.push_back(std::move(s));
  for (FlagSpec& s : SamplingFlagSpecs()) specs.push_back(std::move(s));
  for (FlagSpec& s : TlsFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

int Usage(const std::vector<FlagSpec>& specs, int code) {
  std::fprintf(stderr,
               "usage: cohost generate --server ADDR --model NAME (--prompt TEXT | --tokens IDS) "
               "[flags]\n\n%s",
               FlagsHelp(specs).c_str());
  return code;
}

int Fail(std::string_view message) {
  std::fprintf(stderr, "cohost generate: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

int Fail(const absl::Status& status) { return Fail(std::string(status.message())); }

absl::StatusOr<v1::GenerateRequest> RequestFromArgs(const ParsedArgs& args) {
  v1::GenerateRequest request;
  request.set_model(*args.Get("model"));
  if (std::optional<std::string> tokens = args.Get("tokens")) {
    if (args.Has("prompt") || args.Has("chat") || args.Has("system")) {
      return absl::InvalidArgumentError(
          "--tokens cannot be combined with --prompt, --chat or --system");
    }
    absl::StatusOr<std::vector<int32_t>> ids = ParseTokenList(*tokens);
    if (!ids.ok()) return ids.status();
    request.mutable_tokens()->mutable_ids()->Add(ids->begin(), ids->end());
  } else if (args.Has("chat")) {
    v1::ChatInput* chat = request.mutable_chat();
    if (std::optional<std::string> system = args.Get("system")) {
      v1::ChatMessage* m = chat->add_messages();
      m->set_role("system");
      m->set_content(*system);
    }
    v1::ChatMessage* m = chat->add_messages();
    m->set_role("user");
    m->set_content(*args.Get("prompt"));
  } else {
    if (args.Has("system")) return absl::InvalidArgumentError("--system needs --chat");
    request.set_text(*args.Get("prompt"));
  }
  std::string json_schema;
  absl::StatusOr<runtime::SamplingParams> params = SamplingParamsFromArgs(args, &json_schema);
  if (!params.ok()) return params.status();
  FillSampling(*params, json_schema, &request);
  RETURN_IF_ERROR(AddToolsFromArgs(args, &request));
  return request;
}

nlohmann::json ResultJson(const ParsedArgs& args, const v1::GenerateRequest& request,
                          const StreamOutcome& o) {
  const v1::Timings& t = o.last.timings();
  const v1::Usage& u = o.last.usage();
  std::vector<int32_t> prompt_ids(request.tokens().ids().begin(), request.tokens().ids().end());
  return {
      {"prompt", args.Get("prompt").value_or("")},
      {"prompt_ids", prompt_ids},  // known only for token input
      {"generated_ids", o.token_ids},
      {"text", o.text},
      {"finish_reason", std::string(FinishReasonName(o.last.finish_reason()))},
      {"ttft_ms", t.time_to_first_token_ms()},
      {"tokens_per_second", t.decode_tokens_per_second()},
      {"queue_ms", t.queue_time_ms()},
      {"total_ms", t.e2e_ms()},
      {"cached_prompt_tokens", u.cached_prompt_tokens()},
      {"prompt_tokens", u.prompt_tokens()},
      {"completion_tokens", u.completion_tokens()},
      {"client_ttft_ms", o.client_ttft_ms},
      {"client_total_ms", o.client_total_ms},
      {"request_id", o.request_id},
  };
}

}  // namespace

int GenerateCommand(int argc, char** argv) {
  const std::vector<FlagSpec> specs = GenerateFlagSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(specs, argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cohost generate: %s\n", std::string(args.status().message()).c_str());
    return Usage(specs, 2);
  }
  if (args->Has("help")) return Usage(specs, 0);
  if (!args->Has("server") || !args->Has("model") ||
      (!args->Has("prompt") && !args->Has("tokens"))) {
    return Usage(specs, 2);
  }
  absl::StatusOr<v1::GenerateRequest> request = RequestFromArgs(*args);
  if (!request.ok()) return Fail(request.status());
  absl::StatusOr<std::optional<int64_t>> timeout_ms =
      args->GetInt("timeout-ms", 1, int64_t{1} << 40);
  if (!timeout_ms.ok()) return Fail(timeout_ms.status());

  CallOptions options;
  options.tenant = args->Get("tenant").value_or("");
  options.timeout_ms = *timeout_ms;
  const bool json = args->Has("json");
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannelFromArgs(*args);
  if (!channel.ok()) return Fail(channel.status());
  std::unique_ptr<v1::Inference::Stub> stub = v1::Inference::NewStub(*channel);
  StreamOutcome outcome = StreamGenerate(*stub, *request, options, [&](const std::string& text) {
    if (json) return;
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (!outcome.status.ok()) {
    if (!json && !outcome.text.empty()) std::fputc('\n', stdout);
    return Fail(outcome.error);
  }
  if (json) {
    std::cout << ResultJson(*args, *request, outcome)
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return 0;
  }
  const v1::Usage& u = outcome.last.usage();
  const v1::Timings& t = outcome.last.timings();
  std::fprintf(stderr,
               "\n[%u prompt tokens (%u cached), %u generated, finish: %s, ttft %.1f ms "
               "(server %.1f ms, queue %.1f ms), %.1f tok/s]\n",
               u.prompt_tokens(), u.cached_prompt_tokens(), u.completion_tokens(),
               std::string(FinishReasonName(outcome.last.finish_reason())).c_str(),
               outcome.client_ttft_ms, t.time_to_first_token_ms(), t.queue_time_ms(),
               t.decode_tokens_per_second());
  return 0;
}

}  // namespace cohost::tools
