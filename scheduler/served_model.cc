#include "scheduler/served_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/batching/request_validation.h"
#include "runtime/engine/json_constraint.h"
#include "scheduler/model_path.h"

namespace cohost::scheduler {
namespace {

runtime::EngineConfig WithPlacement(runtime::EngineConfig c, Device& device,
                                    KvPool::Account* account) {
  c.on_work = device.executor->MakeWakeCallback();
  c.fair_share = device.fair_share.get();
  return WithKvShare(std::move(c), account);
}

}  // namespace

runtime::EngineConfig WithKvShare(runtime::EngineConfig c, KvPool::Account* account) {
  c.kv_budget = account;
  c.kv_cache_bytes = account->promised();
  c.num_kv_blocks = 0;
  return c;
}

std::string_view ModelStateName(ModelState s) {
  switch (s) {
    case ModelState::kLoading:
      return "loading";
    case ModelState::kReady:
      return "ready";
    case ModelState::kEvicted:
      return "evicted";
    case ModelState::kFailed:
      return "failed";
  }
  return "unknown";
}

ServedModel::ServedModel(ModelSpec spec, std::unique_ptr<runtime::Tokenizer> tokenizer,
                         runtime::ModelConfig config, std::shared_ptr<Device> device,
                         std::unique_ptr<KvPool::Account> kv_account,
                         runtime::EngineConfig engine_config, AdmissionLimits limits,
                         std::string why_not_loaded)
    : spec_(std::move(spec)),
      tokenizer_(std::move(tokenizer)),
      config_(std::move(config)),
      base_engine_config_(std::move(engine_config)),
      admission_(spec_.name, limits),
      placement_(MakePlacement(std::move(device), std::move(kv_account), base_engine_config_)),
      reason_(std::move(why_not_loaded)),
      last_used_(runtime::Clock::now()) {}

std::shared_ptr<const ServedModel::Placement> ServedModel::MakePlacement(
    std::shared_ptr<Device> device, std::unique_ptr<KvPool::Account> account,
    runtime::EngineConfig engine_config) const {
  auto p = std::make_shared<Placement>();
  p->engine_config = WithPlacement(std::move(engine_config), *device, account.get());
  p->limits = runtime::Engine::RequestLimitsFor(config_, *device->backend, p->engine_config);
  p->device = std::move(device);
  p->kv_account = std::move(account);
  return p;
}

absl::Status ServedModel::MoveTo(std::shared_ptr<Device> device,
                                 std::unique_ptr<KvPool::Account> account) {
  std::shared_ptr<const Placement> next =
      MakePlacement(std::move(device), std::move(account), base_engine_config_);
  std::shared_ptr<const Placement> old;
  Parked parked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (retired_) return UnloadedError();  // its new account would hold a floor for nobody
    if (resident_.engine != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("model \"", spec_.name, "\" is resident; it cannot move"));
    }
    // The requests waiting for the load were valid where the model was:
    // they must stay so, or they would end INVALID_ARGUMENT once it loads.
    for (const Queued& q : queued_) {
      if (absl::Status s =
              runtime::CheckRequestFits(static_cast<int64_t>(q.request.prompt_ids.size()),
                                        q.request.sampling.max_tokens, next->limits);
          !s.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "a request waiting for model \"", spec_.name, "\" would not fit there: ", s.message()));
      }
    }
    old = std::exchange(placement_, std::move(next));
    parked = TakeParkedLocked();  // its weights are the old device's
  }
  DropParked(std::move(parked));
  return absl::OkStatus();  // `old` leaves its pool once no snapshot holds it
}

ServedModel::~ServedModel() {
  std::vector<Queued> queued;
  Resident resident;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued.swap(queued_);
    resident = std::move(resident_);
  }
  for (Queued& q : queued) Finish(q, runtime::FinishReason::kCancelled, absl::OkStatus());
  Release(std::move(resident));
  DropParked(TakeParkedLocked());  // no other thread holds it now
}

