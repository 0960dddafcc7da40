// The continuous-batching engine: one step = drain the inbox, schedule, run one
// flattened batch, sample, stream, retire. All sequence state lives here and is
// touched only by the thread that calls Step().

#include "runtime/engine/engine.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "runtime/engine/engine_state.h"
#include "runtime/model/model.h"

namespace cohost::runtime {

Engine::Engine(Model* model, const Tokenizer* tokenizer, const EngineConfig& config)
    : model_(model), tokenizer_(tokenizer), config_(config) {}

Engine::~Engine() {
  Stop();
  // Whatever is still live (or never stepped in) ends as cancelled.
  std::vector<std::unique_ptr<LiveRequest>> pending;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    pending.swap(impl_->inbox);
  }
  for (auto& r : pending) {
    FinishInfo info;
    info.reason = FinishReason::kCancelled;
    info.prompt_tokens = r->seq.num_prompt_tokens;
    r->sink->OnFinish(info);
  }
  for (auto& [id, r] : impl_->live) {
    FinishInfo info;
    info.reason = FinishReason::kCancelled;
    info.prompt_tokens = r->seq.num_prompt_tokens;
    info.completion_tokens = r->seq.num_generated();
    r->sink->OnFinish(info);
  }
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(Model* model, const Tokenizer* tokenizer,
                                                       const EngineConfig& config) {
  if (model == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("an engine needs a model and a tokenizer");
  }
  const ModelConfig& mc = model->config();
  const StepSchedulerConfig& sc = config.step_scheduler;
  if (config.block_size < 1 || config.block_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrFormat("block size %d must be in [1, 1024]", config.block_size));
  }
  if (sc.max_num_seqs < 1 || sc.max_tokens_per_step < 1 || sc.max_prefill_chunk < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "scheduler limits must be positive (max_num_seqs=%d, max_tokens_per_step=%d, "
        "max_prefill_chunk=%d)",
        sc.max_num_seqs, sc.max_tokens_per_step, sc.max_prefill_chunk));
  }
  if (sc.max_tokens_per_step < sc.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "max_tokens_per_step (%d) must be at least max_num_seqs (%d) so every running "
        "sequence can decode each step",
        sc.max_tokens_per_step, sc.max_num_seqs));
  }
  const size_t per_block =
      KvCache::BytesPerBlock(mc, model->backend()->compute_dtype(), config.block_size);
  int64_t num_blocks = config.num_kv_blocks;
  if (num_blocks <= 0) num_blocks = config.kv_cache_bytes / static_cast<int64_t>(per_block);
  if (num_blocks < 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the KV budget of %d bytes holds %d blocks of %d bytes; at least 2 are needed",
        config.kv_cache_bytes, num_blocks, per_block));
  }
  if (num_blocks > (int64_t{1} << 30) / config.block_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the KV pool of %d blocks of %d tokens is more than 2^30 tokens",
                        num_blocks, config.block_size));
  }
  std::unique_ptr<Engine> engine(new Engine(model, tokenizer, config));
  engine->impl_ =
      std::make_unique<Impl>(static_cast<int32_t>(num_blocks), config.block_size, config);
  ASSIGN_OR_RETURN(
      engine->impl_->kv_cache,
      KvCache::Create(model->backend(), mc, static_cast<int32_t>(num_blocks), config.block_size));
  RequestLimits& limits = engine->limits_;
  limits.vocab_size = mc.vocab_size;
  limits.context_length = mc.max_position_embeddings;
  limits.kv_capacity_tokens =
      int64_t{engine->impl_->kv_manager.num_usable_blocks()} * config.block_size;
  if (!sc.chunked_prefill) {
    limits.max_unchunked_tokens = std::min(sc.max_tokens_per_step, sc.max_prefill_chunk);
  }
  engine->impl_->counters.kv_blocks_total = engine->impl_->kv_manager.num_usable_blocks();
  engine->impl_->counters.kv_blocks_free = engine->impl_->kv_manager.num_free_blocks();
  engine->impl_->snapshot = engine->impl_->counters;
  return engine;
}

const ModelConfig& Engine::model_config() const { return model_->config(); }

absl::StatusOr<RequestId> Engine::Submit(GenerateRequest request, std::shared_ptr<TokenSink> sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  RETURN_IF_ERROR(ValidateRequest(request, limits_));
  const Clock::time_point now = Now();
  if (request.deadline && *request.deadline <= now) {
    return absl::DeadlineExceededError("the request's deadline passed before it was queued");
  }
  RequestId id;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    id = impl_->next_id++;
    impl_->inbox.push_back(std::make_unique<LiveRequest>(id, std::move(request), std::move(sink),
                                                         *tokenizer_, impl_->seed_source(), now));
    impl_->wake.notify_one();
  }
  if (config_.on_work) config_.on_work();
  return id;
}

void Engine::Abort(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->aborts.push_back(id);
    impl_->wake.notify_one();
  }
  if (config_.on_work) config_.on_work();
}

EngineLoad Engine::Load() const {
  EngineLoad load;
  auto awaiting = [&load](const LiveRequest& r) {
    ++load.num_live;
    if (r.seq.num_generated() > 0) return;
    ++load.num_awaiting_first;
    if (!load.oldest_awaiting_first || r.submitted < *load.oldest_awaiting_first) {
      load.oldest_awaiting_first = r.submitted;
    }
  };
  for (const auto& [id, r] : impl_->live) awaiting(*r);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const std::unique_ptr<LiveRequest>& r : impl_->inbox) awaiting(*r);
    load.has_work = load.num_live > 0 || !impl_->aborts.empty();
  }
  load.tokens_computed = impl_->counters.num_tokens_computed;
  return load;
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  EngineStats s = impl_->snapshot;
  s.num_waiting += static_cast<int32_t>(impl_->inbox.size());
  return s;
}

void Engine::Start() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->loop.joinable()) return;
    impl_->stop = false;
  }
  impl_->loop = std::thread([this] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(impl_->mu);
        impl_->wake.wait(lock, [this] {
          return impl_->stop || !impl_->inbox.empty() || !impl_->aborts.empty() ||
                 !impl_->live.empty();
        });
        if (impl_->stop) return;
      }
      absl::StatusOr<bool> more = Step();
      if (!more.ok()) {
        std::fprintf(stderr, "cohost engine: step failed: %s\n",
                     std::string(more.status().message()).c_str());
      }
    }
  });
}

void Engine::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
    impl_->wake.notify_all();
  }
  if (impl_->loop.joinable()) impl_->loop.join();
}

}  // namespace cohost::runtime
