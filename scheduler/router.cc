// The Router: the table of registered models, their loading and eviction,
// admission control in front of each, and draining. Admission counts a
// request as queued from Submit until the engine first schedules it (or
// finishes it), and in flight until it finishes; an AdmissionSink wrapped
// around the caller's sink keeps those counters honest on the engine thread.

#include "scheduler/router.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "runtime/model/model.h"
#include "scheduler/model_name.h"
#include "scheduler/placement.h"

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
  AdmissionSink(ServedModel* model, std::unique_ptr<Admission::Ticket> ticket,
                std::shared_ptr<runtime::TokenSink> inner)
      : model_(model), ticket_(std::move(ticket)), inner_(std::move(inner)) {}

  void OnScheduled() override {
    model_->admission().Scheduled(*ticket_);
    inner_->OnScheduled();
  }
  bool OnDelta(const runtime::TokenDelta& delta) override { return inner_->OnDelta(delta); }
  void OnFinish(const runtime::FinishInfo& info) override {
    // The books first, so whoever the inner sink wakes sees them settled.
    model_->admission().Finished(*ticket_);
    inner_->OnFinish(info);
  }

  Admission::Ticket& ticket() { return *ticket_; }

 private:
  ServedModel* model_;
  const std::unique_ptr<Admission::Ticket> ticket_;
  std::shared_ptr<runtime::TokenSink> inner_;
};

absl::Status AlreadyLoaded(const std::string& name) {
  return absl::AlreadyExistsError(
      absl::StrFormat("a model named \"%s\" is already loaded", absl::CHexEscape(name)));
}

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrFormat("model \"%s\" is not loaded", absl::CHexEscape(name)));
}

int64_t PredictedWeights(const ServedModel& m) {
  return static_cast<int64_t>(
      runtime::Model::PredictWeightsBytes(m.config(), m.device().backend->compute_dtype()));
}

// What a load reserves on the device: the weights and the activations of the
// engine's largest step (Engine::Create allocates them).
int64_t PredictedFootprint(const ServedModel& m) {
  const runtime::StepSchedulerConfig& sc = m.engine_config().step_scheduler;
  return PredictedWeights(m) + static_cast<int64_t>(runtime::Model::PredictWorkspaceBytes(
                                   m.config(), m.device().backend->compute_dtype(),
                                   sc.max_tokens_per_step, sc.max_num_seqs));
}

}  // namespace

Router::Router(kernels::Backend* backend, runtime::EngineConfig engine_config,
               RouterOptions options)
    : engine_config_(std::move(engine_config)), options_(std::move(options)) {
  device_ = std::make_shared<Device>();
  device_->name = backend->Caps().device_name;
  // One backend per server for now, so a CUDA one is device 0.
  device_->id = backend->kind() == kernels::BackendKind::kCpu ? "cpu" : "cuda:0";
  device_->backend = backend;
  device_->executor = std::make_shared<DeviceExecutor>(device_->name, options_.executor);
  device_->kv_pool = std::make_shared<KvPool>(device_->name, engine_config_.kv_cache_bytes);
  device_->weights_budget_bytes = options_.weights_budget_bytes;
  loader_ = std::thread([this] { LoaderLoop(); });
}

Router::~Router() {
  {
    std::lock_guard<std::mutex> lock(loader_mu_);
    loader_stop_ = true;
  }
  loader_cv_.notify_all();
  loader_.join();
}

absl::StatusOr<std::unique_ptr<KvPool::Account>> Router::JoinPool(const ModelSpec& spec) const {
  KvPool& pool = *device_->kv_pool;
  return pool.Join(spec.name, spec.kv_floor_bytes,
                   spec.kv_cap_bytes > 0 ? spec.kv_cap_bytes : pool.budget());
}

absl::StatusOr<std::shared_ptr<ServedModel>> Router::Register(const ModelSpec& spec,
                                                              std::string why_not_loaded) {
  RETURN_IF_ERROR(ValidateModelName(spec.name));
  {
    // Fail fast before reading the file; Insert checks again under the lock.
    std::lock_guard<std::mutex> lock(mu_);
    if (models_.contains(spec.name)) return AlreadyLoaded(spec.name);
  }
  RETURN_IF_ERROR(CheckPin({DeviceRoom{device_->id}}, ModelDemand{spec.name, 0, 0, spec.device}));
  ASSIGN_OR_RETURN(runtime::ModelDescription description, runtime::DescribeModel(spec.path));
  ASSIGN_OR_RETURN(std::unique_ptr<KvPool::Account> account, JoinPool(spec));
  return std::make_shared<ServedModel>(
      spec, std::move(description.tokenizer), std::move(description.config), device_,
      std::move(account), engine_config_, options_.admission, std::move(why_not_loaded));
}

