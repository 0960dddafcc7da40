// `cohost run`: loads a model and generates for each --prompt, streaming text to
// stdout, or printing one JSON object per prompt with --json.

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "tools/arg_parser.h"
#include "tools/commands.h"
#include "tools/progress.h"
#include "tools/sampling_flags.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> RunFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"model", "PATH", "a .gguf file or a Hugging Face model directory (required)"},
      {"prompt", "TEXT", "a prompt to complete (required)", /*repeated=*/true},
      {"chat", "", "format each prompt as a user turn with the model's chat template"},
      {"system", "TEXT", "system message for --chat"},
      {"json", "", "print one JSON object per prompt instead of streaming text"},
      {"device", "cpu|cuda", "where to run (default cpu)"},
      {"threads", "N", "CPU threads (default: all cores)"},
      {"help", "", "show this help"},
  };
  for (FlagSpec& s : SamplingFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "cohost run: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::unique_ptr<kernels::Backend>> MakeBackend(const ParsedArgs& args) {
  const std::string device = args.Get("device").value_or("cpu");
  absl::StatusOr<std::optional<int64_t>> threads = args.GetInt("threads", 1, 1024);
  if (!threads.ok()) return threads.status();
  if (device == "cpu") return kernels::MakeCpuBackend(static_cast<int>(threads->value_or(0)));
  if (device == "cuda") return kernels::MakeCudaBackend(0);
  return absl::InvalidArgumentError(
      absl::StrCat("--device: expected cpu or cuda, got '", device, "'"));
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const runtime::Tokenizer& tokenizer,
                                               const ParsedArgs& args, const std::string& prompt) {
  if (!args.Has("chat")) return tokenizer.Encode(prompt, /*add_special=*/true);
  std::vector<runtime::ChatMessage> messages;
  if (std::optional<std::string> system = args.Get("system")) {
    messages.push_back({"system", *system});
  }
  messages.push_back({"user", prompt});
  absl::StatusOr<std::string> text = tokenizer.ApplyChatTemplate(messages);
  if (!text.ok()) return text.status();
  return tokenizer.Encode(*text, /*add_special=*/true);
}

nlohmann::json ResultJson(const std::string& prompt, const runtime::GenerationResult& r) {
  return {
      {"prompt", prompt},
      {"prompt_ids", r.prompt_ids},
      {"generated_ids", r.generated_ids},
      {"text", r.text},
      {"finish_reason", std::string(runtime::FinishReasonName(r.finish_reason))},
      {"ttft_ms", r.ttft_ms},
      {"tokens_per_second", r.decode_tokens_per_second},
      {"total_ms", r.total_ms},
  };
}

}  // namespace

int RunCommand(int argc, char** argv) {
  const std::vector<FlagSpec> specs = RunFlagSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(specs, argc, argv);
  if (!args.ok() || args->Has("help") || !args->Has("model") || !args->Has("prompt")) {
    if (!args.ok()) std::fprintf(stderr, "cohost run: %s\n", args.status().message().data());
    std::fprintf(stderr, "usage: cohost run --model PATH --prompt TEXT [flags]\n\n%s",
                 FlagsHelp(specs).c_str());
    return args.ok() && args->Has("help") ? 0 : 2;
  }
  absl::StatusOr<runtime::SamplingParams> params = SamplingParamsFromArgs(*args);
  if (!params.ok()) return Fail(params.status());
  absl::StatusOr<std::unique_ptr<kernels::Backend>> backend = MakeBackend(*args);
  if (!backend.ok()) return Fail(backend.status());

  const std::string model_path = *args->Get("model");
  ProgressBar bar("loading " + model_path);
  absl::StatusOr<runtime::LoadedModel> loaded = runtime::LoadModel(
      model_path, backend->get(), [&](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Finish();
  if (!loaded.ok()) return Fail(loaded.status());

  const bool json = args->Has("json");
  runtime::Generator generator(loaded->model.get(), loaded->tokenizer.get());
  bool first = true;
  for (const std::string& prompt : args->All("prompt")) {
    absl::StatusOr<std::vector<int32_t>> ids = PromptIds(*loaded->tokenizer, *args, prompt);
    if (!ids.ok()) return Fail(ids.status());
    if (!json && !first) std::fputs("\n\n", stdout);
    first = false;
    runtime::Generator::TextCallback stream = nullptr;
    if (!json) {
      stream = [](std::string_view delta) {
        std::fwrite(delta.data(), 1, delta.size(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    absl::StatusOr<runtime::GenerationResult> result = generator.Generate(*ids, *params, stream);
    if (!result.ok()) return Fail(result.status());
    if (json) {
      std::cout << ResultJson(prompt, *result).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    } else {
      std::fprintf(stderr, "\n[%zu prompt tokens, %zu generated, finish: %s, ttft %.1f ms, %.1f tok/s]\n",
                   result->prompt_ids.size(), result->generated_ids.size(),
                   std::string(runtime::FinishReasonName(result->finish_reason)).c_str(),
                   result->ttft_ms, result->decode_tokens_per_second);
    }
  }
  if (!json) std::fputc('\n', stdout);
  return 0;
}

}  // namespace cohost::tools
