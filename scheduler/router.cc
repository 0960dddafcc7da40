// The Router: the table of registered models, their placement (loading and
// eviction: router_loading.cc), admission control in front of each, and
// draining. Admission counts a request as queued from Submit until the engine
// first schedules it (or finishes it), and in flight until it finishes; an
// AdmissionSink wrapped around the caller's sink keeps those counters honest
// on the engine thread.

#include "scheduler/router.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "scheduler/memory_plan.h"
#include "scheduler/model_name.h"
#include "scheduler/placement.h"
#include "scheduler/ttft_predictor.h"

namespace cohost::scheduler {
namespace {

// Wraps the caller's sink and keeps the model's admission books: the request
// leaves the queue when first scheduled (or when it finishes unscheduled) and
// the flight when it finishes. Every call is forwarded. Holds the model by raw
// pointer: the engine that calls it is owned by the model, so the model
// outlives every call (a shared_ptr here would let the engine thread destroy
// its own engine).
class AdmissionSink : public runtime::TokenSink {
 public:
  // `tenant`: the request's place in its tenant's books, in `tenants` (its
  // stream open while this or `inner` holds it: KeepOpen).
  // `predicted`: the request's TTFT as predicted at admission, recorded
  // against the actual one (from `arrival`) at its first token.
  AdmissionSink(ServedModel* model, std::unique_ptr<Admission::Ticket> ticket,
                std::shared_ptr<TenantBook> tenants, std::shared_ptr<TenantBook::Ticket> tenant,
                std::shared_ptr<runtime::TokenSink> inner,
                std::optional<runtime::Clock::duration> predicted,
                runtime::Clock::time_point arrival)
      : model_(model),
        ticket_(std::move(ticket)),
        tenants_(std::move(tenants)),
        tenant_(std::move(tenant)),
        inner_(std::move(inner)),
        predicted_(predicted),
        arrival_(arrival) {}

  void OnScheduled() override {
    model_->admission().Scheduled(*ticket_);
    tenants_->Scheduled(*tenant_);
    inner_->OnScheduled();
  }
  bool OnDelta(const runtime::TokenDelta& delta) override {
    charged_ += static_cast<int64_t>(delta.token_ids.size());
    tenants_->Generated(*tenant_, static_cast<int64_t>(delta.token_ids.size()));
    if (predicted_ && !delta.token_ids.empty()) {
      model_->ttft_predictions().Record(*predicted_, runtime::Clock::now() - arrival_);
      predicted_.reset();
    }
    return inner_->OnDelta(delta);
  }
  void OnFinish(const runtime::FinishInfo& info) override {
    // A stop string's tokens were generated but never sent: charged here.
    const int64_t unsent = info.completion_tokens - charged_;
    if (unsent > 0) tenants_->Generated(*tenant_, unsent);
    // The books first, so whoever the inner sink wakes sees them settled
    // (the tenant's stream stays open only where the inner sink keeps it).
    model_->admission().Finished(*ticket_);
    tenants_->Finished(*tenant_);
    tenant_.reset();
    inner_->OnFinish(info);
  }

  Admission::Ticket& ticket() { return *ticket_; }
  TenantBook::Ticket& tenant() { return *tenant_; }

