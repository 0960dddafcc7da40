// One registered model and its lifecycle: what it knows without its weights
// (spec, tokenizer, config, request limits, admission books, its share of the
// device's KV pool) and, while it is resident, its weights and engine.
//
//   evicted --(BeginLoading)--> loading --(Activate)--> ready --(Evict)--> evicted
//                                   \--(Fail)--> failed --(BeginLoading)--> loading
//
// A request for a model that is not ready waits in the model's own queue until
// Activate hands it to the new engine (its TTFT then includes the load), or
// Fail ends it with the load's error. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/batching/request.h"
#include "runtime/batching/request_validation.h"
#include "runtime/engine/engine.h"
#include "runtime/loader/model_config.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "scheduler/admission.h"
#include "scheduler/busy_meter.h"
#include "scheduler/device.h"
#include "scheduler/kv_pool.h"
#include "scheduler/model_config_file.h"
#include "scheduler/ttft_predictor.h"

namespace cohost::scheduler {

enum class ModelState { kLoading, kReady, kEvicted, kFailed };
inline constexpr std::array<ModelState, 4> kModelStates = {
    ModelState::kLoading, ModelState::kReady, ModelState::kEvicted, ModelState::kFailed};
std::string_view ModelStateName(ModelState s);

// `c` for an engine whose KV blocks come from `account`'s share of a
// device's pool: the share decides how many.
runtime::EngineConfig WithKvShare(runtime::EngineConfig c, KvPool::Account* account);

struct ModelStatus {
  ModelState state = ModelState::kEvicted;
  std::string reason;           // why it is in that state ("" for ready)
  int64_t weights_bytes = 0;    // resident weights, bytes the backend allocated
  int64_t offloaded_bytes = 0;  // weights parked in host memory while evicted
  // What the parked weights still hold on the device: their context's
  // handles and scratch (Backend::ContextBytes), kept for their return.
  int64_t parked_device_bytes = 0;
  int64_t workspace_bytes = 0;  // resident activations (its largest step) and context
  // Its last request's submit or finish, whichever is later (or its
  // registration, or its last load): keep-alive counts from here.
  runtime::Clock::time_point last_used;
  double last_load_seconds = 0;  // its last successful load, start to ready
  int64_t loads_ok = 0, loads_failed = 0, evictions = 0;
};

class ServedModel {
 public:
  // Registered, not resident (state evicted, reason `why_not_loaded`).
  ServedModel(ModelSpec spec, std::unique_ptr<runtime::Tokenizer> tokenizer,
              runtime::ModelConfig config, std::shared_ptr<Device> device,
              std::unique_ptr<KvPool::Account> kv_account, runtime::EngineConfig engine_config,
              AdmissionLimits limits, std::string why_not_loaded);
  // Ends queued and live requests as cancelled, and frees weights and KV
  // memory. Must not run on the device executor's thread.
  ~ServedModel();

  // Expires once the model is gone and its memory with it (after the
  // destructor has freed the weights and KV): what the Router watches for
  // an unloaded model a call still holds.
  std::weak_ptr<const void> gone_token() const { return gone_token_; }

  const std::string& name() const { return spec_.name; }
  const std::string& path() const { return spec_.path; }
  const ModelSpec& spec() const { return spec_; }
  const runtime::Tokenizer& tokenizer() const { return *tokenizer_; }
  const runtime::ModelConfig& config() const { return config_; }
  // Where it is now: a device outlives the Router's models, so the reference
  // stays valid, but the model may move to another while it is not resident
  // (MoveTo).
  const Device& device() const { return *placement()->device; }
  // The configuration its engine is (or will be) created with, on its device.
  runtime::EngineConfig engine_config() const { return placement()->engine_config; }
  // What its engine will accept, known before the weights are loaded.
  runtime::RequestLimits request_limits() const { return placement()->limits; }
  // What its engines' JSON requests are held to: built at its first load
  // (or here, the first time it is asked), from its tokenizer, and kept
  // across reloads with the masks it cached. Thread-safe.
  std::shared_ptr<const runtime::JsonConstraint> JsonConstraintOnce();
  Admission& admission() { return admission_; }
  const Admission& admission() const { return admission_; }
  // Its share of its device's KV pool now.
  int64_t kv_bytes_held() const { return placement()->kv_account->held(); }
  // How busy its steps keep its device (a moving estimate; it survives
  // evictions, so a reload is placed by what the model did before).
  const BusyMeter& busy() const { return busy_; }
  DeviceExecutor& executor() { return *placement()->device->executor; }
  const DeviceExecutor& executor() const { return *placement()->device->executor; }

