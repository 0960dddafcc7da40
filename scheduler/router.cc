// The Router: the table of served models, admission control in front of each
// model's engine, and draining. Admission counts a request as queued from
// Submit until the engine first schedules it (or finishes it), and in flight
// until it finishes; an AdmissionSink wrapped around the caller's sink keeps
// those counters honest on the engine thread.

#include "scheduler/router.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "scheduler/model_name.h"

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

}  // namespace

ServedModel::ServedModel(std::string name, std::string path, runtime::LoadedModel loaded,
                         std::unique_ptr<runtime::Engine> engine, AdmissionLimits limits,
                         Placement placement)
    : name_(std::move(name)),
      path_(std::move(path)),
      placement_(std::move(placement)),
      loaded_(std::move(loaded)),
      engine_(std::move(engine)),
      admission_(name_, limits) {
  runtime::Engine* e = engine_.get();
  placement_.kv_account->SetReclaimer([e](int64_t wanted, int64_t most, bool preempt) {
    return e->ReclaimKv(wanted, most, preempt);
  });
  placement_.executor->Attach(e, placement_.targets);
}

ServedModel::~ServedModel() {
  // The engine reads the model's weights and calls sinks that touch this
  // object's counters: it goes first, while everything else is still alive.
  placement_.kv_account->StopReclaims();
  placement_.executor->Detach(engine_.get());
  engine_.reset();
}

Router::Router(kernels::Backend* backend, runtime::EngineConfig engine_config,
               AdmissionLimits limits, ExecutorOptions executor_options)
    : backend_(backend),
      engine_config_(std::move(engine_config)),
      executor_(std::make_shared<DeviceExecutor>(backend->Caps().device_name, executor_options)),
      kv_pool_(
          std::make_shared<KvPool>(backend->Caps().device_name, engine_config_.kv_cache_bytes)),
      limits_(limits) {}

Router::~Router() = default;

absl::Status Router::LoadModel(const std::string& name, const std::string& path,
                               const ProgressFn& progress, const ModelOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(name));
  {
    // Fail fast before a long load; AddModel checks again under the lock.
    std::lock_guard<std::mutex> lock(mu_);
    if (models_.contains(name)) {
      return absl::AlreadyExistsError(
          absl::StrFormat("a model named \"%s\" is already loaded", name));
    }
  }
  absl::StatusOr<runtime::LoadedModel> loaded = runtime::LoadModel(path, backend_, progress);
  if (!loaded.ok()) return loaded.status();
  return AddModel(name, path, *std::move(loaded), options);
}

absl::Status Router::AddModel(const std::string& name, std::string path,
                              runtime::LoadedModel loaded, const ModelOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(name));
  if (loaded.model == nullptr || loaded.tokenizer == nullptr) {
    return absl::InvalidArgumentError("the loaded model has no weights or no tokenizer");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (models_.contains(name)) {
      return absl::AlreadyExistsError(
          absl::StrFormat("a model named \"%s\" is already loaded", name));
    }
  }
  ServedModel::Placement placement;
  placement.executor = executor_;
  placement.kv_pool = kv_pool_;
  placement.targets.ttft_target = options.ttft_target;
  ASSIGN_OR_RETURN(
      placement.kv_account,
      kv_pool_->Join(name, options.kv_floor_bytes,
                     options.kv_cap_bytes > 0 ? options.kv_cap_bytes : kv_pool_->budget()));
  runtime::EngineConfig engine_config = engine_config_;
  engine_config.on_work = executor_->MakeWakeCallback();
  engine_config.kv_budget = placement.kv_account.get();
  engine_config.kv_cache_bytes = placement.kv_account->promised();
  engine_config.num_kv_blocks = 0;
  absl::StatusOr<std::unique_ptr<runtime::Engine>> engine =
      runtime::Engine::Create(loaded.model.get(), loaded.tokenizer.get(), engine_config);
  if (!engine.ok()) return engine.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (models_.contains(name)) {
    // Lost a race with a concurrent load of the same name.
    return absl::AlreadyExistsError(
        absl::StrFormat("a model named \"%s\" is already loaded", name));
  }
  models_.emplace(name,
                  std::make_shared<ServedModel>(name, std::move(path), std::move(loaded),
                                                *std::move(engine), limits_, std::move(placement)));
  return absl::OkStatus();
}

absl::Status Router::UnloadModel(const std::string& name) {
  std::shared_ptr<ServedModel> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(
          absl::StrFormat("model \"%s\" is not loaded", absl::CHexEscape(name)));
    }
    model = std::move(it->second);
    models_.erase(it);
  }
  for (runtime::RequestId id : model->admission().InFlightIds()) model->engine().Abort(id);
  return absl::OkStatus();
}

std::vector<ModelSummary> Router::ListModels() const {
  std::vector<ModelSummary> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.reserve(models_.size());
  for (const auto& [name, model] : models_) {
    ModelSummary s;
    s.name = name;
    s.path = model->path();
    s.architecture = model->config().architecture;
    s.context_length = model->config().max_position_embeddings;
    s.vocab_size = model->config().vocab_size;
    s.kv_cache_tokens = model->engine().kv_capacity_tokens();
    s.kv_bytes_held = model->kv_account().held();
    s.serving = !draining();
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<ServedModel>> Router::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("model \"%s\" is not loaded", absl::CHexEscape(name)));
  }
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
  absl::StatusOr<runtime::RequestId> id = model->engine().Submit(std::move(request), admission);
  if (!id.ok()) {
    // The engine refused it and will never call the sink.
    model->admission().Refused(admission->ticket());
    return id.status();
  }
  model->admission().Submitted(admission->ticket(), *id);
  return *id;
}

void Router::Abort(const std::shared_ptr<ServedModel>& model, runtime::RequestId id) {
  if (model != nullptr) model->engine().Abort(id);
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
  for (const std::shared_ptr<ServedModel>& model : models) {
    for (runtime::RequestId id : model->admission().InFlightIds()) model->engine().Abort(id);
  }
}

}  // namespace cohost::scheduler
