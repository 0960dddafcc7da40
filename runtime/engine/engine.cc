// The continuous-batching engine: one step = drain the inbox, schedule, run one
// flattened batch, sample, stream, retire. All sequence state lives here and is
// touched only by the thread that calls Step().

#include "runtime/engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "runtime/engine/engine_state.h"
#include "runtime/model/model.h"

namespace cohost::runtime {

Engine::Engine(Model* model, const Tokenizer* tokenizer, const EngineConfig& config)
    : model_(model), tokenizer_(tokenizer), config_(config) {}

Engine::~Engine() {
  Stop();
  // Whatever is still live (or never stepped in) ends as cancelled, with the
  // reason of an abort not yet applied (its model was unloaded: the abort
  // and this engine's end come together).
  std::vector<std::unique_ptr<LiveRequest>> pending;
  absl::flat_hash_map<RequestId, absl::Status> why;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    pending.swap(impl_->inbox);
    for (auto& [id, status] : impl_->aborts) why.try_emplace(id, std::move(status));
    impl_->aborts.clear();
  }
  const auto cancelled = [&why](const LiveRequest& r) {
    FinishInfo info;
    info.reason = FinishReason::kCancelled;
    if (auto it = why.find(r.seq.id); it != why.end()) info.status = it->second;
    info.prompt_tokens = r.seq.num_prompt_tokens;
    info.completion_tokens = r.seq.num_generated();
    return info;
  };
  for (auto& r : pending) r->sink->OnFinish(cancelled(*r));
  for (auto& [id, r] : impl_->live) {
    // Out of the scheduler too: a device's shared tenant counters
    // (EngineConfig::fair_share) outlive this engine.
    impl_->step_scheduler.Remove(&r->seq);
    r->sink->OnFinish(cancelled(*r));
  }
  if (config_.kv_budget != nullptr && impl_->kv_cache != nullptr) {
    const int64_t held = int64_t{impl_->kv_cache->num_groups_backed()} *
                         static_cast<int64_t>(impl_->kv_cache->group_bytes());
    impl_->kv_cache.reset();  // unbacks every group
    config_.kv_budget->Release(held);
  }
}

Engine::KvShape Engine::KvShapeFor(const ModelConfig& mc, const kernels::Backend& backend,
                                   const EngineConfig& config) {
  KvShape shape;
  const int32_t block_size = std::max(config.block_size, 1);
  const auto per_block =
      static_cast<int64_t>(KvCache::BytesPerBlock(mc, backend.kv_dtype(), block_size));
  shape.num_blocks = config.num_kv_blocks > 0
                         ? config.num_kv_blocks
                         : config.kv_cache_bytes / std::max<int64_t>(per_block, 1);
  if (config.kv_budget == nullptr) return shape;
  shape.group_blocks =
      KvCache::GroupBlocks(mc, backend.kv_dtype(), block_size, backend.vm_granularity(),
                           // At least ~8 groups in the engine's share.
                           static_cast<size_t>(std::clamp<int64_t>(config.kv_group_min_bytes, 0,
                                                                   config.kv_cache_bytes / 8)));
  // The pool grants a whole group's bytes at a time, and never past the
  // share: a last, partial group could never be backed.
  shape.num_blocks = shape.num_blocks / shape.group_blocks * shape.group_blocks;
  return shape;
}

absl::Status Engine::CheckKvShape(const ModelConfig& mc, const kernels::Backend& backend,
                                  const EngineConfig& config) {
  if (config.block_size < 1 || config.block_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrFormat("block size %d must be in [1, 1024]", config.block_size));
  }
  const KvShape shape = KvShapeFor(mc, backend, config);
  const int64_t num_blocks = shape.num_blocks;
  const auto per_block =
      static_cast<int64_t>(KvCache::BytesPerBlock(mc, backend.kv_dtype(), config.block_size));
  if (config.kv_budget != nullptr && num_blocks < 2) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "the model's share of the device's KV pool (%d MB) is less than one group of its KV "
        "blocks (%d MB); raise its kv_cap_mb or the pool",
        config.kv_cache_bytes >> 20, (int64_t{shape.group_blocks} * per_block) >> 20));
  }
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
  return absl::OkStatus();
}

