// The front of the scheduler: which models are served, admission control in
// front of each model's engine (a bounded queue, in requests and in queued
// prompt tokens), and draining. One device for now; placement across devices is
// the multi-model scheduler's issue. Thread-safe.
#pragma once

#include <atomic>
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

namespace cohost::scheduler {

// One served model: weights, tokenizer, engine (running its own loop thread),
// and its admission control. Shared by in-flight requests so unloading never
// pulls it from under them.
class ServedModel {
 public:
  // Attaches `engine` to `executor`, which steps it from then on.
  ServedModel(std::string name, std::string path, runtime::LoadedModel loaded,
              std::unique_ptr<runtime::Engine> engine, AdmissionLimits limits,
              std::shared_ptr<DeviceExecutor> executor, EngineTargets targets);
  // Detaches the engine (waiting for a step of it in progress); live requests
  // finish as cancelled. Must not run on the executor's thread.
  ~ServedModel();

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  const runtime::Tokenizer& tokenizer() const { return *loaded_.tokenizer; }
  const runtime::ModelConfig& config() const { return loaded_.config(); }
  runtime::Engine& engine() { return *engine_; }
  const runtime::Engine& engine() const { return *engine_; }

  Admission& admission() { return admission_; }
  const Admission& admission() const { return admission_; }
  DeviceExecutor& executor() { return *executor_; }
  const DeviceExecutor& executor() const { return *executor_; }

 private:
  std::string name_, path_;
  runtime::LoadedModel loaded_;
  std::unique_ptr<runtime::Engine> engine_;
  Admission admission_;
  // Shared: in-flight requests can keep a model (and so its executor) alive
  // after the Router is gone.
  std::shared_ptr<DeviceExecutor> executor_;
};

struct ModelSummary {
  std::string name, path, architecture;
  int32_t context_length = 0, vocab_size = 0;
  int64_t kv_cache_tokens = 0;
  bool serving = false;
};

class Router {
 public:
  using ProgressFn = runtime::LoadProgressFn;

  // One device for now: every model runs on `backend`, stepped by one
  // DeviceExecutor thread.
  Router(kernels::Backend* backend, runtime::EngineConfig engine_config, AdmissionLimits limits,
         ExecutorOptions executor_options = {});
  ~Router();

  // Loads and starts serving a model. Names are 1-128 characters of
  // [A-Za-z0-9._-] (INVALID_ARGUMENT otherwise); ALREADY_EXISTS for a taken
  // name; the loader's error for a bad file.
  absl::Status LoadModel(const std::string& name, const std::string& path,
                         const ProgressFn& progress = nullptr);
  // Serves a model that is already loaded (tests, or a caller that loads
  // elsewhere): starts its engine. Same name rules as LoadModel.
  absl::Status AddModel(const std::string& name, std::string path, runtime::LoadedModel loaded);
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

 private:
  kernels::Backend* backend_;
  runtime::EngineConfig engine_config_;
  std::shared_ptr<DeviceExecutor> executor_;
  AdmissionLimits limits_;
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ServedModel>> models_;
};

}  // namespace cohost::scheduler
