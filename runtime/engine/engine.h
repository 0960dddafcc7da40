// The continuous-batching engine for one model on one backend: a thread-safe
// front (Submit, Abort, Stats) over single-threaded state (scheduler, KV blocks,
// sequences, samplers) that only Step() touches. Run it either by calling Step()
// in a loop on one thread, or with Start(), which owns such a thread.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "cohost/kernels/dtype.h"
#include "runtime/batching/fair_share.h"
#include "runtime/batching/request.h"
#include "runtime/batching/request_validation.h"
#include "runtime/batching/step_cost.h"
#include "runtime/batching/step_scheduler_config.h"
#include "runtime/engine/kv_budget.h"

namespace cohost::kernels {
class Backend;
}  // namespace cohost::kernels

namespace cohost::runtime {

class JsonConstraint;
class Model;
class Tokenizer;
struct ModelConfig;

struct EngineConfig {
  StepSchedulerConfig step_scheduler;
  int32_t block_size = 16;
  // The KV pool: num_kv_blocks when > 0, else as many blocks as kv_cache_bytes
  // holds. With a kv_budget that is the most the engine may grow to.
  int64_t kv_cache_bytes = int64_t{256} << 20;
  int32_t num_kv_blocks = 0;
  bool enable_prefix_caching = true;
  // Decode steps run from captured graphs where the backend captures ops
  // (CUDA graphs: one launch a step; Model::EnableDecodeGraphs), except a
  // model with experts' (each layer's route is planned on the host).
  bool decode_graphs = false;
  // Null: the whole pool is backed at Create and never changes. Otherwise the
  // engine shares its device's KV memory: it starts with none, backs a group
  // of blocks (at least kv_group_min_bytes) at a time as it needs one, and
  // gives groups back when asked (ReclaimKv). Must outlive the engine.
  KvBudget* kv_budget = nullptr;
  int64_t kv_group_min_bytes = int64_t{4} << 20;
  // Null: tenants share this engine's tokens by its own virtual token
  // counters. Otherwise by these, shared with the other engines of its device
  // (scheduler::Device::fair_share), so that what a tenant took on one model
  // counts against it on the others. Must outlive the engine.
  FairShare* fair_share = nullptr;
  // Where the engine reads the time (deadlines, timings); steady_clock when
  // empty. Tests inject a manual clock.
  std::function<Clock::time_point()> clock;
  // What a step costs, instead of the line fitted from the engine's own steps
  // (StepCostFit): tests set it to make predictions exact.
  std::optional<StepCost> step_cost;
  // Called (on the caller's thread, with no engine lock held) after Submit or
  // Abort queued something for the next step: how a device executor that
  // steps this engine learns it has work. Must be cheap and must not call
  // back into the engine.
  std::function<void()> on_work;
  // What JSON requests' draws are held to: built from the engine's tokenizer
  // when null (a sort of the vocabulary, some 11 ms for 49k tokens, and its
  // masks cached anew). A caller that creates engine after engine on one
  // tokenizer (ServedModel, at each reload) passes one it built once, which
  // keeps its cached masks too. Must have been built from the engine's
  // tokenizer.
  std::shared_ptr<const JsonConstraint> json_constraint;
};

// Caps on one step, chosen by whoever steps the engine.
struct StepLimits {
  // > 0: at most this many new tokens, except that every running decode
  // gets its token and, without chunked prefill, the next prompt fits whole
  // (StepScheduler::Schedule).
  int32_t max_new_tokens = 0;
};

// What the engine has to do, for a device executor choosing which engine to
// step next. Read on the stepping thread, between steps.
struct EngineLoad {
  bool has_work = false;           // queued submits or aborts, or live requests
  int32_t num_live = 0;            // requests submitted and not finished
  int32_t num_awaiting_first = 0;  // of those, without a first token yet
  // The earliest submit time among requests without a first token.
  std::optional<Clock::time_point> oldest_awaiting_first;
  int64_t tokens_computed = 0;  // forward-pass tokens over the engine's life
};

struct EngineStats {
  int64_t kv_bytes_backed = 0;  // KV memory the engine holds now
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t kv_blocks_total = 0;  // usable blocks
  int32_t kv_blocks_free = 0;   // refcount 0 (incl. evictable cached)
  int32_t kv_blocks_cached_free = 0;
  int64_t prefix_cache_queries = 0;  // blocks
  int64_t prefix_cache_hits = 0;     // blocks
  int64_t num_preemptions = 0;
  int64_t num_steps = 0;
  int64_t num_tokens_computed = 0;  // forward-pass tokens (prefill + decode)
  int64_t num_prompt_tokens_cached = 0;
  int64_t num_requests_finished = 0;
  int64_t num_requests_aborted = 0;
  // The engine's prefill backlog, the prompt tokens still to compute for
  // requests without a first token (queued ones included), by whom a new
  // request would wait for: the started ones (running, or preempted and
  // requeued at the front) go before any admission; the waiting ones are
  // admitted by priority, so a new request waits for those of at least its
  // own.
  int64_t prefill_tokens_started = 0;
  // Live requests with a first token, waiting for their next one: while there
  // are any, a device executor sizes the engine's steps to its TPOT target.
  int32_t num_decoding = 0;
  std::map<int32_t, int64_t> prefill_tokens_waiting;  // by priority
  // What a new request of `priority` finds ahead of its own prompt.
  int64_t PrefillTokensAhead(int32_t priority) const;
  // A preempted sequence is queued (it goes before any new one).
  bool preempted_waiting = false;
  // The highest priority of a running prefill (none: the lowest int32): one
  // above a short prompt's does not leave it room.
  int32_t top_prefill_priority = std::numeric_limits<int32_t>::min();
  // What a new prompt of `prompt_tokens` and `priority` waits for, in steps
  // of `step_tokens` under `sched`: PrefillTokensAhead, except that a short
  // one (IsShortPrompt) with nothing queued ahead of it and no running
  // prefill of a higher priority starts beside the running prefills
  // (StepScheduler::ShortPromptReserve): it waits for the step in progress
  // and shares the next, about two steps, its own tokens included.
  int64_t PrefillTokensAheadOf(int64_t prompt_tokens, int32_t priority, int32_t step_tokens,
                               const StepSchedulerConfig& sched) const;
  // All of it.
  int64_t PrefillTokensLeft() const {
    return PrefillTokensAhead(std::numeric_limits<int32_t>::min());
  }
  // Its steps' cost (EngineConfig::step_cost, else fitted from its steps);
  // nullopt until a step has done prefill work.
  std::optional<StepCost> step_cost;
};

class Engine {
 public:
  // INVALID_ARGUMENT for a block size outside [1, 1024], non-positive scheduler
  // limits, a step budget below max_num_seqs, a JSON constraint of another
  // tokenizer, or a KV pool of fewer than 2
  // blocks or more than 2^30 tokens; the backend's error when the pool cannot
  // be allocated. `model` and `tokenizer` must outlive the engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(Model* model, const Tokenizer* tokenizer,
                                                        const EngineConfig& config);
  ~Engine();  // stops the loop thread if running; finishes live requests as cancelled