void ServedModel::Finish(Queued& q, runtime::FinishReason reason, absl::Status status) {
  runtime::FinishInfo info;
  info.reason = reason;
  info.status = std::move(status);
  info.prompt_tokens = static_cast<int32_t>(q.request.prompt_ids.size());
  q.sink->OnFinish(info);
}

void ServedModel::Release(Resident resident, bool park,
                          const std::function<void(int64_t)>& before_park) {
  if (resident.placement == nullptr) return;  // nothing was made
  const Device& device = *resident.placement->device;
  if (resident.engine != nullptr) {
    // No reclaims of an engine on its way out; then no step of the device may
    // be running (one engine's step can reach another through the pool).
    resident.placement->kv_account->SetReclaimer(nullptr);
    device.executor->Detach(resident.engine.get());
    resident.engine.reset();  // live requests end as cancelled; KV memory goes back
  }
  OffloadBudget* budget = device.offload.get();
  if (park && resident.model != nullptr && budget != nullptr) {
    const auto bytes = static_cast<int64_t>(resident.model->weights_bytes());
    if (before_park) before_park(bytes);
    if (budget->TryTake(bytes)) {
      if (resident.model->OffloadWeights().ok()) {
        Parked old;
        {
          std::lock_guard<std::mutex> lock(mu_);
          old = TakeParkedLocked();  // none in practice: a load unparks first
          parked_ = std::move(resident);
          parked_bytes_ = bytes;
        }
        DropParked(std::move(old));
        return;
      }
      budget->Give(bytes);  // host memory ran out: dropped as without a budget
    }
  }
  resident.model.reset();
  resident.context.reset();
}

ServedModel::Parked ServedModel::TakeParkedLocked() {
  return {std::move(parked_), std::exchange(parked_bytes_, 0)};
}

void ServedModel::GiveBack(const Parked& parked) {
  if (OffloadBudget* budget = parked.resident.placement->device->offload.get()) {
    budget->Give(parked.bytes);
  }
}

void ServedModel::DropParked(Parked parked) {
  if (parked.resident.model == nullptr) return;
  parked.resident.model.reset();
  parked.resident.context.reset();
  GiveBack(parked);
}

bool ServedModel::DropParkedWeights() {
  Parked parked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    parked = TakeParkedLocked();
  }
  const bool had = parked.resident.model != nullptr;
  DropParked(std::move(parked));
  return had;
}

std::optional<ServedModel::Unparked> ServedModel::Unpark() {
  Parked parked;
  bool here = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    parked = TakeParkedLocked();
    here = parked.resident.placement != nullptr &&
           parked.resident.placement->device == placement_->device;
  }
  if (parked.resident.model == nullptr) return std::nullopt;
  // Weights made on another device (parked after a move) do not come back here.
  absl::Status s = here ? parked.resident.model->RestoreWeights()
                        : absl::FailedPreconditionError("they were made on another device");
  if (!s.ok()) {
    std::fprintf(stderr,
                 "cohost: model \"%s\": its weights kept in host memory cannot come "
                 "back (%s); reading its file\n",
                 spec_.name.c_str(), std::string(s.message()).c_str());
    DropParked(std::move(parked));
    return std::nullopt;
  }
  GiveBack(parked);
  return Unparked{std::move(parked.resident.model), std::move(parked.resident.context)};
}

ModelStatus ServedModel::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  ModelStatus s;
  s.state = state_;
  s.reason = reason_;
  s.offloaded_bytes = parked_bytes_;
  if (parked_.context != nullptr) {
    s.parked_device_bytes = static_cast<int64_t>(parked_.context->ContextBytes());
  }
  if (resident_.model != nullptr) {
    s.weights_bytes = static_cast<int64_t>(resident_.model->weights_bytes());
    // The model's step buffers, and what its own context on the device holds.
    const size_t context = resident_.context != nullptr ? resident_.context->ContextBytes() : 0;
    s.workspace_bytes = static_cast<int64_t>(resident_.model->workspace_bytes() + context);
  }
  s.last_used = LastUsedLocked();
  s.last_load_seconds = last_load_seconds_;
  s.loads_ok = loads_ok_;
  s.loads_failed = loads_failed_;
  s.evictions = evictions_;
  return s;
}

