// The front of the scheduler: the devices, the registered models and their
// lifecycle (placed on a device when registered, loaded on a loader thread or
// lazily on a first request, evicting idle models when another needs the
// memory), admission control in front of each, and draining. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/batching/request.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "scheduler/admission.h"
#include "scheduler/device.h"
#include "scheduler/device_executor.h"
#include "scheduler/footprint_record.h"
#include "scheduler/kv_pool.h"
#include "scheduler/memory_plan.h"
#include "scheduler/model_config_file.h"
#include "scheduler/placement.h"
#include "scheduler/served_model.h"
#include "scheduler/tenants.h"

namespace cohost::scheduler {

struct ModelSummary {
  std::string name, path, architecture;
  int32_t context_length = 0, vocab_size = 0;
  int32_t experts = 0, experts_used = 0;  // a mixture of experts' (0 for a dense model)
  int64_t kv_cache_tokens = 0;            // the most the model's KV share can ever hold
  int64_t kv_bytes_held = 0;              // its share of the device's KV pool now
  bool serving = false;                   // ready and not draining
  ModelState state = ModelState::kEvicted;
  std::string state_reason;
  std::string device;
  std::string placement;        // why it is on that device
  int64_t weights_bytes = 0;    // resident now
  int64_t workspace_bytes = 0;  // activations of its largest step and its context, resident now
  int64_t offloaded_bytes = 0;  // its weights kept in host memory while evicted
  int64_t evictions = 0;        // times it was evicted for another model
  int64_t predicted_weights_bytes = 0;
  LoadPolicy load = LoadPolicy::kStartup;
  runtime::Clock::time_point last_used;
};

struct RouterOptions {
  AdmissionLimits admission;
  ExecutorOptions executor;
  // For the one-backend constructor: what the models' weights may take on the
  // device; 0: no limit.
  int64_t weights_budget_bytes = 0;
  // Host memory that evicted models' weights may stay in, where a device's
  // memory is its own (OffloadBudget); 0: evicted weights are dropped.
  int64_t offload_budget_bytes = 0;
  // Called after every attempt to load a model's weights, on the thread that
  // loaded them: the model, whether it is now ready, and the seconds taken.
  std::function<void(const std::string& model, bool ok, double seconds)> on_load;
  // Runs on the loading thread before each load reads anything (tests hold a
  // load there).
  std::function<void()> before_load;
  // Each load's measured footprint is recorded here, and placement plans with
  // the recorded one before loading when the file has not changed; null:
  // predictions only.
  std::shared_ptr<FootprintRecord> footprints;
  // How loads treat the weights (runtime::LoadWeights): quantized linear
  // layers kept in their blocks where the device's Gemm takes them, and left
  // in the file's mapping where its memory is host memory.
  runtime::WeightsPolicy weights;
  // Each tenant's weight and budgets (the configuration's `tenants`).
  TenantPolicy tenants;
  // Model name to device id: where start-up planned each model when it sized
  // the devices' KV pools (SplitDeviceBudgets). Registration prefers that
  // device while the model fits there, so that each weights budget holds what
  // it was sized for; elsewhere, or once it does not fit, placement decides.
  std::map<std::string, std::string> planned_devices;
};

// Default options but the admission limits.
inline RouterOptions OptionsWith(AdmissionLimits limits) {
  RouterOptions options;
  options.admission = limits;
  return options;
}

class Router {
 public:
  using ProgressFn = runtime::LoadProgressFn;

  // Each device gets one DeviceExecutor thread that steps its engines and one
  // KvPool of its kv_pool_bytes that they share (engine_config's
  // kv_cache_bytes and num_kv_blocks are ignored: each engine's blocks follow
  // from its share of its device's pool). At least one device; ids distinct;
  // all of one backend kind.
  Router(std::vector<DeviceSetup> devices, runtime::EngineConfig engine_config,
         RouterOptions options);
  // One device: `backend` ("cpu", or "cuda:0"), a pool of
  // engine_config.kv_cache_bytes, options.weights_budget_bytes for weights.
  Router(kernels::Backend* backend, const runtime::EngineConfig& engine_config,
         const RouterOptions& options);
  Router(kernels::Backend* backend, const runtime::EngineConfig& engine_config,
         AdmissionLimits limits)
      : Router(backend, engine_config, OptionsWith(limits)) {}
  ~Router();  // stops the loader; models live on while requests hold them

