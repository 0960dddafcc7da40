// The continuous-batching engine: one step = drain the inbox, schedule, run one
// flattened batch, sample, stream, retire. All sequence state lives here and is
// touched only by the thread that calls Step().

#include "runtime/engine.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "runtime/engine_state.h"

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
  const ModelConfig& mc = model->config();
  const SchedulerConfig& sc = config.scheduler;
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
    return absl::InvalidArgumentError("the KV pool is too large");
  }
  std::unique_ptr<Engine> engine(new Engine(model, tokenizer, config));
  engine->impl_ = std::make_unique<Impl>(static_cast<int32_t>(num_blocks), config.block_size,
                                         config);
  absl::StatusOr<std::unique_ptr<KvCache>> kv = KvCache::Create(
      model->backend(), mc, static_cast<int32_t>(num_blocks), config.block_size);
  if (!kv.ok()) return kv.status();
  engine->impl_->kv_cache = *std::move(kv);
  engine->impl_->counters.kv_blocks_total = engine->impl_->kv_manager.num_usable_blocks();
  engine->impl_->counters.kv_blocks_free = engine->impl_->kv_manager.num_free_blocks();
  engine->impl_->snapshot = engine->impl_->counters;
  return engine;
}

int32_t Engine::kv_capacity_tokens() const {
  return impl_->kv_manager.num_usable_blocks() * impl_->kv_manager.block_size();
}

absl::StatusOr<RequestId> Engine::Submit(GenerateRequest request,
                                         std::shared_ptr<TokenSink> sink) {
  const ModelConfig& mc = model_->config();
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  if (request.prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (int32_t id : request.prompt_ids) {
    if (id < 0 || id >= mc.vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "prompt token id %d is outside the vocabulary [0, %d)", id, mc.vocab_size));
    }
  }
  if (absl::Status s = request.sampling.Validate(mc.vocab_size); !s.ok()) return s;
  if (request.deadline && *request.deadline <= Clock::now()) {
    return absl::DeadlineExceededError("the request's deadline passed before it was queued");
  }
  const int64_t need =
      static_cast<int64_t>(request.prompt_ids.size()) + request.sampling.max_tokens;
  if (need > mc.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt (%d tokens) plus max_tokens (%d) exceeds the model's context of %d tokens",
        request.prompt_ids.size(), request.sampling.max_tokens, mc.max_position_embeddings));
  }
  const SchedulerConfig& sc = config_.scheduler;
  if (!sc.chunked_prefill &&
      need - 1 > std::min(sc.max_tokens_per_step, sc.max_prefill_chunk)) {
    // Without chunking a sequence (re)starts whole, and after a preemption
    // "whole" includes its generated tokens.
    return absl::InvalidArgumentError(absl::StrFormat(
        "with chunked prefill off, prompt (%d tokens) plus max_tokens (%d) must fit one "
        "step of %d tokens",
        request.prompt_ids.size(), request.sampling.max_tokens,
        std::min(sc.max_tokens_per_step, sc.max_prefill_chunk)));
  }
  if (need > kv_capacity_tokens()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt (%d tokens) plus max_tokens (%d) can never fit in the KV pool of %d tokens",
        request.prompt_ids.size(), request.sampling.max_tokens, kv_capacity_tokens()));
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  const RequestId id = impl_->next_id++;
  impl_->inbox.push_back(std::make_unique<LiveRequest>(id, std::move(request), std::move(sink),
                                                       *tokenizer_, impl_->seed_source()));
  impl_->wake.notify_one();
  return id;
}

void Engine::Abort(RequestId id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->aborts.push_back(id);
  impl_->wake.notify_one();
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