 private:
  ServedModel* model_;
  const std::unique_ptr<Admission::Ticket> ticket_;
  // Shared with the Router: a model (and so this sink, its engine's) may
  // outlive the Router while a call still holds it.
  std::shared_ptr<TenantBook> tenants_;
  std::shared_ptr<TenantBook::Ticket> tenant_;  // until OnFinish
  std::shared_ptr<runtime::TokenSink> inner_;
  int64_t charged_ = 0;  // generated tokens charged to the tenant so far
  std::optional<runtime::Clock::duration> predicted_;  // until the first token
  const runtime::Clock::time_point arrival_;
};

absl::Status AlreadyLoaded(const std::string& name) {
  return absl::AlreadyExistsError(
      absl::StrCat("a model named ", Quote(name, kMaxModelNameLength), " is already loaded"));
}

absl::Status NotFound(const std::string& name) {
  // No name is the request's mistake, not a model missing (as over HTTP).
  if (name.empty())
    return absl::InvalidArgumentError("model is required (the name of a served model)");
  // A client's name, cut to the longest a model's can be: the model field of
  // a request may be megabytes.
  return absl::NotFoundError(
      absl::StrCat("model ", Quote(name, kMaxModelNameLength), " is not loaded"));
}

// A device without a weights budget, as placement sees it.
constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max() / 4;

// CheckPin over devices known by their ids alone.
absl::Status CheckPinAmong(const std::vector<std::string>& ids, const ModelSpec& spec) {
  std::vector<DeviceRoom> rooms(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) rooms[i].name = ids[i];
  return CheckPin(rooms, ModelDemand{spec.name, 0, 0, spec.device});
}

// A share of `device`'s KV pool for the model, refused (RESOURCE_EXHAUSTED)
// where it could not hold one group of the model's blocks: such a model
// could run nothing, and its every request would read the file again.
absl::StatusOr<std::unique_ptr<KvPool::Account>> JoinPool(
    const Device& device, const ModelSpec& spec, const runtime::ModelConfig& config,
    const runtime::EngineConfig& engine_config) {
  KvPool& pool = *device.kv_pool;
  // No cap: the whole pool (Join takes a cap past the pool as the pool).
  const int64_t cap =
      spec.kv_cap_bytes > 0 ? spec.kv_cap_bytes : std::numeric_limits<int64_t>::max();
  ASSIGN_OR_RETURN(std::unique_ptr<KvPool::Account> account,
                   pool.Join(spec.name, spec.kv_floor_bytes, cap));
  RETURN_IF_ERROR(runtime::Engine::CheckKvShape(config, *device.backend,
                                                WithKvShare(engine_config, account.get())));
  return account;
}

std::string DefaultDeviceId(const kernels::Backend& backend) {
  return backend.kind() == kernels::BackendKind::kCpu ? "cpu" : "cuda:0";
}

}  // namespace

Router::Router(std::vector<DeviceSetup> devices, runtime::EngineConfig engine_config,
               RouterOptions options)
    : engine_config_(std::move(engine_config)),
      options_(std::move(options)),
      devices_([&] {
        std::vector<std::shared_ptr<Device>> out;
        std::shared_ptr<OffloadBudget> offload =
            options_.offload_budget_bytes > 0
                ? std::make_shared<OffloadBudget>(options_.offload_budget_bytes)
                : nullptr;
        for (DeviceSetup& setup : devices) {
          auto d = std::make_shared<Device>();
          // Named for metrics and logs; the id leads, so that two devices of
          // one model of GPU have two names.
          d->name = setup.backend->Caps().device_name;
          if (!absl::StartsWith(d->name, setup.id)) d->name = absl::StrCat(setup.id, ": ", d->name);
          d->id = std::move(setup.id);
          d->backend = setup.backend;
          d->executor = std::make_shared<DeviceExecutor>(d->name, options_.executor);
          d->kv_pool = std::make_shared<KvPool>(d->name, setup.kv_pool_bytes);
          for (const auto& [model, floor] : setup.reserved_kv_floors) {
            d->kv_pool->Reserve(model, floor);
          }
          d->weights_budget_bytes = setup.weights_budget_bytes;
          if (!setup.backend->AdoptsHostMemory()) d->offload = offload;
          out.push_back(std::move(d));
        }
        return out;
      }()),
      tenants_(std::make_shared<TenantBook>(options_.tenants)) {
  loader_ = std::thread([this] { LoaderLoop(); });
}

Router::Router(kernels::Backend* backend, const runtime::EngineConfig& engine_config,
               const RouterOptions& options)
    : Router({DeviceSetup{backend,
                          DefaultDeviceId(*backend),
                          engine_config.kv_cache_bytes,
                          options.weights_budget_bytes,
                          {}}},
             engine_config, options) {}

Router::~Router() {
  {
    std::lock_guard<std::mutex> lock(loader_mu_);
    loader_stop_ = true;
  }
  loader_cv_.notify_all();
  loader_.join();
}

size_t Router::IndexOf(const Device& device) const {
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i].get() == &device) return i;
  }
  return 0;  // every model's device is one of ours
}

