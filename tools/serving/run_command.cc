// `cohost run`: loads a model and generates for every --prompt as one
// continuous batch, streaming text to stdout in prompt order (the first prompt
// live, later ones as soon as those before them finish), or printing one JSON
// object per prompt with --json.

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "scheduler/memory_plan.h"
#include "tools/common/arg_parser.h"
#include "tools/common/progress.h"
#include "tools/common/sampling_flags.h"
#include "tools/serving/engine_flags.h"
#include "tools/serving/serving_commands.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> RunFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"model", "PATH", "a .gguf file or a Hugging Face model directory (required)"},
      {"prompt", "TEXT", "a prompt to complete (required)", /*repeated=*/true},
      {"chat", "", "format each prompt as a user turn with the model's chat template"},
      {"system", "TEXT", "system message for --chat"},
      {"json", "", "print one JSON object per prompt instead of streaming text"},
      {"help", "", "show this help"},
  };
  for (FlagSpec& s : EngineFlagSpecs()) specs.push_back(std::move(s));
  for (FlagSpec& s : SamplingFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "cohost run: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const runtime::Tokenizer& tokenizer,
                                               const ParsedArgs& args, const std::string& prompt) {
  if (!args.Has("chat")) {
    if (args.Has("system")) return absl::InvalidArgumentError("--system needs --chat");
    return tokenizer.Encode(prompt, /*add_special=*/true);
  }
  std::vector<runtime::ChatMessage> messages;
  if (std::optional<std::string> system = args.Get("system")) {
    messages.push_back({"system", *system});
  }
  messages.push_back({"user", prompt});
  return tokenizer.EncodeChat(messages);
}

// Receives one prompt's output on the engine thread (here: the main thread,
// which calls Engine::Step). Text of the prompt being shown goes straight to
// stdout; other prompts' text waits in their buffer until their turn.
struct PromptOutput : runtime::TokenSink {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated;
  std::string text;
  size_t shown = 0;  // bytes of text already written to stdout
  bool live = false;
  bool done = false;
  runtime::FinishInfo info;

  bool OnDelta(const runtime::TokenDelta& d) override {
    generated.insert(generated.end(), d.token_ids.begin(), d.token_ids.end());
    text += d.text;
    if (live) Show();
    return true;
  }
  void OnFinish(const runtime::FinishInfo& i) override {
    info = i;
    done = true;
  }
  void Show() {
    std::fwrite(text.data() + shown, 1, text.size() - shown, stdout);
    std::fflush(stdout);
    shown = text.size();
  }
};

nlohmann::json ResultJson(const PromptOutput& o) {
  const runtime::RequestTimings& t = o.info.timings;
  return {
      {"prompt", o.prompt},
      {"prompt_ids", o.prompt_ids},
      {"generated_ids", o.generated},
      {"text", o.text},
      {"finish_reason", std::string(runtime::FinishReasonName(o.info.reason))},
      {"ttft_ms", t.ttft_ms},
      {"tokens_per_second", t.decode_tokens_per_second},
      {"queue_ms", t.queue_ms},
      {"total_ms", t.e2e_ms},
      {"cached_prompt_tokens", o.info.cached_prompt_tokens},
      {"preemptions", o.info.preemptions},
  };
}

void PrintSummary(const PromptOutput& o) {
  std::fprintf(stderr,
               "\n[%zu prompt tokens (%d cached), %zu generated, finish: %s, ttft %.1f ms, "
               "%.1f tok/s]\n",
               o.prompt_ids.size(), o.info.cached_prompt_tokens, o.generated.size(),
               std::string(runtime::FinishReasonName(o.info.reason)).c_str(),
               o.info.timings.ttft_ms, o.info.timings.decode_tokens_per_second);
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
  absl::StatusOr<std::unique_ptr<kernels::Backend>> backend = BackendFromArgs(*args);
  if (!backend.ok()) return Fail(backend.status());
  absl::StatusOr<runtime::WeightsPolicy> weights = WeightsPolicyFromArgs(*args);
  if (!weights.ok()) return Fail(weights.status());

  const std::string model_path = *args->Get("model");
  absl::StatusOr<runtime::EngineConfig> config = EngineConfigFromArgs(*args);
  if (!config.ok()) return Fail(config.status());
  if (!(*backend)->AdoptsHostMemory() && !args->Has("kv-cache-mb")) {
    // A GPU's pool is what its budget leaves beside the model, as cohost
    // serve sizes it (planned before the weights take their part).
    std::vector<scheduler::ModelSpec> models(1);
    models[0].name = "run";
    models[0].path = model_path;
    scheduler::MemorySplitOptions split;
    split.engine = *config;
    split.keep_quantized = weights->keep_quantized;
    absl::StatusOr<std::vector<scheduler::DeviceSetup>> devices = scheduler::SplitDeviceBudgets(
        {{args->Get("device").value_or("cuda"), backend->get()}}, models, split);
    if (!devices.ok()) return Fail(devices.status());
    config->kv_cache_bytes = devices->front().kv_pool_bytes;
    std::fprintf(stderr,
                 "cohost run: KV cache %lld MB, what the device's budget leaves beside "
                 "the model (--kv-cache-mb sets it)\n",
                 static_cast<long long>(config->kv_cache_bytes >> 20));
  }
  ProgressBar bar("loading " + model_path);
  absl::StatusOr<runtime::LoadedModel> loaded = runtime::LoadModel(
      model_path, backend->get(), [&](uint64_t done, uint64_t total) { bar.Update(done, total); },
      *weights);
  bar.Finish();
  if (!loaded.ok()) return Fail(loaded.status());

  absl::StatusOr<std::unique_ptr<runtime::Engine>> engine =
      runtime::Engine::Create(loaded->model.get(), loaded->tokenizer.get(), *config);
  if (!engine.ok()) return Fail(engine.status());

  const bool json = args->Has("json");
  std::vector<std::shared_ptr<PromptOutput>> outputs;
  for (const std::string& prompt : args->All("prompt")) {
    absl::StatusOr<std::vector<int32_t>> ids = PromptIds(*loaded->tokenizer, *args, prompt);
    if (!ids.ok()) return Fail(ids.status());
    auto out = std::make_shared<PromptOutput>();
    out->prompt = prompt;
    out->prompt_ids = *ids;
    runtime::GenerateRequest request;
    request.prompt_ids = *std::move(ids);
    request.sampling = *params;
    if (absl::StatusOr<runtime::RequestId> id = (*engine)->Submit(std::move(request), out);
        !id.ok()) {
      return Fail(id.status());
    }
    outputs.push_back(std::move(out));
  }

  // Step until every prompt finished; show prompts in order as they complete.
  size_t current = 0;
  if (!json) outputs[0]->live = true;
  for (;;) {
    absl::StatusOr<bool> more = (*engine)->Step();
    if (!more.ok()) return Fail(more.status());
    while (current < outputs.size() && outputs[current]->done) {
      PromptOutput& o = *outputs[current];
      if (o.info.reason == runtime::FinishReason::kError) return Fail(o.info.status);
      if (json) {
        std::cout << ResultJson(o).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << std::endl;
      } else {
        o.Show();
        PrintSummary(o);
      }
      if (++current < outputs.size() && !json) {
        std::fputs("\n\n", stdout);
        outputs[current]->live = true;
        outputs[current]->Show();
      }
    }
    if (!*more) break;
  }
  return current == outputs.size() ? 0 : Fail(absl::InternalError("engine stopped early"));
}

}  // namespace cohost::tools