RequestLimits Engine::RequestLimitsFor(const ModelConfig& mc, const kernels::Backend& backend,
                                       const EngineConfig& config) {
  RequestLimits limits;
  limits.vocab_size = mc.vocab_size;
  limits.context_length = mc.max_position_embeddings;
  // A shared pool's blocks are promised (the pool holds this engine's cap for
  // it), not backed yet.
  const int64_t num_blocks = KvShapeFor(mc, backend, config).num_blocks;
  limits.kv_capacity_tokens = std::max<int64_t>(num_blocks - 1, 0) * config.block_size;
  const StepSchedulerConfig& sc = config.step_scheduler;
  if (!sc.chunked_prefill) {
    limits.max_unchunked_tokens = std::min(sc.max_tokens_per_step, sc.max_prefill_chunk);
  }
  return limits;
}

int64_t Engine::kv_group_bytes() const {
  return static_cast<int64_t>(impl_->kv_cache->group_bytes());
}

bool Engine::GrowKv() {
  BlockAllocator& a = impl_->kv_manager.mutable_allocator();
  KvCache& kv = *impl_->kv_cache;
  // A draining group is on its way back to the pool for another engine that
  // waits for it; but this engine's own sequences may need it to progress (its
  // oldest may hold blocks there and need one more). Draining is advisory: a
  // draining group with a free block comes back first (one without would not
  // help), and the other engine asks again after this one's work ends (or
  // preempts it, when it is below its floor).
  if (a.StopDrainingOneWithRoom()) return true;
  const int32_t group = a.NextGroupToBack();
  const auto bytes = static_cast<int64_t>(kv.group_bytes());
  if (group < 0 || !config_.kv_budget->Acquire(bytes, KvSeniority())) {
    impl_->kv_short = true;
    return false;
  }
  if (absl::Status s = kv.BackGroup(group); !s.ok()) {
    config_.kv_budget->Release(bytes);
    std::fprintf(stderr, "cohost engine: %s\n", std::string(s.message()).c_str());
    return false;
  }
  a.AddGroup(group);
  return true;
}

int64_t Engine::ReturnDrainedKv() {
  BlockAllocator& a = impl_->kv_manager.mutable_allocator();
  KvCache& kv = *impl_->kv_cache;
  const std::vector<int32_t> taken = a.TakeDrainedGroups();
  for (int32_t group : taken) {
    if (absl::Status s = kv.UnbackGroup(group); !s.ok()) {
      // The allocator no longer uses the group; its memory is the backend's to
      // account for now. Said, and released from the budget all the same.
      std::fprintf(stderr, "cohost engine: %s\n", std::string(s.message()).c_str());
    }
  }
  const int64_t bytes = static_cast<int64_t>(taken.size()) * static_cast<int64_t>(kv.group_bytes());
  if (bytes > 0) config_.kv_budget->Release(bytes);
  return bytes;
}

RequestId Engine::KvSeniority() const {
  const StepScheduler& sched = impl_->step_scheduler;
  RequestId oldest = kPreemptNever;
  for (const Sequence* seq : sched.running()) oldest = std::min(oldest, seq->id);
  if (!sched.waiting().empty()) oldest = std::min(oldest, sched.waiting().front()->id);
  return oldest;
}