std::vector<DeviceRoom> Router::RoomsLocked(
    const ServedModel* except,
    std::vector<std::vector<std::shared_ptr<ServedModel>>>* residents) const {
  std::vector<DeviceRoom> rooms;
  for (const std::shared_ptr<Device>& d : devices_) {
    DeviceRoom& room = rooms.emplace_back();
    room.name = d->id;
    room.budget_bytes = d->weights_budget_bytes > 0 ? d->weights_budget_bytes : kUnlimited;
  }
  if (residents != nullptr) residents->assign(devices_.size(), {});
  for (const auto& [name, m] : models_) {
    if (m.get() == except) continue;
    const size_t i = IndexOf(m->device());
    DeviceRoom& room = rooms[i];
    const ModelStatus s = m->status();
    auto reserved = weights_.find(name);
    if (reserved == weights_.end()) {
      // Parked weights' contexts stay on the device (their reservation went
      // with the eviction; a load's new one covers its context again).
      room.parked_bytes += s.parked_device_bytes;
      continue;
    }
    room.used_bytes += reserved->second;
    room.load += m->busy().Load();
    if (s.state != ModelState::kReady) continue;
    room.residents.push_back({reserved->second, m->admission().in_flight() == 0, s.last_used,
                              m->spec().keep_alive, m->spec().priority});
    if (residents != nullptr) (*residents)[i].push_back(m);
  }
  for (const Retiring& r : retiring_) {
    if (r.model.expired()) continue;
    rooms[r.device].used_bytes += r.bytes;
    rooms[r.device].retiring_bytes += r.bytes;
  }
  return rooms;
}

absl::StatusOr<Router::Home> Router::PlaceNew(const ModelSpec& spec,
                                              const runtime::ModelConfig& config) {
  if (devices_.empty()) return absl::FailedPreconditionError("this server has no device");
  if (devices_.size() == 1) {
    RETURN_IF_ERROR(CheckPinAmong({devices_[0]->id}, spec));
    ASSIGN_OR_RETURN(std::unique_ptr<KvPool::Account> account,
                     JoinPool(*devices_[0], spec, config, engine_config_));
    return Home{devices_[0], std::move(account), "the only device"};
  }
  // All devices are of one kind, so the footprint holds on each.
  const ModelDemand demand{spec.name, ExpectedFootprint(spec.path, config, *devices_[0]).bytes, 0,
                           spec.device};
  std::vector<bool> passed_over(devices_.size(), false);
  absl::Status no_room;  // the last pool that could not take its floor
  for (;;) {
    std::vector<DeviceRoom> rooms;
    std::vector<size_t> index;  // rooms[k] is devices_[index[k]]
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<DeviceRoom> all = RoomsLocked(nullptr, nullptr);
      for (size_t i = 0; i < all.size(); ++i) {
        if (passed_over[i] || (spec.device && all[i].name != *spec.device)) continue;
        rooms.push_back(std::move(all[i]));
        index.push_back(i);
      }
    }
    if (rooms.empty()) {
      if (!no_room.ok()) return no_room;
      return CheckPinAmong({}, spec);  // pinned to a device this server lacks
    }
    absl::StatusOr<Placement> placed = PlaceModel(rooms, demand, runtime::Clock::now());
    auto plan = options_.planned_devices.find(spec.name);
    if (plan != options_.planned_devices.end()) {
      for (size_t j = 0; j < rooms.size(); ++j) {
        if (rooms[j].name != plan->second) continue;
        // The planned device alone, where the model fits without evicting.
        absl::StatusOr<Placement> there =
            PlaceModel(absl::MakeConstSpan(&rooms[j], 1), demand, runtime::Clock::now());
        if (there.ok() && there->evict.empty()) {
          placed = Placement{j, {}, absl::StrCat("planned at start-up; ", there->why)};
        }
      }
    }
    size_t k = 0;
    std::string why;
    if (placed.ok()) {
      k = placed->device;
      why = rooms.size() > 1
                ? absl::StrFormat("chosen among %d devices: %s", rooms.size(), placed->why)
                : placed->why;
    } else {
      // Fits nowhere now: it waits on the largest device, whose load will say
      // why while nothing there can make room.
      for (size_t j = 1; j < rooms.size(); ++j) {
        if (rooms[j].budget_bytes > rooms[k].budget_bytes) k = j;
      }
      why = absl::StrCat("the largest device; ", placed.status().message());
    }
    if (const auto passed = std::count(passed_over.begin(), passed_over.end(), true); passed > 0) {
      absl::StrAppendFormat(&why, "; %d device%s passed over: %s KV pool cannot take its floor",
                            passed, passed == 1 ? "" : "s", passed == 1 ? "its" : "their");
    }
    const std::shared_ptr<Device>& device = devices_[index[k]];
    absl::StatusOr<std::unique_ptr<KvPool::Account>> account =
        JoinPool(*device, spec, config, engine_config_);
    if (account.ok()) return Home{device, *std::move(account), std::move(why)};
    if (account.status().code() != absl::StatusCode::kResourceExhausted) return account.status();
    no_room = account.status();
    passed_over[index[k]] = true;
  }
}

