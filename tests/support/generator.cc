// One-sequence generation loop over Model::Forward with a private KV cache.

#include "tests/support/generator.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "common/status_macros.h"
#include "runtime/batching/request_validation.h"
#include "runtime/model/kv_cache.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/stop_checker.h"
#include "runtime/tokenizer/detokenizer.h"

namespace cohost::runtime {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

Generator::Generator(Model* model, const Tokenizer* tokenizer, GeneratorOptions options)
    : model_(model), tokenizer_(tokenizer), options_(options) {}

absl::StatusOr<GenerationResult> Generator::Generate(absl::Span<const int32_t> prompt_ids,
                                                     const SamplingParams& params,
                                                     const TextCallback& on_text) {
  const Clock::time_point t0 = Clock::now();
  const ModelConfig& cfg = model_->config();
  GenerateRequest request;
  request.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  request.sampling = params;
  // Its KV cache is sized to the request, so only the context bounds it.
  RETURN_IF_ERROR(ValidateRequest(request, {cfg.vocab_size, cfg.max_position_embeddings}));
  const int64_t need = static_cast<int64_t>(prompt_ids.size()) + params.max_tokens;

  const int32_t bs = options_.block_size;
  const int32_t num_blocks = static_cast<int32_t>((need + bs - 1) / bs) + 1;
  absl::StatusOr<std::unique_ptr<KvCache>> kv =
      KvCache::Create(model_->backend(), cfg, num_blocks, bs);
  if (!kv.ok()) return kv.status();

  GenerationResult result;
  result.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  std::vector<int32_t> history(prompt_ids.begin(), prompt_ids.end());
  const int32_t num_prompt = static_cast<int32_t>(prompt_ids.size());

  Sampler sampler(params, params.seed.value_or(std::random_device{}()));
  StopChecker stops(params.stop_strings);
  IncrementalDetokenizer detok(*tokenizer_);
  Batch batch;
  std::vector<float> logits;

  // Prefill in chunks; only the last chunk samples.
  for (int32_t start = 0; start < num_prompt; start += options_.prefill_chunk_tokens) {
    const int32_t end = std::min(num_prompt, start + options_.prefill_chunk_tokens);
    FillSingleSequenceBatch(prompt_ids.subspan(start, end - start), start, num_blocks, bs,
                            end == num_prompt, &batch);
    RETURN_IF_ERROR(model_->Forward(batch, **kv, &logits));
  }

  bool stopped_by_client = false;
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (on_text && !on_text(text)) stopped_by_client = true;
  };

  Clock::time_point first_token_time;
  bool done = false;
  while (!done) {
    const int32_t token = sampler.Sample(absl::MakeSpan(logits), history, num_prompt);
    if (result.generated_ids.empty()) {
      first_token_time = Clock::now();
      result.ttft_ms = MsSince(t0);
    }
    result.generated_ids.push_back(token);
    history.push_back(token);

    const bool is_stop_id = std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(),
                                      token) != params.stop_token_ids.end();
    if (is_stop_id || (!params.ignore_eos && tokenizer_->IsEndOfGeneration(token))) {
      result.finish_reason = FinishReason::kStop;
      break;
    }
    StopChecker::Result r = stops.Push(detok.Push(token));
    emit(r.text);
    if (r.stopped) {
      result.finish_reason = FinishReason::kStopString;
      break;
    }
    if (stopped_by_client) return absl::CancelledError("the output sink stopped the generation");
    if (static_cast<int32_t>(result.generated_ids.size()) >= params.max_tokens) {
      result.finish_reason = FinishReason::kLength;
      break;
    }
    const int32_t pos = static_cast<int32_t>(history.size()) - 1;
    FillSingleSequenceBatch(absl::MakeConstSpan(&history[pos], 1), pos, num_blocks, bs, true,
                            &batch);
    RETURN_IF_ERROR(model_->Forward(batch, **kv, &logits));
  }
  if (result.finish_reason != FinishReason::kStopString) {
    StopChecker::Result r = stops.Push(detok.Flush());
    emit(r.text);
    if (r.stopped) {
      result.finish_reason = FinishReason::kStopString;
    } else {
      emit(stops.Flush());
    }
  }

  result.total_ms = MsSince(t0);
  const double decode_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - first_token_time).count();
  if (result.generated_ids.size() > 1 && decode_ms > 0) {
    result.decode_tokens_per_second = (result.generated_ids.size() - 1) * 1000.0 / decode_ms;
  }
  return result;
}

}  // namespace cohost::runtime