absl::Status Router::Insert(const std::shared_ptr<ServedModel>& model) {
  std::lock_guard<std::mutex> lock(mu_);
  if (models_.contains(model->name())) return AlreadyLoaded(model->name());
  models_.emplace(model->name(), model);
  return absl::OkStatus();
}

absl::Status Router::AddModel(const ModelSpec& spec, const ProgressFn& progress) {
  const bool lazy = spec.load == LoadPolicy::kLazy;
  ASSIGN_OR_RETURN(std::shared_ptr<ServedModel> model,
                   Register(spec, lazy ? "lazy: loads on its first request" : "not loaded yet"));
  RETURN_IF_ERROR(Insert(model));
  if (lazy) return absl::OkStatus();
  if (!model->BeginLoading()) return absl::OkStatus();  // a first request beat us to it
  return Load(model, progress);
}

absl::Status Router::AddModelAndLoadInBackground(const ModelSpec& spec) {
  ASSIGN_OR_RETURN(std::shared_ptr<ServedModel> model, Register(spec, "queued to load"));
  RETURN_IF_ERROR(Insert(model));
  if (model->BeginLoading()) EnqueueLoad(model);
  return absl::OkStatus();
}

absl::Status Router::AddLoadedModel(const ModelSpec& spec, runtime::LoadedModel loaded) {
  RETURN_IF_ERROR(ValidateModelName(spec.name));
  if (loaded.model == nullptr || loaded.tokenizer == nullptr) {
    return absl::InvalidArgumentError("the loaded model has no weights or no tokenizer");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<KvPool::Account> account, JoinPool(spec));
  const runtime::ModelConfig config = loaded.model->config();
  auto model = std::make_shared<ServedModel>(spec, std::move(loaded.tokenizer), config, device_,
                                             std::move(account), engine_config_, options_.admission,
                                             "loading");
  model->BeginLoading();
  // Inserted (as loading) before its engine exists, so that a taken name
  // costs no engine; an engine that cannot be built leaves it failed.
  RETURN_IF_ERROR(Insert(model));
  RETURN_IF_ERROR(model->Activate(std::move(loaded.model)));
  const ModelStatus status = model->status();
  std::lock_guard<std::mutex> lock(mu_);
  weights_[spec.name] = status.weights_bytes + status.workspace_bytes;
  placements_[spec.name] = "the only device; loaded by the caller";
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

absl::Status Router::MakeRoom(const std::shared_ptr<ServedModel>& model, int64_t bytes) {
  const int64_t budget = device_->weights_budget_bytes;
  if (budget <= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    weights_[model->name()] = bytes;
    placements_[model->name()] = "the only device; no memory budget set";
    return absl::OkStatus();
  }
  const ModelDemand demand{model->name(), bytes, 0, model->spec().device};
  // Evicting runs outside the lock (it waits for the executor); whoever
  // reserves after it sees the memory free. A few rounds at most: each one
  // either fits, evicts something, or gives up.
  for (int round = 0; round < 4; ++round) {
    std::vector<std::shared_ptr<ServedModel>> on_device;
    DeviceRoom room{device_->id, budget};
    absl::StatusOr<Placement> placement;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [name, b] : weights_) room.used_bytes += b;
      for (const auto& [name, m] : models_) {
        auto it = weights_.find(name);
        if (m == model || it == weights_.end()) continue;
        const ModelStatus s = m->status();
        if (s.state != ModelState::kReady) continue;
        on_device.push_back(m);
        room.residents.push_back(
            {it->second, m->admission().in_flight() == 0, s.last_used, m->spec().keep_alive});
      }
      placement = PlaceModel({room}, demand, runtime::Clock::now());
      if (placement.ok() && placement->evict.empty()) {
        weights_[model->name()] = bytes;
        placements_[model->name()] = placement->why;
        return absl::OkStatus();
      }
    }
    if (!placement.ok()) {
      std::vector<std::string> held;
      for (size_t i = 0; i < on_device.size(); ++i) {
        held.push_back(absl::StrFormat("%s (%d bytes, %s)", on_device[i]->name(),
                                       room.residents[i].bytes,
                                       room.residents[i].idle ? "within its keep-alive" : "busy"));
      }
      return absl::Status(placement.status().code(),
                          absl::StrFormat("%s (resident: %s)", placement.status().message(),
                                          held.empty() ? "none" : absl::StrJoin(held, ", ")));
    }
    for (size_t i : placement->evict) {
      if (on_device[i]->Evict(absl::StrFormat("evicted for model \"%s\"", model->name()))) {
        ReleaseWeights(on_device[i]->name());
      }
    }
  }
  return absl::ResourceExhaustedError("the device's weights budget stayed full while evicting");
}