absl::StatusOr<Router::Registration> Router::Register(const ModelSpec& spec,
                                                      std::string why_not_loaded) {
  RETURN_IF_ERROR(ValidateModelName(spec.name));
  {
    // Fail fast before reading the file; Insert checks again under the lock.
    std::lock_guard<std::mutex> lock(mu_);
    if (models_.contains(spec.name)) return AlreadyLoaded(spec.name);
  }
  {
    // A pin to a device this server lacks fails before the file is read.
    std::vector<std::string> ids;
    for (const std::shared_ptr<Device>& d : devices_) ids.push_back(d->id);
    RETURN_IF_ERROR(CheckPinAmong(ids, spec));
  }
  ASSIGN_OR_RETURN(runtime::ModelDescription description,
                   runtime::DescribeModel(spec.path, spec.chat_template));
  ASSIGN_OR_RETURN(Home home, PlaceNew(spec, description.config));
  Registration r;
  r.model = std::make_shared<ServedModel>(
      spec, std::move(description.tokenizer), std::move(description.config), home.device,
      std::move(home.account), engine_config_, options_.admission, std::move(why_not_loaded));
  r.home_why = std::move(home.why);
  return r;
}

absl::Status Router::Insert(const Registration& r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (models_.contains(r.model->name())) return AlreadyLoaded(r.model->name());
  models_.emplace(r.model->name(), r.model);
  homes_[r.model->name()] = r.home_why;
  KeepFloorWhereItLivesLocked(*r.model);
  return absl::OkStatus();
}

void Router::KeepFloorWhereItLivesLocked(const ServedModel& model) {
  const std::string& name = model.name();
  if (std::none_of(devices_.begin(), devices_.end(),
                   [&](const auto& d) { return d->kv_pool->Reserved(name); })) {
    return;
  }
  const Device& home = model.device();
  for (const std::shared_ptr<Device>& d : devices_) {
    if (d.get() != &home) d->kv_pool->Unreserve(name);
  }
  home.kv_pool->Reserve(name, model.spec().kv_floor_bytes);
}

absl::Status Router::AddModel(const ModelSpec& spec, const ProgressFn& progress) {
  const bool lazy = spec.load == LoadPolicy::kLazy;
  ASSIGN_OR_RETURN(Registration r,
                   Register(spec, lazy ? "lazy: loads on its first request" : "not loaded yet"));
  RETURN_IF_ERROR(Insert(r));
  const std::shared_ptr<ServedModel>& model = r.model;
  if (lazy) return absl::OkStatus();
  if (!model->BeginLoading()) return absl::OkStatus();  // a first request beat us to it
  return Load(model, progress);
}

absl::Status Router::AddModelAndLoadInBackground(const ModelSpec& spec) {
  ASSIGN_OR_RETURN(Registration r, Register(spec, "queued to load"));
  RETURN_IF_ERROR(Insert(r));
  if (r.model->BeginLoading()) EnqueueLoad(r.model);
  return absl::OkStatus();
}