  // Registers a model: reads its config and tokenizer (not its weights),
  // places it on a device (PlaceModel over every device, by its predicted
  // footprint and measured load; it reloads there after an eviction) and gives
  // it a share of that device's KV pool. A
  // startup model is then loaded before this returns (a failed load leaves it
  // registered as failed, and its error is returned); a lazy one loads on its
  // first request. INVALID_ARGUMENT for a bad name; ALREADY_EXISTS for a
  // taken one; the loader's error for a file it cannot read; RESOURCE_EXHAUSTED
  // when its KV floor does not fit.
  absl::Status AddModel(const ModelSpec& spec, const ProgressFn& progress = nullptr);
  // Registers a model and starts loading it on the loader thread; returns once
  // it is registered (state loading). For the LoadModel RPC.
  absl::Status AddModelAndLoadInBackground(const ModelSpec& spec);
  // Serves a model that is already loaded (tests, or a caller that loads
  // elsewhere). Same name rules as AddModel.
  absl::Status AddLoadedModel(const ModelSpec& spec, runtime::LoadedModel loaded);
  absl::Status AddModel(const std::string& name, std::string path, runtime::LoadedModel loaded);
  // Loads a model (startup) from a path: AddModel with default settings.
  absl::Status LoadModel(const std::string& name, const std::string& path,
                         const ProgressFn& progress = nullptr);
  // NOT_FOUND for an unknown name. Requests in flight on it are aborted and
  // finish as cancelled with UNAVAILABLE ("was unloaded"); its memory goes
  // when the last holder lets go.
  absl::Status UnloadModel(const std::string& name);
  std::vector<ModelSummary> ListModels() const;
  // NOT_FOUND naming the model.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(const std::string& name) const;

  // Admission control, then the model (its engine, or its queue while it
  // loads; a first request to a model that is not resident starts its load).
  // UNAVAILABLE while draining; RESOURCE_EXHAUSTED when the model's queue is
  // full, when its tenant is over a budget (TenantBook), or when its TTFT is
  // predicted over the model's target by more than its ttft_admit_margin_pct
  // (the status carries a RetryPushback); the tenant's weight goes with the
  // request to the engine's fair sharing;
  // DEADLINE_EXCEEDED when its first token is predicted past its deadline;
  // INVALID_ARGUMENT for a bad request. The sink is wrapped so the queue
  // counters drop when the request is scheduled, and the prediction is
  // recorded against the actual TTFT (ServedModel::ttft_predictions).
  // `further_choice`: a later choice of a call whose first was admitted (HTTP's
  // n), which a drain lets finish as it does the first (until AbortAll), and
  // whose prompt its tenant is not charged again (the first's was).
  absl::StatusOr<runtime::RequestId> Submit(const std::shared_ptr<ServedModel>& model,
                                            runtime::GenerateRequest request,
                                            std::shared_ptr<runtime::TokenSink> sink,
                                            bool further_choice = false);
  // Before a call of several choices (HTTP's n) of a `prompt_tokens` prompt
  // submits its first: refused (INVALID_ARGUMENT) when its tenant could never
  // have them all in flight (TenantBook::CheckChoices), or `model`'s queue
  // never hold the further ones (Admission::CheckFurtherChoices).
  absl::Status CheckChoices(const ServedModel& model, const std::string& tenant, int32_t choices,
                            int64_t prompt_tokens) const {
    if (absl::Status s = tenants_->CheckChoices(tenant, choices); !s.ok()) return s;
    return model.admission().CheckFurtherChoices(choices - 1, prompt_tokens);
  }
  void Abort(const std::shared_ptr<ServedModel>& model, runtime::RequestId id);
  // The TTFT a request with a prompt of `prompt_tokens`, `cached_tokens` of
  // them in the model's prefix cache (Submit's reading; the rest computed),
  // and `priority` for
  // `model` would be predicted now (scheduler/ttft_predictor.h): behind its model's started
  // prefill and waiting prompts of at least its priority, and the whole
  // prefill backlog of every other model on its device. nullopt until its
  // model's step cost is measured.
  std::optional<runtime::Clock::duration> PredictTtft(const ServedModel& model,
                                                      int64_t prompt_tokens, int32_t priority = 0,
                                                      int64_t cached_tokens = 0) const;