  // Thread-safe. Validates the request (ValidateRequest against
  // request_limits()) and queues it; its output goes to sink.
  // INVALID_ARGUMENT for what ValidateRequest refuses or a null sink;
  // DEADLINE_EXCEEDED when the request's deadline has already passed.
  absl::StatusOr<RequestId> Submit(GenerateRequest request, std::shared_ptr<TokenSink> sink);
  // The same under the caller's id, for a caller that numbers requests itself
  // (the Router, across models and loads): ids must be unique in this engine,
  // and a caller uses one form or the other, not both.
  absl::Status Submit(RequestId id, GenerateRequest request, std::shared_ptr<TokenSink> sink);

  // Thread-safe; any state. Takes effect at the next step boundary, where the
  // request's blocks are freed and its sink gets OnFinish(kCancelled) with
  // `why` as its status (OK: the client's doing; an error: the server's, e.g.
  // its model was unloaded). Unknown or finished ids are ignored.
  void Abort(RequestId id, absl::Status why = absl::OkStatus());

  // Runs one step on the calling thread: applies queued submits and aborts,
  // schedules, runs the model, samples, streams. Returns whether work remains.
  // Must not be called while Start() is active.
  absl::StatusOr<bool> Step(const StepLimits& limits = {});

  // The stepping thread's view of what is left to do (see EngineLoad).
  EngineLoad Load() const;