absl::Status Router::AddLoadedModel(const ModelSpec& spec, runtime::LoadedModel loaded) {
  RETURN_IF_ERROR(ValidateModelName(spec.name));
  if (loaded.model == nullptr || loaded.tokenizer == nullptr) {
    return absl::InvalidArgumentError("the loaded model has no weights or no tokenizer");
  }
  // It stays on the device whose backend holds its weights.
  auto device = std::find_if(devices_.begin(), devices_.end(),
                             [&](const auto& d) { return d->backend == loaded.model->backend(); });
  if (device == devices_.end()) {
    return absl::InvalidArgumentError(
        "the model was loaded on a backend this server does not have");
  }
  RETURN_IF_ERROR(CheckPinAmong({(*device)->id}, spec));
  const runtime::ModelConfig config = loaded.model->config();
  ASSIGN_OR_RETURN(std::unique_ptr<KvPool::Account> account,
                   JoinPool(**device, spec, config, engine_config_));
  Registration r;
  r.model = std::make_shared<ServedModel>(spec, std::move(loaded.tokenizer), config, *device,
                                          std::move(account), engine_config_, options_.admission,
                                          "loading");
  r.home_why = "the device its weights were loaded on";
  r.model->BeginLoading();
  // Inserted (as loading) before its engine exists, so that a taken name
  // costs no engine; an engine that cannot be built leaves it failed.
  RETURN_IF_ERROR(Insert(r));
  if (absl::Status s = r.model->Activate(std::move(loaded.model)); !s.ok()) {
    r.model->Fail(s);
    return s;
  }
  const ModelStatus status = r.model->status();
  std::lock_guard<std::mutex> lock(mu_);
  // Unloaded meanwhile: its bytes are not this name's any more (as Load).
  if (!RegisteredLocked(*r.model)) return r.model->UnloadedError();
  weights_[spec.name] = status.weights_bytes + status.workspace_bytes;
  placements_[spec.name] = "loaded by the caller";
  return absl::OkStatus();
}

absl::Status Router::AddModel(const std::string& name, std::string path,
                              runtime::LoadedModel loaded) {
  ModelSpec spec;
  spec.name = name;
  spec.path = std::move(path);
  return AddLoadedModel(spec, std::move(loaded));
}

absl::Status Router::LoadModel(const std::string& name, const std::string& path,
                               const ProgressFn& progress) {
  ModelSpec spec;
  spec.name = name;
  spec.path = path;
  return AddModel(spec, progress);
}

void Router::Rehome(const std::shared_ptr<ServedModel>& model, const ExpectedBytes& expected) {
  if (devices_.size() < 2 || model->spec().device) return;
  const Device& current = model->device();
  const ModelDemand demand{model->name(), expected.bytes, model->busy().Load(), std::nullopt};
  const runtime::Clock::time_point now = runtime::Clock::now();
  std::vector<DeviceRoom> rooms;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rooms = RoomsLocked(model.get(), nullptr);
  }
  const size_t here = IndexOf(current);
  absl::StatusOr<Placement> stay = PlaceModel(absl::MakeConstSpan(&rooms[here], 1), demand, now);
  // Weights parked in host memory come back only where they were made.
  if (stay.ok() && (stay->evict.empty() || model->status().offloaded_bytes > 0)) return;
  // Every device, this one first: placement takes a device with room, else
  // the one where evicting frees the fewest bytes, and on a tie this one.
  std::vector<DeviceRoom> ordered{rooms[here]};
  std::vector<size_t> index{here};  // ordered[k] is devices_[index[k]]
  for (size_t i = 0; i < rooms.size(); ++i) {
    if (i == here) continue;
    ordered.push_back(rooms[i]);
    index.push_back(i);
  }
  absl::StatusOr<Placement> best = PlaceModel(ordered, demand, now);
  if (!best.ok() || best->device == 0) return;
  const std::shared_ptr<Device>& target = devices_[index[best->device]];
  absl::StatusOr<std::unique_ptr<KvPool::Account>> account =
      JoinPool(*target, model->spec(), model->config(), engine_config_);
  if (!account.ok() || !model->MoveTo(target, *std::move(account)).ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!RegisteredLocked(*model)) return;
  KeepFloorWhereItLivesLocked(*model);
  homes_[model->name()] =
      absl::StrFormat("moved from %s when it reloaded, where it %s: %s", current.id,
                      stay.ok() ? "fit only by evicting more" : "did not fit", best->why);
}