  ModelStatus status() const;
  // Its prefill backlog, for TTFT prediction: the engine's while resident,
  // else the prompts waiting for the load; the cost is its engine's last
  // known one, kept across evictions. With `priority`: only what a new
  // request of that priority and `prompt_tokens` would wait for
  // (EngineStats::PrefillTokensAheadOf: a short prompt starts beside running
  // prefills).
  PrefillQueue Backlog(std::optional<int32_t> priority, int64_t prompt_tokens) const;
  // The prompt tokens of `request` its engine's prefix cache holds now
  // (Engine::CachedPromptTokens); 0 while not resident.
  int32_t CachedPromptTokens(const runtime::GenerateRequest& request) const;
  // How long before it can run a new request: 0 when ready, else its last
  // load's duration (all of it, even mid-load); nullopt if it never loaded.
  std::optional<runtime::Clock::duration> TimeToReady() const;
  TtftPredictionBook& ttft_predictions() { return ttft_predictions_; }
  const TtftPredictionBook& ttft_predictions() const { return ttft_predictions_; }
  // The engine's counters; zeros (but KV held) while not resident.
  runtime::EngineStats Stats() const;

  // Hands a request to the engine under the Router's `id`, or queues it until
  // the model is resident; `*needs_load` says the Router should start a load
  // (the model is evicted or failed). The engine's errors for an invalid
  // request or a past deadline.
  absl::Status Submit(runtime::RequestId id, runtime::GenerateRequest request,
                      std::shared_ptr<runtime::TokenSink> sink, bool* needs_load);
  // `why` as in Engine::Abort: OK for the client's cancellation, else the
  // server's reason, which the request's status carries.
  void Abort(runtime::RequestId id, const absl::Status& why = absl::OkStatus());
  // Aborts every request queued here or live in the engine.
  void AbortAll(const absl::Status& why = absl::OkStatus());
  // No longer registered (UnloadModel): Submit refuses, no load starts and
  // it does not move from now on; what runs is the unloader's to abort. Its
  // KV floor stops counting in its device's pool (KvPool::Account::Retire).
  void Retire();
  bool retired() const;
  // What a request for it hears once it is retired.
  absl::Status UnloadedError() const;

  // ---- lifecycle (the Router's loader) ----
  // evicted or failed -> loading; false (nothing changes) from another state.
  bool BeginLoading();
  // loading -> ready: builds the engine over `model` on the device, attaches it
  // to the executor and hands it every queued request. An engine that cannot
  // be built: the weights are freed and the error comes back, the state still
  // loading; the caller calls Fail.
  // `load_seconds` is how long the load took, for the books; `restored`:
  // the weights came back from host memory (Unpark), not from the file, and
  // so predict only the next such return (TimeToReady). `context` is the
  // backend handle `model` was loaded through (Backend::NewContext), if not
  // the device's own: kept until the weights and engine are gone.
  absl::Status Activate(std::unique_ptr<runtime::Model> model, double load_seconds = 0,
                        std::unique_ptr<kernels::Backend> context = nullptr, bool restored = false);
  // Another home while nothing of it is on a device (not ready; loading is
  // the Router's own load): `account` its share of `device`'s KV pool. Its
  // engine config and request limits follow; weights parked on the old
  // device are dropped. FAILED_PRECONDITION while it is resident, or when a
  // request waiting for its load would not fit the new home's limits;
  // UNAVAILABLE once retired.
  absl::Status MoveTo(std::shared_ptr<Device> device, std::unique_ptr<KvPool::Account> account);
  // loading -> failed: queued requests end with `why`. The next load waits
  // for a backoff (failed_load_retry_ms, doubling with each failure in a
  // row), unless `device_full`: placement found no room (residents busy or
  // within their keep-alive), which the next request may find.
  void Fail(const absl::Status& why, bool device_full = false);
  // ready and idle (nothing queued or running) -> evicted: the engine and the
  // device's copy of the weights are freed before it returns. Where the
  // device's memory is its own and the device's OffloadBudget has room, the
  // weights are parked in host memory first (Model::OffloadWeights); just
  // before that, once the eviction is certain, `before_park` (if set) is
  // called with the weights' bytes, outside the model's lock, to make room in
  // the budget. False, with nothing changed and nothing called, when the
  // model is busy or not ready, or was used after `judged_idle_at` (its
  // last_used when the caller judged it evictable; nullopt: not checked).
  // Not on the executor's thread.
  bool Evict(std::string reason,
             const std::function<void(int64_t weights_bytes)>& before_park = nullptr,
             std::optional<runtime::Clock::time_point> judged_idle_at = std::nullopt);
  // The weights parked at its last eviction, back on the device, with the
  // backend handle they were made through: what Activate takes. nullopt when
  // none are parked, or when the device has no room for them (they are
  // dropped then: the file reloads).
  struct Unparked {
    std::unique_ptr<runtime::Model> model;
    std::unique_ptr<kernels::Backend> context;
  };
  std::optional<Unparked> Unpark();
  // Gives the host memory of its parked weights back (its next load reads
  // the file); false when none are parked.
  bool DropParkedWeights();