runtime::EngineStats ServedModel::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  runtime::EngineStats s;
  if (resident_.engine != nullptr) {
    s = resident_.engine->Stats();
  } else {
    s.num_waiting = static_cast<int32_t>(queued_.size());
  }
  s.num_preemptions += past_preemptions_;
  s.kv_bytes_backed = placement_->kv_account->held();
  return s;
}

PrefillQueue ServedModel::Backlog(std::optional<int32_t> priority, int64_t prompt_tokens) const {
  PrefillQueue q;
  std::lock_guard<std::mutex> lock(mu_);
  const runtime::StepSchedulerConfig& sched = placement_->engine_config.step_scheduler;
  q.step_tokens = sched.max_tokens_per_step;
  if (resident_.engine != nullptr) {
    const runtime::EngineStats stats = resident_.engine->Stats();
    if (stats.step_cost) last_cost_ = stats.step_cost;
    // While its streams decode, the executor sizes its steps to the TPOT
    // target (StepTokenCap): the backlog takes that many steps.
    if (stats.num_decoding > 0 && last_cost_) {
      q.step_tokens = last_cost_->TokensWithin(
          std::chrono::duration<double>(spec_.tpot_target).count(),
          placement_->device->executor->options().min_slice_tokens, q.step_tokens);
    }
    q.tokens = priority ? stats.PrefillTokensAheadOf(prompt_tokens, *priority, q.step_tokens, sched)
                        : stats.PrefillTokensLeft();
  } else {
    // Once loaded, these go to the engine together and are admitted by priority.
    for (const Queued& r : queued_) {
      if (!priority || r.request.priority >= *priority) {
        q.tokens += static_cast<int64_t>(r.request.prompt_ids.size());
      }
    }
  }
  q.cost = last_cost_;
  return q;
}

int32_t ServedModel::CachedPromptTokens(const runtime::GenerateRequest& request) const {
  std::lock_guard<std::mutex> lock(mu_);
  return resident_.engine != nullptr ? resident_.engine->CachedPromptTokens(request) : 0;
}

std::optional<runtime::Clock::duration> ServedModel::TimeToReady() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == ModelState::kReady) return runtime::Clock::duration::zero();
  // Parked weights come back by a copy; otherwise the file is read.
  const std::optional<double> seconds =
      parked_.model != nullptr && restore_seconds_ ? restore_seconds_ : file_load_seconds_;
  if (!seconds) return std::nullopt;
  return std::chrono::duration_cast<runtime::Clock::duration>(
      std::chrono::duration<double>(*seconds));
}

absl::Status ServedModel::Submit(runtime::RequestId id, runtime::GenerateRequest request,
                                 std::shared_ptr<runtime::TokenSink> sink, bool* needs_load) {
  *needs_load = false;
  std::lock_guard<std::mutex> lock(mu_);
  last_used_ = runtime::Clock::now();
  if (retired_) return UnloadedError();
  if (state_ == ModelState::kReady)
    return resident_.engine->Submit(id, std::move(request), std::move(sink));
  if (state_ == ModelState::kFailed && last_used_ < retry_load_at_) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(retry_load_at_ - last_used_);
    return WithRefusalReason(
        WithPushback(absl::UnavailableError(absl::StrCat(
                         FailedToLoad(reason_), "; it is tried again in ", left.count(), " ms")),
                     left),
        "load_failed");
  }
  // Checked now, as the engine will: a bad request must not wait for a load.
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  if (absl::Status s = runtime::ValidateRequest(request, placement_->limits); !s.ok()) return s;
  if (!request.arrival) request.arrival = last_used_;
  queued_.push_back({id, std::move(request), std::move(sink)});
  *needs_load = state_ == ModelState::kEvicted || state_ == ModelState::kFailed;
  return absl::OkStatus();
}