  // Refuse new requests from now on; in-flight ones continue.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // Requests admitted and not yet finished, all models.
  int32_t num_in_flight() const;
  // Cancels every in-flight request (after a drain deadline).
  void AbortAll();

  const AdmissionLimits& limits() const { return options_.admission; }
  const TenantBook& tenants() const { return *tenants_; }
  const std::vector<std::shared_ptr<Device>>& devices() const { return devices_; }

 private:
  struct Registration {
    std::shared_ptr<ServedModel> model;
    std::string home_why;  // why it is on its device
  };
  // Reads config and tokenizer, places the model on a device and builds the
  // registration (not yet inserted).
  absl::StatusOr<Registration> Register(const ModelSpec& spec, std::string why_not_loaded);
  // The device a new model goes to, with its share of that device's KV pool
  // (its floor; its cap, or the whole pool), and why it goes there. Devices
  // whose pool cannot take its floor are passed over.
  struct Home {
    std::shared_ptr<Device> device;
    std::unique_ptr<KvPool::Account> account;
    std::string why;
  };
  absl::StatusOr<Home> PlaceNew(const ModelSpec& spec, const runtime::ModelConfig& config);
  // Where `device` is in devices_.
  size_t IndexOf(const Device& device) const;
  // Whether `model` is still the one registered under its name (an unload
  // during its load leaves no reservation behind). Under mu_.
  bool RegisteredLocked(const ServedModel& model) const;
  // Each device as placement sees it, with the ready models on it that could
  // make room, in the order of its residents. Not `except`. Under mu_.
  std::vector<DeviceRoom> RoomsLocked(
      const ServedModel* except,
      std::vector<std::vector<std::shared_ptr<ServedModel>>>* residents) const;
  // Inserts a registration; ALREADY_EXISTS when the name was taken meanwhile.
  absl::Status Insert(const Registration& r);
  // A floor reserved for `model` (KvPool::Reserve, on one device or, for a
  // model start-up did not place, on several) moves to the device it now
  // lives on: it is kept there for its return after an eviction. Called
  // once it is registered there (Insert) and when it moves (Rehome); under
  // mu_, as UnloadModel's Unreserve is, so an unload racing a load leaves
  // no floor behind.
  void KeepFloorWhereItLivesLocked(const ServedModel& model);
  // Loads `model`'s weights (it is in state loading): makes room on its device
  // by evicting idle models past their keep-alive, reads the file, activates.
  // On failure the model is failed with the error, which is returned.
  absl::Status Load(const std::shared_ptr<ServedModel>& model, const ProgressFn& progress);
  // Weights that `Load` measured above `expected` (the reservation MakeRoom
  // made): room for the difference is made now, evicting as MakeRoom does,
  // or the load fails (RESOURCE_EXHAUSTED, saying both sizes, and recording
  // the measured footprint for the next placement) rather than over-commit
  // the device into its KV memory.
  absl::Status RoomForMeasuredWeights(const std::shared_ptr<ServedModel>& model,
                                      const runtime::Model& weights, const ExpectedBytes& expected,
                                      double load_seconds);
  // Whether loads onto `backend` keep quantized weights in their blocks.
  bool KeepsBlocks(const kernels::Backend& backend) const;
  // What loading the model at `path` will take on `device`: its footprint
  // recorded at an earlier load of the same file, else the prediction from
  // its config.
  ExpectedBytes ExpectedFootprint(const std::string& path, const runtime::ModelConfig& config,
                                  const Device& device) const;
  // Before a load, where the model is not pinned and its device cannot take
  // `expected` without evicting (or cannot at all, when its weights are parked
  // there): moves it (ServedModel::MoveTo) to the device placement picks over
  // all of them, its own first: one with room, else the one where evicting
  // frees the fewest bytes, its own on a tie. Nothing changes where it stays,
  // where it fits nowhere, or where the new pool cannot take the model's floor.
  void Rehome(const std::shared_ptr<ServedModel>& model, const ExpectedBytes& expected);
  // Reserves the expected footprint on the model's device, evicting as
  // PickEvictions says; RESOURCE_EXHAUSTED saying why when it cannot.
  // Placement counts parked weights' contexts as free room (they are worth
  // less than any resident model); where the reservation needs that room,
  // they are dropped, least recently used first, until it fits.
  absl::Status MakeRoom(const std::shared_ptr<ServedModel>& model, const ExpectedBytes& expected);
  // Under mu_: the least recently used model with parked weights, other than
  // `skip`, `also_skip` and any holding a reservation (loading, with room
  // made for it: it may be taking its own back); with `device`, only those
  // whose context holds memory there. RoomsLocked counts exactly these
  // contexts as parked_bytes.
  std::shared_ptr<ServedModel> OldestParkedLocked(const Device* device, const ServedModel& skip,
                                                  const ServedModel* also_skip = nullptr);
  // While `evicting` is evicted for `loading`, just before its `bytes` of
  // weights are parked (ServedModel::Evict's before_park): drops the parked
  // weights of the least recently used other models (never `loading`'s,
  // about to come back) while the offload budget cannot also take them, so
  // that host memory keeps the most recently used.
  void MakeOffloadRoom(const ServedModel& evicting, int64_t bytes, const ServedModel& loading);
  void ReleaseWeights(const ServedModel& model);
  // Writes a load's measured footprint to options_.footprints (a failure is
  // reported once, on stderr).
  void RecordFootprint(const ServedModel& model, const Footprint& measured);
  void EnqueueLoad(const std::shared_ptr<ServedModel>& model);
  // OK, or why a request predicted to wait `predicted` for its first token is
  // refused: past its deadline, or over its model's TTFT target and margin.
  absl::Status JudgeAdmission(const ServedModel& model, const runtime::GenerateRequest& request,
                              runtime::Clock::duration predicted,
                              runtime::Clock::time_point now) const;
  void LoaderLoop();