  // On the stepping thread, between steps: applies the aborts queued since
  // the last step now, without a step (their blocks freed, their sinks told),
  // so that a device executor stepping other engines meanwhile still frees a
  // cancelled request's memory at once. Returns whether there were any.
  bool ApplyAborts();

  // With a kv_budget, on the stepping thread between steps: gives back at
  // least `wanted` bytes of KV memory if it can, never more than `most`, in
  // whole groups. The groups holding the fewest blocks drain (nothing new is
  // placed there; the choice is made again at each call): empty ones go at
  // once, the others as their sequences finish, or at once by preempting
  // (recomputing) the sequences that hold them when its work is younger than
  // `wounder` (KvSeniority, kv_budget.h). Work as old or older that waits for
  // memory itself gives nothing back. Returns the bytes given back now
  // (through KvBudget::Release).
  int64_t ReclaimKv(int64_t wanted, int64_t most, RequestId wounder);
  // On the stepping thread: its place in the device's wound-wait order
  // (kv_budget.h), the lowest id among the requests it runs and the one first
  // in its queue (not one that priorities keep waiting); kPreemptNever with
  // none. O(running); asked when KV memory runs short.
  RequestId KvSeniority() const;
  // The bytes of one group of its KV blocks: what it takes from and gives
  // back to a kv_budget at a time.
  int64_t kv_group_bytes() const;

  // Thread-safe snapshot, updated at step boundaries.
  EngineStats Stats() const;

  // Thread-safe: the prompt tokens of `request` its prefix cache holds now
  // (whole blocks, the tenant's salt, never the last token), from a
  // PrefixIndex the allocator keeps in step; 0 with prefix caching off. A
  // snapshot: the blocks may be evicted before the request is admitted.
  int32_t CachedPromptTokens(const GenerateRequest& request) const;

  // The run loop on an engine-owned thread: steps while there is work, sleeps
  // otherwise. Stop() finishes the current step and joins.
  void Start();
  void Stop();

  const ModelConfig& model_config() const;
  // What an engine created with `config` for a model with `mc` on `backend`
  // will accept: known before the model is loaded.
  static RequestLimits RequestLimitsFor(const ModelConfig& mc, const kernels::Backend& backend,
                                        const EngineConfig& config);
  // Whether `config` gives a model with `mc` on `backend` KV memory it can
  // run on, the check Create makes: INVALID_ARGUMENT for a block size or a
  // fixed pool it cannot use, RESOURCE_EXHAUSTED for a share of a device's
  // pool that holds no whole group of its blocks. Known before the model
  // is loaded, so that placement refuses such a share at once.
  static absl::Status CheckKvShape(const ModelConfig& mc, const kernels::Backend& backend,
                                   const EngineConfig& config);
  // What Submit accepts; fixed at Create.
  const RequestLimits& request_limits() const { return limits_; }
  int64_t kv_capacity_tokens() const { return limits_.kv_capacity_tokens; }

 private:
  // The KV blocks an engine with `config` has: its count, or its bytes'
  // worth; with a shared pool only whole groups of them (the pool grants a
  // group's bytes at a time, never past the share), and the group's size.
  struct KvShape {
    int64_t num_blocks = 0;
    int32_t group_blocks = 0;  // 0: a fixed pool, backed whole
  };
  static KvShape KvShapeFor(const ModelConfig& mc, const kernels::Backend& backend,
                            const EngineConfig& config);
  struct Impl;  // engine_state.h

  Engine(Model* model, const Tokenizer* tokenizer, const EngineConfig& config);
  Clock::time_point Now() const { return config_.clock ? config_.clock() : Clock::now(); }
  // The KV cache manager's growth hook: one more group, from the budget.
  bool GrowKv();
  // Unbacks the groups that finished draining and releases them to the budget.
  int64_t ReturnDrainedKv();
  // What a step costs: EngineConfig::step_cost, else the line fitted so far.
  std::optional<StepCost> StepCostNow() const;
  // Moves submitted requests into the scheduler and applies queued aborts.
  void TakeQueued(Clock::time_point now);
  // Publishes the counters and the KV pool's state for other threads (Stats).
  void PublishStats();

  Model* model_;
  const Tokenizer* tokenizer_;
  EngineConfig config_;
  RequestLimits limits_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohost::runtime