void ServedModel::Abort(runtime::RequestId id, const absl::Status& why) {
  std::unique_lock<std::mutex> lock(mu_);
  if (resident_.engine != nullptr) {
    resident_.engine->Abort(id, why);
    return;
  }
  for (auto it = queued_.begin(); it != queued_.end(); ++it) {
    if (it->id != id) continue;
    Queued q = std::move(*it);
    queued_.erase(it);
    lock.unlock();
    Finish(q, runtime::FinishReason::kCancelled, why);
    return;
  }
}

void ServedModel::AbortAll(const absl::Status& why) {
  std::vector<runtime::RequestId> ids = admission_.InFlightIds();
  for (runtime::RequestId id : ids) Abort(id, why);
}

void ServedModel::Retire() {
  std::lock_guard<std::mutex> lock(mu_);
  retired_ = true;
  // Its KV floor goes to the others, and to a model loaded again under its
  // name, now, not when its last call lets go of it.
  placement_->kv_account->Retire();
}

bool ServedModel::retired() const {
  std::lock_guard<std::mutex> lock(mu_);
  return retired_;
}

absl::Status ServedModel::UnloadedError() const {
  return absl::UnavailableError(absl::StrCat("model \"", spec_.name, "\" was unloaded"));
}

std::string ServedModel::FailedToLoad(std::string_view why) const {
  return absl::StrCat("model \"", spec_.name,
                      "\" failed to load: ", WithoutModelPath(why, spec_.path));
}

std::shared_ptr<const runtime::JsonConstraint> ServedModel::JsonConstraintOnce() {
  std::call_once(json_once_, [this] {
    json_constraint_ = std::make_shared<const runtime::JsonConstraint>(*tokenizer_);
  });
  return json_constraint_;
}

bool ServedModel::BeginLoading() {
  std::lock_guard<std::mutex> lock(mu_);
  if (retired_) return false;
  if (state_ != ModelState::kEvicted && state_ != ModelState::kFailed) return false;
  state_ = ModelState::kLoading;
  reason_ = "loading";
  return true;
}

absl::Status ServedModel::Activate(std::unique_ptr<runtime::Model> model, double load_seconds,
                                   std::unique_ptr<kernels::Backend> context, bool restored) {
  // The placement the weights were loaded for: the Router moves a model
  // (Rehome) before it loads the weights, never after.
  std::shared_ptr<const Placement> home = placement();
  runtime::EngineConfig engine_config = home->engine_config;
  engine_config.json_constraint = JsonConstraintOnce();
  absl::StatusOr<std::unique_ptr<runtime::Engine>> engine =
      runtime::Engine::Create(model.get(), tokenizer_.get(), engine_config);
  if (!engine.ok()) {
    // The weights go here; the caller then fails the model (after letting
    // go of what it reserved for them).
    Release({home, std::move(context), std::move(model), nullptr});
    return engine.status();
  }
  runtime::Engine* e = engine->get();
  home->kv_account->SetReclaimer(
      [e](int64_t wanted, int64_t most, runtime::RequestId wounder) {
        return e->ReclaimKv(wanted, most, wounder);
      },
      e->kv_group_bytes());
  // Attached before it is published as ready: once ready (and idle) another
  // thread's load may evict it, whose Detach must find it attached (after,
  // it would attach an engine already destroyed).
  home->device->executor->Attach(
      e, EngineTargets{spec_.ttft_target, spec_.name, spec_.tpot_target,
                       [this](double seconds, runtime::Clock::time_point end) {
                         busy_.Record(seconds, end);
                       }});
  // Requests whose deadline passed while the model loaded; told off-lock.
  std::vector<std::pair<Queued, absl::Status>> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    resident_ = {home, std::move(context), std::move(model), *std::move(engine)};
    state_ = ModelState::kReady;
    reason_.clear();
    // Its keep-alive counts from now: the load was not idle time (a load
    // longer than the keep-alive left it evictable the moment it was ready).
    last_used_ = runtime::Clock::now();
    last_load_seconds_ = load_seconds;
    (restored ? restore_seconds_ : file_load_seconds_) = load_seconds;
    ++loads_ok_;
    failures_in_row_ = 0;
    // Handed over under the lock: a Submit racing with this comes after them.
    for (Queued& q : queued_) {
      absl::Status s = resident_.engine->Submit(q.id, q.request, q.sink);
      if (!s.ok()) refused.emplace_back(std::move(q), std::move(s));
    }
    queued_.clear();
  }
  for (auto& [q, status] : refused) Finish(q, runtime::FinishReason::kError, status);
  return absl::OkStatus();
}