int64_t Engine::ReclaimKv(int64_t wanted, int64_t most, RequestId wounder) {
  if (config_.kv_budget == nullptr || wanted <= 0) return 0;
  const bool wound = KvSeniority() > wounder;
  // Work at least as old as the asker's that waits for memory itself keeps
  // even its free groups: given to younger work, it would take them back by
  // preempting that work, and both would recompute without progressing.
  if (!wound && impl_->kv_short) return 0;
  BlockAllocator& a = impl_->kv_manager.mutable_allocator();
  const auto group = static_cast<int64_t>(impl_->kv_cache->group_bytes());
  const int64_t max_groups = std::max<int64_t>(most, 0) / group;
  const int64_t want_groups = std::min(max_groups, (wanted + group - 1) / group);
  int64_t released = ReturnDrainedKv();
  // At every ask: draining groups no longer owed stop (the fullest first); a
  // group that emptied since an earlier ask drains in place of one still
  // held; then the groups holding the fewest blocks start, as many as are
  // still owed.
  const int64_t owed = std::max<int64_t>(want_groups - released / group, 0);
  if (a.num_groups_draining() > owed) {
    a.StopDraining(a.num_groups_draining() - static_cast<int32_t>(owed));
  }
  a.DrainEmptyInstead();
  if (owed > a.num_groups_draining()) {
    a.StartDraining(static_cast<int32_t>(owed) - a.num_groups_draining());
  }
  released += ReturnDrainedKv();
  if (released >= wanted || !wound) return released;
  // Preempting (the asker is below its floor, or its work is older than all
  // of this engine's): the sequences holding the draining groups go. When
  // more is owed than the groups other than the null block's, every sequence
  // goes, so that it can drain too.
  const int64_t still_owed = std::max<int64_t>(want_groups - released / group, 0);
  const bool all = still_owed > a.num_groups_draining();
  impl_->step_scheduler.PreemptHolding(
      [&a, all](BlockId b) { return all || a.IsDrainingGroup(a.GroupOf(b)); });
  released += ReturnDrainedKv();
  const int64_t left = std::max<int64_t>(want_groups - released / group, 0);
  if (left > a.num_groups_draining()) {
    a.StartDraining(static_cast<int32_t>(left - a.num_groups_draining()));
    released += ReturnDrainedKv();
  }
  return released;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(Model* model, const Tokenizer* tokenizer,
                                                       const EngineConfig& config) {
  if (model == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("an engine needs a model and a tokenizer");
  }
  if (config.json_constraint != nullptr && &config.json_constraint->tokenizer() != tokenizer) {
    return absl::InvalidArgumentError("the JSON constraint was built from another tokenizer");
  }
  const ModelConfig& mc = model->config();
  const StepSchedulerConfig& sc = config.step_scheduler;
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
  // A shared pool starts with no memory and grows a group at a time (whole
  // groups only); a fixed one is one group, backed now.
  RETURN_IF_ERROR(CheckKvShape(mc, *model->backend(), config));
  const bool elastic = config.kv_budget != nullptr;
  const KvShape shape = KvShapeFor(mc, *model->backend(), config);
  const int64_t num_blocks = shape.num_blocks;
  // The activations of the largest step, now: the model's footprint is
  // known once its engine exists, and no step allocates.
  RETURN_IF_ERROR(model->ReserveWorkspace(sc.max_tokens_per_step, sc.max_num_seqs));
  model->EnableDecodeGraphs(config.decode_graphs);
  std::unique_ptr<Engine> engine(new Engine(model, tokenizer, config));
  const int32_t group_blocks = shape.group_blocks;
  const int32_t initial_groups = elastic ? 0 : -1;
  engine->impl_ = std::make_unique<Impl>(static_cast<int32_t>(num_blocks), config.block_size,
                                         config, group_blocks, initial_groups);
  ASSIGN_OR_RETURN(engine->impl_->kv_cache,
                   KvCache::Create(model->backend(), mc, static_cast<int32_t>(num_blocks),
                                   config.block_size, group_blocks, initial_groups));
  if (elastic) {
    Engine* e = engine.get();
    engine->impl_->kv_manager.SetGrowth([e] { return e->GrowKv(); });
  }
  if (config.enable_prefix_caching) {
    engine->impl_->kv_manager.mutable_allocator().MirrorInto(&engine->impl_->prefix_index);
  }
  // With the model's load, not a request's: sorting a vocabulary takes some
  // 11 ms for 49k tokens (json_mask_bench BM_Build), and Submit runs under the model's lock.
  engine->impl_->json_constraint = config.json_constraint != nullptr
                                       ? config.json_constraint
                                       : std::make_shared<const JsonConstraint>(*tokenizer);
  engine->limits_ = RequestLimitsFor(mc, *model->backend(), config);
  engine->impl_->counters.kv_blocks_total = engine->impl_->kv_manager.num_usable_blocks();
  engine->impl_->counters.kv_blocks_free = engine->impl_->kv_manager.num_free_blocks();
  engine->impl_->counters.step_cost = config.step_cost;
  engine->impl_->snapshot = engine->impl_->counters;
  return engine;
}

const ModelConfig& Engine::model_config() const { return model_->config(); }

std::optional<StepCost> Engine::StepCostNow() const {
  return config_.step_cost ? config_.step_cost : impl_->cost_fit.Estimate();
}

absl::StatusOr<RequestId> Engine::Submit(GenerateRequest request, std::shared_ptr<TokenSink> sink) {
  RequestId id;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    id = impl_->next_id++;
  }
  RETURN_IF_ERROR(Submit(id, std::move(request), std::move(sink)));
  return id;
}