absl::Status Router::UnloadModel(const std::string& name) {
  std::shared_ptr<ServedModel> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return NotFound(name);
    model = std::move(it->second);
    // Retired before it leaves the registry (Router::mu_, then the model's
    // lock, as everywhere): a request that found it is refused by it from
    // now on, or, already in flight, aborted below or by its own Submit.
    model->Retire();
    models_.erase(it);
    std::erase_if(retiring_, [](const Retiring& r) { return r.model.expired(); });
    if (auto w = weights_.find(name); w != weights_.end()) {
      retiring_.push_back({model->gone_token(), IndexOf(model->device()), w->second});
    }
    weights_.erase(name);
    placements_.erase(name);
    homes_.erase(name);
    // Unloaded for good: the floor kept for its return goes to the others.
    // Under the lock, as every move of it is: a load in flight cannot put
    // it back.
    for (const std::shared_ptr<Device>& d : devices_) d->kv_pool->Unreserve(name);
  }
  model->AbortAll(model->UnloadedError());
  return absl::OkStatus();
}

std::vector<ModelSummary> Router::ListModels() const {
  std::vector<ModelSummary> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.reserve(models_.size());
  for (const auto& [name, model] : models_) {
    const ModelStatus status = model->status();
    ModelSummary s;
    s.name = name;
    s.path = model->path();
    s.architecture = model->config().architecture;
    s.context_length = model->config().max_position_embeddings;
    s.vocab_size = model->config().vocab_size;
    s.experts = model->config().num_experts;
    s.experts_used = model->config().num_experts_used;
    s.kv_cache_tokens = model->request_limits().kv_capacity_tokens;
    s.kv_bytes_held = model->kv_bytes_held();
    s.state = status.state;
    s.state_reason = status.reason;
    s.serving = !draining() && status.state == ModelState::kReady;
    s.device = model->device().name;
    auto placed = placements_.find(name);
    s.placement = placed != placements_.end() ? placed->second : "not placed: not loaded";
    if (devices_.size() > 1) {
      auto home = homes_.find(name);
      s.placement = absl::StrCat(model->device().id, ", ", home != homes_.end() ? home->second : "",
                                 "; its weights: ", s.placement);
    }
    s.weights_bytes = status.weights_bytes;
    s.offloaded_bytes = status.offloaded_bytes;
    s.predicted_weights_bytes = PredictedWeights(model->config(), *model->device().backend,
                                                 options_.weights.keep_quantized);
    s.workspace_bytes = status.workspace_bytes;
    s.evictions = status.evictions;
    s.load = model->spec().load;
    s.last_used = status.last_used;
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<ServedModel>> Router::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound(name);
  return it->second;
}

absl::StatusOr<runtime::RequestId> Router::Submit(const std::shared_ptr<ServedModel>& model,
                                                  runtime::GenerateRequest request,
                                                  std::shared_ptr<runtime::TokenSink> sink,
                                                  bool further_choice) {
  if (draining() && (!further_choice || aborted_all_.load())) {
    return absl::UnavailableError("server is draining");
  }
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  const runtime::Clock::time_point now = runtime::Clock::now();
  // A priority the tenant may not ask for is refused before any other rule
  // is weighed (they read the priority).
  RETURN_IF_ERROR(tenants_->CheckPriority(request.tenant, request.priority));
  const auto prompt_tokens = static_cast<int64_t>(request.prompt_ids.size());
  // What its model's prefix cache already holds is not computed again.
  const std::optional<runtime::Clock::duration> predicted =
      PredictTtft(*model, prompt_tokens, request.priority, model->CachedPromptTokens(request));
  if (predicted) RETURN_IF_ERROR(JudgeAdmission(*model, request, *predicted, now));
  // A call's prompt is charged to its tenant once, with its first choice, as
  // its usage counts it: the further choices find it in the prefix cache.
  ASSIGN_OR_RETURN(std::unique_ptr<TenantBook::Ticket> tenant,
                   tenants_->Admit(request.tenant, further_choice ? 0 : prompt_tokens, now));
  absl::StatusOr<std::unique_ptr<Admission::Ticket>> ticket =
      model->admission().Admit(prompt_tokens);
  if (!ticket.ok()) {
    tenants_->Refused(*tenant);
    return ticket.status();
  }
  request.tenant_weight = tenants_->Weight(request.tenant);
  // The tenant's stream stays open while the front door still writes.
  std::shared_ptr<TenantBook::Ticket> stream = std::move(tenant);
  sink->KeepOpen(stream);
  auto admission =
      std::make_shared<AdmissionSink>(model.get(), *std::move(ticket), tenants_, std::move(stream),
                                      std::move(sink), predicted, request.arrival.value_or(now));
  const runtime::RequestId id = next_id_.fetch_add(1);
  bool needs_load = false;
  if (absl::Status s = model->Submit(id, std::move(request), admission, &needs_load); !s.ok()) {
    // Refused: nobody will call the sink.
    model->admission().Refused(admission->ticket());
    tenants_->Refused(admission->tenant());
    return s;
  }
  model->admission().Submitted(admission->ticket(), id);
  // Unloaded between its Submit and now: UnloadModel's AbortAll may have
  // missed the id. So may Router::AbortAll, for a further choice that passed
  // the draining check before it.
  if (model->retired()) {
    model->Abort(id, model->UnloadedError());
  } else if (aborted_all_.load()) {
    model->Abort(id);
  }
  if (needs_load && model->BeginLoading()) EnqueueLoad(model);
  return id;
}

std::optional<runtime::Clock::duration> Router::PredictTtft(const ServedModel& model,
                                                            int64_t prompt_tokens, int32_t priority,
                                                            int64_t cached_tokens) const {
  const std::optional<runtime::Clock::duration> to_ready = model.TimeToReady();
  if (!to_ready) return std::nullopt;
  std::vector<std::shared_ptr<ServedModel>> neighbours;
  const Device* device = &model.device();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) {
      if (m.get() != &model && &m->device() == device) neighbours.push_back(m);
    }
  }
  std::vector<PrefillQueue> others;
  others.reserve(neighbours.size());
  for (const std::shared_ptr<ServedModel>& m : neighbours) {
    others.push_back(m->Backlog(std::nullopt, /*prompt_tokens=*/0));  // all of it
  }
  // Priorities order a model's own queue only: the executor serves models'
  // first tokens by deadline, so another model's whole backlog counts.
  // Whether the prompt is short is judged whole, as the step scheduler
  // judges it (its cached prefix may be evicted before admission).
  return scheduler::PredictTtft(model.Backlog(priority, prompt_tokens), others,
                                prompt_tokens - cached_tokens, *to_ready);
}