void ServedModel::Fail(const absl::Status& why, bool device_full) {
  std::vector<Queued> queued;
  std::optional<std::chrono::milliseconds> wait;  // until the load is tried again
  bool unloaded = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    unloaded = retired_;
    state_ = ModelState::kFailed;
    reason_ = std::string(why.message());
    ++loads_failed_;
    // A full device may have room at the next request; a file that cannot be
    // read or built will not, nor will memory the device refused after the
    // whole file was read (another process's, or an estimate short of the
    // truth), so that is what waits.
    if (!device_full) {
      const int32_t doublings = std::min(failures_in_row_++, 6);
      wait =
          std::chrono::milliseconds(int64_t{admission_.limits().failed_load_retry_ms} << doublings);
      retry_load_at_ = runtime::Clock::now() + *wait;
    }
    queued.swap(queued_);
  }
  if (unloaded) {
    // The unload ended them, whichever noticed first (its AbortAll or the
    // load, here): cancelled, as the unload's abort ends them.
    for (Queued& q : queued) Finish(q, runtime::FinishReason::kCancelled, UnloadedError());
    return;
  }
  // The requests that waited for the load learn what a later one would: when
  // it is tried again (a full device says nothing: the front door's default).
  absl::Status status(wait ? absl::StatusCode::kUnavailable : absl::StatusCode::kResourceExhausted,
                      FailedToLoad(std::string(why.message())));
  if (wait && wait->count() > 0) {
    status = WithRefusalReason(WithPushback(std::move(status), *wait), "load_failed");
  }
  for (Queued& q : queued) Finish(q, runtime::FinishReason::kError, status);
}

runtime::Clock::time_point ServedModel::LastUsedLocked() const {
  const std::optional<runtime::Clock::time_point> finished = admission_.last_finished();
  return finished ? std::max(last_used_, *finished) : last_used_;
}

bool ServedModel::Evict(std::string reason,
                        const std::function<void(int64_t weights_bytes)>& before_park,
                        std::optional<runtime::Clock::time_point> judged_idle_at) {
  Resident resident;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Unloaded meanwhile: its memory goes back with it; parking its weights
    // would only take other models' room in host memory.
    if (state_ != ModelState::kReady || admission_.in_flight() > 0 || retired_) return false;
    // A request came and went since the caller's judgement: its keep-alive
    // starts over.
    if (judged_idle_at && LastUsedLocked() > *judged_idle_at) return false;
    state_ = ModelState::kEvicted;
    reason_ = std::move(reason);
    ++evictions_;
    const runtime::EngineStats last = resident_.engine->Stats();
    if (last.step_cost) last_cost_ = last.step_cost;
    // The engine's counters go with it; the model's carry on.
    past_preemptions_ += last.num_preemptions;
    resident = std::move(resident_);
  }
  Release(std::move(resident), /*park=*/true, before_park);
  return true;
}

}  // namespace cohost::scheduler