 private:
  // ModelStatus::last_used; under mu_.
  runtime::Clock::time_point LastUsedLocked() const;
  // Where it lives, and what follows from that. Replaced whole (MoveTo)
  // while nothing of the model is on the device; readers hold a snapshot.
  struct Placement {
    std::shared_ptr<Device> device;
    // The engine releases its KV memory into the account: a snapshot held
    // by Resident keeps it alive past the engine.
    std::unique_ptr<KvPool::Account> kv_account;
    runtime::EngineConfig engine_config;  // WithPlacement's
    runtime::RequestLimits limits;
  };
  std::shared_ptr<const Placement> MakePlacement(std::shared_ptr<Device> device,
                                                 std::unique_ptr<KvPool::Account> account,
                                                 runtime::EngineConfig engine_config) const;
  std::shared_ptr<const Placement> placement() const {
    std::lock_guard<std::mutex> lock(mu_);
    return placement_;
  }

  struct Queued {
    runtime::RequestId id;
    runtime::GenerateRequest request;
    std::shared_ptr<runtime::TokenSink> sink;
  };
  // Ends a request that never reached an engine.
  static void Finish(Queued& q, runtime::FinishReason reason, absl::Status status);
  // What a resident model holds, in the order it must go: the engine (its KV
  // memory and activations), then the weights, then the backend handle they
  // were made through.
  struct Resident {
    std::shared_ptr<const Placement> placement;  // where the rest lives; outlives it
    std::unique_ptr<kernels::Backend> context;
    std::unique_ptr<runtime::Model> model;
    std::unique_ptr<runtime::Engine> engine;
  };
  // Detaches and destroys what was taken out under mu_; with `park`, keeps
  // the weights in host memory where it can (Evict).
  void Release(Resident resident, bool park = false,
               const std::function<void(int64_t)>& before_park = nullptr);
  // A parked model and the OffloadBudget bytes it holds.
  struct Parked {
    Resident resident;
    int64_t bytes = 0;
  };
  // parked_ taken out (empty after); under mu_.
  Parked TakeParkedLocked();
  // Gives a parked model's host memory back (taken out under mu_).
  void DropParked(Parked parked);
  // Returns the parked weights' host memory to the device's offload budget.
  static void GiveBack(const Parked& parked);
  // "model "x" failed to load: `why`", the file shown by its name only
  // (WithoutModelPath): what its clients are told.
  std::string FailedToLoad(std::string_view why) const;

  // The first member, so the last destroyed (gone_token).
  const std::shared_ptr<const void> gone_token_ = std::make_shared<int>(0);
  const ModelSpec spec_;
  const std::unique_ptr<runtime::Tokenizer> tokenizer_;
  const runtime::ModelConfig config_;
  const runtime::EngineConfig base_engine_config_;  // before WithPlacement
  Admission admission_;
  BusyMeter busy_;
  TtftPredictionBook ttft_predictions_;
  std::once_flag json_once_;
  std::shared_ptr<const runtime::JsonConstraint> json_constraint_;  // set once, under json_once_

  mutable std::mutex mu_;
  std::shared_ptr<const Placement> placement_;  // guarded by mu_
  ModelState state_ = ModelState::kEvicted;     // guarded by mu_
  bool retired_ = false;                        // guarded by mu_
  std::string reason_;                          // guarded by mu_
  runtime::Clock::time_point last_used_;        // guarded by mu_
  Resident resident_;  // guarded by mu_; model and engine set while ready (context may stay null)
  Resident parked_;    // guarded by mu_; model (weights offloaded) while evicted, if kept
  int64_t parked_bytes_ = 0;      // guarded by mu_; what parked_ holds of the OffloadBudget
  std::vector<Queued> queued_;    // guarded by mu_; while not ready
  double last_load_seconds_ = 0;  // guarded by mu_
  // Preemptions of its engines before the current one (Stats adds them, so
  // that the count survives evictions). Guarded by mu_.
  int64_t past_preemptions_ = 0;
  // The last load from the file, and the last return of parked weights:
  // what TimeToReady predicts from. Guarded by mu_.
  std::optional<double> file_load_seconds_, restore_seconds_;
  int64_t loads_ok_ = 0, loads_failed_ = 0, evictions_ = 0;  // guarded by mu_
  // Failed loads since the last one that worked, and when a request may try
  // again (AdmissionLimits::failed_load_retry_ms).
  int32_t failures_in_row_ = 0;               // guarded by mu_
  runtime::Clock::time_point retry_load_at_;  // guarded by mu_
  // Its engine's last known step cost (it outlives the engine).
  mutable std::optional<runtime::StepCost> last_cost_;  // guarded by mu_
};

}  // namespace cohost::scheduler