void Router::ReleaseWeights(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  weights_.erase(name);
  placements_.erase(name);
}

absl::Status Router::Load(const std::shared_ptr<ServedModel>& model, const ProgressFn& progress) {
  const runtime::Clock::time_point start = runtime::Clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(runtime::Clock::now() - start).count();
  };
  const auto failed = [&](const absl::Status& why) {
    ReleaseWeights(model->name());
    if (options_.on_load) options_.on_load(model->name(), false, elapsed());
    return why;
  };
  absl::Status s = MakeRoom(model, PredictedFootprint(*model));
  absl::StatusOr<std::unique_ptr<runtime::Model>> weights =
      s.ok() ? runtime::LoadWeights(model->path(), device_->backend, progress)
             : absl::StatusOr<std::unique_ptr<runtime::Model>>(s);
  if (!weights.ok()) {
    model->Fail(weights.status());
    return failed(weights.status());
  }
  const double seconds = elapsed();
  if (absl::Status a = model->Activate(*std::move(weights), seconds); !a.ok()) return failed(a);
  const ModelStatus loaded = model->status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The prediction's place, now measured.
    weights_[model->name()] = loaded.weights_bytes + loaded.workspace_bytes;
  }
  if (options_.on_load) options_.on_load(model->name(), true, seconds);
  return absl::OkStatus();
}

void Router::EnqueueLoad(const std::shared_ptr<ServedModel>& model) {
  {
    std::lock_guard<std::mutex> lock(loader_mu_);
    load_queue_.push_back(model);
  }
  loader_cv_.notify_all();
}

void Router::LoaderLoop() {
  for (;;) {
    std::shared_ptr<ServedModel> model;
    {
      std::unique_lock<std::mutex> lock(loader_mu_);
      loader_cv_.wait(lock, [this] { return loader_stop_ || !load_queue_.empty(); });
      if (loader_stop_) return;
      model = load_queue_.front().lock();
      load_queue_.pop_front();
    }
    if (model == nullptr) continue;  // unloaded while it waited
    if (absl::Status s = Load(model, nullptr); !s.ok()) {
      std::fprintf(stderr, "cohost: loading model \"%s\" failed: %s\n", model->name().c_str(),
                   std::string(s.message()).c_str());
    }
  }
}

absl::Status Router::UnloadModel(const std::string& name) {
  std::shared_ptr<ServedModel> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return NotFound(name);
    model = std::move(it->second);
    models_.erase(it);
    weights_.erase(name);
    placements_.erase(name);
  }
  model->AbortAll(
      absl::UnavailableError(absl::StrFormat("model \"%s\" was unloaded", absl::CHexEscape(name))));
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
    s.kv_cache_tokens = model->request_limits().kv_capacity_tokens;
    s.kv_bytes_held = model->kv_account().held();
    s.state = status.state;
    s.state_reason = status.reason;
    s.serving = !draining() && status.state == ModelState::kReady;
    s.device = model->device().name;
    auto placed = placements_.find(name);
    s.placement = placed != placements_.end() ? placed->second : "not placed: not loaded";
    s.weights_bytes = status.weights_bytes;
    s.predicted_weights_bytes = PredictedWeights(*model);
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
                                                  std::shared_ptr<runtime::TokenSink> sink) {
  if (draining()) return absl::UnavailableError("server is draining");
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  if (sink == nullptr) return absl::InvalidArgumentError("no output sink");
  ASSIGN_OR_RETURN(std::unique_ptr<Admission::Ticket> ticket,
                   model->admission().Admit(static_cast<int64_t>(request.prompt_ids.size())));
  auto admission = std::make_shared<AdmissionSink>(model.get(), std::move(ticket), std::move(sink));
  const runtime::RequestId id = next_id_.fetch_add(1);
  bool needs_load = false;
  if (absl::Status s = model->Submit(id, std::move(request), admission, &needs_load); !s.ok()) {
    // Refused: nobody will call the sink.
    model->admission().Refused(admission->ticket());
    return s;
  }
  model->admission().Submitted(admission->ticket(), id);
  if (needs_load && model->BeginLoading()) EnqueueLoad(model);
  return id;
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
  std::vector<std::shared_ptr<ServedModel>> models;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, model] : models_) models.push_back(model);
  }
  for (const std::shared_ptr<ServedModel>& model : models) model->AbortAll();
}

}  // namespace cohost::scheduler