absl::Status Engine::Submit(RequestId id, GenerateRequest request,
                            std::shared_ptr<TokenSink> sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  RETURN_IF_ERROR(ValidateRequest(request, limits_));
  const Clock::time_point now = Now();
  if (request.deadline && *request.deadline <= now) {
    return absl::DeadlineExceededError("the request's deadline passed before it was queued");
  }
  // Queue time and TTFT count from the request's arrival at the server, which
  // may be earlier (it waited for its model to load).
  const Clock::time_point submitted = std::min(request.arrival.value_or(now), now);
  const int32_t cached = CachedPromptTokens(request);  // hashed outside the lock
  if (request.sampling.OutputSchema() != nullptr && !impl_->json_constraint->CanEnd()) {
    return absl::FailedPreconditionError(
        "this model's vocabulary has no end-of-generation token: a JSON document could not end");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->inbox.push_back(std::make_unique<LiveRequest>(
        id, std::move(request), std::move(sink), *tokenizer_, impl_->seed_source(), submitted));
    impl_->inbox.back()->cached_at_submit = cached;
    impl_->wake.notify_one();
  }
  if (config_.on_work) config_.on_work();
  return absl::OkStatus();
}

void Engine::Abort(RequestId id, absl::Status why) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->aborts.emplace_back(id, std::move(why));
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
  for (const std::unique_ptr<LiveRequest>& r : impl_->inbox) {
    s.prefill_tokens_waiting[r->seq.priority] += r->seq.num_prompt_tokens - r->cached_at_submit;
  }
  return s;
}

int32_t Engine::CachedPromptTokens(const GenerateRequest& request) const {
  if (!config_.enable_prefix_caching) return 0;
  return impl_->prefix_index.CachedPrefixTokens(request.prompt_ids, config_.block_size,
                                                TenantSalt(request.tenant));
}

int64_t EngineStats::PrefillTokensAhead(int32_t priority) const {
  int64_t ahead = prefill_tokens_started;
  for (auto it = prefill_tokens_waiting.lower_bound(priority); it != prefill_tokens_waiting.end();
       ++it) {
    ahead += it->second;
  }
  return ahead;
}

int64_t EngineStats::PrefillTokensAheadOf(int64_t prompt_tokens, int32_t priority,
                                          int32_t step_tokens,
                                          const StepSchedulerConfig& sched) const {
  const int64_t ahead = PrefillTokensAhead(priority);
  const bool queued_ahead =
      preempted_waiting || ahead > prefill_tokens_started;  // a waiting prompt of >= priority
  if (queued_ahead || num_running >= sched.max_num_seqs || top_prefill_priority > priority ||
      !IsShortPrompt(prompt_tokens, step_tokens, sched)) {
    return ahead;
  }
  return std::min(ahead, std::max<int64_t>(0, 2 * int64_t{step_tokens} - prompt_tokens));
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
