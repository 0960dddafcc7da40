#include "bench/sim/measure_cost.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/cpu_info.h"
#include "common/status_macros.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/model/kv_cache.h"

namespace cohost::sim {
namespace {

class DiscardSink : public runtime::TokenSink {
 public:
  bool OnDelta(const runtime::TokenDelta&) override { return true; }
  void OnFinish(const runtime::FinishInfo&) override {}
};

// The median seconds of a decode step of one sequence whose prompt is
// `prompt_len` tokens (its last 16 of 24 decode steps, so the prompt's own
// steps are past).
absl::StatusOr<double> DecodeStepSeconds(runtime::Engine& engine, int32_t prompt_len,
                                         int32_t vocab) {
  runtime::GenerateRequest r;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back((i * 7919 + 13) % vocab);
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 24;
  r.sampling.ignore_eos = true;
  RETURN_IF_ERROR(engine.Submit(std::move(r), std::make_shared<DiscardSink>()).status());
  std::vector<double> steps;
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(const bool more, engine.Step());
    steps.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!more) break;
  }
  if (steps.size() < 17) return absl::InternalError("too few decode steps to time");
  std::vector<double> last(steps.end() - 17, steps.end() - 1);
  std::nth_element(last.begin(), last.begin() + 8, last.end());
  return last[8];
}

}  // namespace

absl::StatusOr<SimCost> MeasureCpuCost(const std::string& model_path, double device_bytes) {
  // As `cohost serve` runs it by default: int8 weights (--cpu-precision
  // int8) and an fp16 KV cache.
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend(0, kernels::DType::kF16);
  const auto load_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      runtime::LoadedModel loaded,
      runtime::LoadModel(model_path, backend.get(), nullptr, {.keep_quantized = true}));
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  runtime::EngineConfig config;
  ASSIGN_OR_RETURN(std::unique_ptr<runtime::Engine> engine,
                   runtime::Engine::Create(loaded.model.get(), loaded.tokenizer.get(), config));
  // Prompts of several sizes one at a time, each with a few decode steps:
  // steps from 1 to 512 tokens, so that the line's two parts separate.
  const int32_t vocab = loaded.config().vocab_size;
  for (int round = 0; round < 2; ++round) {
    for (int32_t len : {16, 64, 128, 256, 512}) {
      runtime::GenerateRequest r;
      for (int32_t i = 0; i < len; ++i) r.prompt_ids.push_back((i * 7919 + len) % vocab);
      r.sampling.temperature = 0;
      r.sampling.max_tokens = 4;
      r.sampling.ignore_eos = true;
      RETURN_IF_ERROR(engine->Submit(std::move(r), std::make_shared<DiscardSink>()).status());
      for (;;) {
        ASSIGN_OR_RETURN(const bool more, engine->Step());
        if (!more) break;
      }
    }
  }
  const runtime::EngineStats stats = engine->Stats();
  if (!stats.step_cost) return absl::InternalError("the engine fitted no step cost");
  // The context's part: decode steps after a short and a long prompt.
  constexpr int32_t kShort = 16, kLong = 1536;
  ASSIGN_OR_RETURN(const double short_step, DecodeStepSeconds(*engine, kShort, vocab));
  ASSIGN_OR_RETURN(const double long_step, DecodeStepSeconds(*engine, kLong, vocab));
  const double per_context = std::max(0.0, (long_step - short_step) / (kLong - kShort));
  const kernels::CpuInfo cpu = kernels::HostCpuInfo();
  SimCost c = MeasuredCost(absl::StrCat("cpu-", loaded.config().architecture), *stats.step_cost,
                           per_context, static_cast<double>(loaded.model->weights_bytes()),
                           static_cast<double>(runtime::KvCache::BytesPerBlock(
                               loaded.config(), backend->kv_dtype(), 16)) /
                               16.0,
                           device_bytes, load_seconds);
  c.source =
      absl::StrCat(c.source, " (", model_path, " on ", cpu.brand.empty() ? "this CPU" : cpu.brand,
                   ", ", cpu.quant_kernels, " kernels; weights ",
                   loaded.model->weights_bytes() >> 20, " MiB, load ", load_seconds, " s)");
  return c;
}

}  // namespace cohost::sim
