// The front of the scheduler: which models are served, admission control in
// front of each model's engine (a bounded queue, in requests and in queued
// prompt tokens), and draining. One device for now; placement across devices is
// the multi-model scheduler's issue. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/batching/request.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "scheduler/admission.h"
#include "scheduler/device_executor.h"
#include "scheduler/kv_pool.h"

namespace cohost::scheduler {

// One served model: weights, tokenizer, engine (running its own loop thread),
// and its admission control. Shared by in-flight requests so unloading never
// pulls it from under them.
class ServedModel {
 public:
  // Where a model runs: the device's executor and KV pool, and its share of
  // that pool (the budget its engine was created with).
  struct Placement {
    std::shared_ptr<DeviceExecutor> executor;
    std::shared_ptr<KvPool> kv_pool;
    std::unique_ptr<KvPool::Account> kv_account;
    EngineTargets targets;
  };

  // Attaches `engine` to the placement's executor, which steps it from then on.
  ServedModel(std::string name, std::string path, runtime::LoadedModel loaded,
              std::unique_ptr<runtime::Engine> engine, AdmissionLimits limits, Placement placement);
  // Stops the pool's reclaims from this model, detaches the engine (waiting
  // for a step in progress), ends live requests as cancelled and gives its KV
  // memory back. Must not run on the executor's thread.
  ~ServedModel();

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  const runtime::Tokenizer& tokenizer() const { return *loaded_.tokenizer; }
  const runtime::ModelConfig& config() const { return loaded_.config(); }
  runtime::Engine& engine() { return *engine_; }
  const runtime::Engine& engine() const { return *engine_; }

  Admission& admission() { return admission_; }
  const Admission& admission() const { return admission_; }
  DeviceExecutor& executor() { return *placement_.executor; }
  const DeviceExecutor& executor() const { return *placement_.executor; }
  const KvPool::Account& kv_account() const { return *placement_.kv_account; }

 private:
  std::string name_, path_;
  // Before the engine, so it outlives it: the engine releases its KV memory
  // into the account, and the account into the pool. Shared executor and
  // pool: in-flight requests can keep a model alive after the Router is gone.
  Placement placement_;
  runtime::LoadedModel loaded_;
  std::unique_ptr<runtime::Engine> engine_;
  Admission admission_;
};

// How one model shares its device (the per-model fields of the configuration).
struct ModelOptions {
  int64_t kv_floor_bytes = 0;  // KV memory guaranteed to it
  int64_t kv_cap_bytes = 0;    // the most it may hold; 0: the whole device pool
  std::chrono::milliseconds ttft_target{1000};
};

struct ModelSummary {
  std::string name, path, architecture;
  int32_t context_length = 0, vocab_size = 0;
  int64_t kv_cache_tokens = 0;  // the most the model's KV share can ever hold
  int64_t kv_bytes_held = 0;    // its share of the device's KV pool now
  bool serving = false;
};

class Router {
 public:
  using ProgressFn = runtime::LoadProgressFn;

  // One device for now: every model runs on `backend`, stepped by one
  // DeviceExecutor thread, its KV memory drawn from one KvPool of
  // engine_config.kv_cache_bytes (num_kv_blocks is ignored: each engine's
  // blocks follow from its share of the pool).
  Router(kernels::Backend* backend, runtime::EngineConfig engine_config, AdmissionLimits limits,
         ExecutorOptions executor_options = {});
  ~Router();

  // Loads and starts serving a model. Names are 1-128 characters of
  // [A-Za-z0-9._-] (INVALID_ARGUMENT otherwise); ALREADY_EXISTS for a taken
  // name; the loader's error for a bad file.
  absl::Status LoadModel(const std::string& name, const std::string& path,
                         const ProgressFn& progress = nullptr, const ModelOptions& options = {});
  // Serves a model that is already loaded (tests, or a caller that loads
  // elsewhere): starts its engine. Same name rules as LoadModel.
  // RESOURCE_EXHAUSTED when its KV floor does not fit the device's pool.
  absl::Status AddModel(const std::string& name, std::string path, runtime::LoadedModel loaded,
                        const ModelOptions& options = {});
  // NOT_FOUND for an unknown name. Requests in flight on it are aborted and
  // finish as cancelled; the engine stops when the last holder lets go.
  absl::Status UnloadModel(const std::string& name);
  std::vector<ModelSummary> ListModels() const;
  // NOT_FOUND naming the model.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(const std::string& name) const;

  // Admission control, then Engine::Submit. UNAVAILABLE while draining;
  // RESOURCE_EXHAUSTED when the model's queue is full (limits().retry_pushback_ms
  // says when to retry); the engine's INVALID_ARGUMENT for bad requests. The
  // sink is wrapped so the queue counters drop when the request is scheduled.
  absl::StatusOr<runtime::RequestId> Submit(const std::shared_ptr<ServedModel>& model,
                                            runtime::GenerateRequest request,
                                            std::shared_ptr<runtime::TokenSink> sink);
  void Abort(const std::shared_ptr<ServedModel>& model, runtime::RequestId id);

  // Refuse new requests from now on; in-flight ones continue.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // Requests admitted and not yet finished, all models.
  int32_t num_in_flight() const;
  // Cancels every in-flight request (after a drain deadline).
  void AbortAll();

  const AdmissionLimits& limits() const { return limits_; }
  const KvPool& kv_pool() const { return *kv_pool_; }

 private:
  kernels::Backend* backend_;
  runtime::EngineConfig engine_config_;
  std::shared_ptr<DeviceExecutor> executor_;
  std::shared_ptr<KvPool> kv_pool_;
  AdmissionLimits limits_;
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ServedModel>> models_;
};

}  // namespace cohost::scheduler