  const runtime::EngineConfig engine_config_;
  const RouterOptions options_;
  const std::vector<std::shared_ptr<Device>> devices_;
  std::atomic<bool> draining_{false};
  // AbortAll ran (the drain's wait is over): not even a further choice of an
  // admitted call starts.
  std::atomic<bool> aborted_all_{false};
  std::atomic<runtime::RequestId> next_id_{1};
  std::atomic<bool> footprint_write_failed_{false};  // warned once
  // Shared with every request's sink (which a model, held by a call, can keep
  // past the Router).
  const std::shared_ptr<TenantBook> tenants_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ServedModel>> models_;  // guarded by mu_
  // Weights memory reserved per model on the device (predicted, then measured).
  std::map<std::string, int64_t> weights_;  // guarded by mu_
  // Why each model is where it is: its device (chosen at registration, when
  // there are several) and its weights there (PlaceModel's reason at load).
  std::map<std::string, std::string> homes_;       // guarded by mu_
  std::map<std::string, std::string> placements_;  // guarded by mu_
  // Unloaded models a call still holds: their weights stay on their device
  // until the last holder lets go, and count there until then, so that no
  // load is placed on memory not yet given back. Guarded by mu_; expired
  // ones are dropped at the next unload.
  struct Retiring {
    std::weak_ptr<const void> model;  // ServedModel::gone_token
    size_t device = 0;                // index into devices_
    int64_t bytes = 0;
  };
  std::vector<Retiring> retiring_;

  std::mutex loader_mu_;
  std::condition_variable loader_cv_;
  std::deque<std::weak_ptr<ServedModel>> load_queue_;  // guarded by loader_mu_
  bool loader_stop_ = false;                           // guarded by loader_mu_
  std::thread loader_;
};

}  // namespace cohost::scheduler
