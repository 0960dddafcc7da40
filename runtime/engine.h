// The continuous-batching engine for one model on one backend: a thread-safe
// front (Submit, Abort, Stats) over single-threaded state (scheduler, KV blocks,
// sequences, samplers) that only Step() touches. Run it either by calling Step()
// in a loop on one thread, or with Start(), which owns such a thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_cache_manager.h"
#include "runtime/model.h"
#include "runtime/request.h"
#include "runtime/step_scheduler.h"
#include "runtime/tokenizer.h"

namespace cohost::runtime {

struct EngineConfig {
  SchedulerConfig scheduler;
  int32_t block_size = 16;
  // The KV pool: num_kv_blocks when > 0, else as many blocks as kv_cache_bytes holds.
  int64_t kv_cache_bytes = int64_t{256} << 20;
  int32_t num_kv_blocks = 0;
  bool enable_prefix_caching = true;
};

struct EngineStats {
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
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(Model* model, const Tokenizer* tokenizer,
                                                        const EngineConfig& config);
  ~Engine();  // stops the loop thread if running; finishes live requests as cancelled

  // Thread-safe. Validates the request and queues it; its output goes to sink.
  // INVALID_ARGUMENT (bad sampling values, empty prompt, ids outside the vocab,
  // prompt + max_tokens beyond the context or beyond the whole KV pool).
  absl::StatusOr<RequestId> Submit(GenerateRequest request, std::shared_ptr<TokenSink> sink);

  // Thread-safe; any state. Takes effect at the next step boundary, where the
  // request's blocks are freed and its sink gets OnFinish(kCancelled). Unknown
  // or finished ids are ignored.
  void Abort(RequestId id);

  // Runs one step on the calling thread: applies queued submits and aborts,
  // schedules, runs the model, samples, streams. Returns whether work remains.
  // Must not be called while Start() is active.
  absl::StatusOr<bool> Step();

  // Thread-safe snapshot, updated at step boundaries.
  EngineStats Stats() const;

  // The run loop on an engine-owned thread: steps while there is work, sleeps
  // otherwise. Stop() finishes the current step and joins.
  void Start();
  void Stop();

  const ModelConfig& model_config() const { return model_->config(); }
  int32_t kv_capacity_tokens() const;

 // Opaque state (runtime/engine_state.h); public only so the step's helpers
  // can name it.
  struct Impl;

 private:
  Engine(Model* model, const Tokenizer* tokenizer, const EngineConfig& config);

  Model* model_;
  const Tokenizer* tokenizer_;
  EngineConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohost::runtime