absl::Status Router::JudgeAdmission(const ServedModel& model,
                                    const runtime::GenerateRequest& request,
                                    runtime::Clock::duration predicted,
                                    runtime::Clock::time_point now) const {
  const auto ms = [](runtime::Clock::duration d) {
    return static_cast<int64_t>(std::chrono::duration<double, std::milli>(d).count());
  };
  if (request.deadline && now + predicted > *request.deadline) {
    return WithRefusalReason(
        absl::DeadlineExceededError(absl::StrFormat(
            "model \"%s\" cannot meet this request's deadline: its first token is predicted in "
            "%d ms, and the deadline is in %d ms",
            model.name(), ms(predicted), ms(*request.deadline - now))),
        "deadline");
  }
  const std::optional<int32_t> margin = model.spec().ttft_admit_margin_pct;
  if (!margin) return absl::OkStatus();
  const TtftVerdict verdict = JudgeTtft(predicted, model.spec().ttft_target, *margin);
  if (verdict.admit) return absl::OkStatus();
  return RetryLater("ttft_target", verdict.pushback,
                    absl::StrFormat("model \"%s\" is too busy to meet its time-to-first-token "
                                    "target of %d ms: this request's first token is predicted in "
                                    "%d ms; retry in %d ms",
                                    model.name(), model.spec().ttft_target.count(), ms(predicted),
                                    verdict.pushback.count()));
}

void Router::Abort(const std::shared_ptr<ServedModel>& model, runtime::RequestId id) {
  if (model != nullptr) model->Abort(id);
}

void Router::StartDraining() { draining_.store(true); }

int32_t Router::num_in_flight() const {
  int32_t n = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, model] : models_) n += model->admission().in_flight();
  return n;
}

void Router::AbortAll() {
  aborted_all_.store(true);
  std::vector<std::shared_ptr<ServedModel>> models;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, model] : models_) models.push_back(model);
  }
  for (const std::shared_ptr<ServedModel>& model : models) model->AbortAll();
}

}  // namespace cohost::scheduler
