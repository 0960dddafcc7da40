// The Router: the table of served models, admission control in front of each
// model's engine, and draining. Admission counts a request as queued from
// Submit until the engine first schedules it (or finishes it), and in flight
// until it finishes; an AdmissionSink wrapped around the caller's sink keeps
// those counters honest on the engine thread.

#include "scheduler/router.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

namespace cohost::scheduler {
namespace {

constexpr size_t kMaxNameLength = 128;

absl::Status ValidateName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("the model name is empty");
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the model name is %d characters long; at most %d are allowed", name.size(),
                        kMaxNameLength));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the model name \"%s\" may only contain letters, digits, '.', '_' and '-'",
          absl::CHexEscape(name)));
    }
  }
  return absl::OkStatus();
}

// Wraps the caller's sink: drops the model's queue counters exactly once, when
// the request is first scheduled or finishes without ever being scheduled, and
// its in-flight count and id on finish. Every call is forwarded. Holds the
// model by raw pointer: the engine that calls it is owned by the model, so the
// model outlives every call (a shared_ptr here would let the engine thread
// destroy its own engine).
class AdmissionSink : public runtime::TokenSink {
 public:
  AdmissionSink(ServedModel* model, int64_t prompt_tokens,
                std::shared_ptr<runtime::TokenSink> inner)
      : model_(model), prompt_tokens_(prompt_tokens), inner_(std::move(inner)) {}

  void OnScheduled() override {
    LeaveQueue();
    inner_->OnScheduled();
  }
  bool OnDelta(const runtime::TokenDelta& delta) override { return inner_->OnDelta(delta); }
  void OnFinish(const runtime::FinishInfo& info) override {
    // Counters first, so whoever the inner sink wakes sees them settled.
    LeaveQueue();
    {
      std::lock_guard<std::mutex> lock(model_->admission_mu);
      finished_ = true;
      if (id_ >= 0) model_->in_flight_ids.erase(id_);
    }
    model_->in_flight.fetch_sub(1);
    inner_->OnFinish(info);
  }

  // After Engine::Submit returned `id`; the request may already have finished.
  void Admitted(runtime::RequestId id) {
    std::lock_guard<std::mutex> lock(model_->admission_mu);
    if (finished_) return;
    id_ = id;
    model_->in_flight_ids.insert(id);
  }

 private:
  void LeaveQueue() {
    if (left_queue_.exchange(true)) return;
    model_->queued_requests.fetch_sub(1);
    model_->queued_prompt_tokens.fetch_sub(prompt_tokens_);
  }

  ServedModel* model_;
  const int64_t prompt_tokens_;
  std::shared_ptr<runtime::TokenSink> inner_;
  std::atomic<bool> left_queue_{false};
  bool finished_ = false;       // guarded by model_->admission_mu
  runtime::RequestId id_ = -1;  // guarded by model_->admission_mu
};

}  // namespace

ServedModel::ServedModel(std::string name, std::string path, runtime::LoadedModel loaded,
                         std::unique_ptr<runtime::Engine> engine)
    : name_(std::move(name)),
      path_(std::move(path)),
      loaded_(std::move(loaded)),
      engine_(std::move(engine)) {}

ServedModel::~ServedModel() {
  // The engine reads the model's weights and calls sinks that touch this
  // object's counters: it goes first, while everything else is still alive.
  if (engine_ != nullptr) engine_->Stop();
  engine_.reset();
}

Router::Router(kernels::Backend* backend, runtime::EngineConfig engine_config,
               AdmissionLimits limits)
    : backend_(backend), engine_config_(std::move(engine_config)), limits_(limits) {}

Router::~Router() = default;

absl::Status Router::LoadModel(const std::string& name, const std::string& path,
                               const ProgressFn& progress) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
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
  return AddModel(name, path, *std::move(loaded));
}

absl::Status Router::AddModel(const std::string& name, std::string path,
                              runtime::LoadedModel loaded) {
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
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
  absl::StatusOr<std::unique_ptr<runtime::Engine>> engine =
      runtime::Engine::Create(loaded.model.get(), loaded.tokenizer.get(), engine_config_);
  if (!engine.ok()) return engine.status();
  auto served =
      std::make_shared<ServedModel>(name, std::move(path), std::move(loaded), *std::move(engine));
  std::lock_guard<std::mutex> lock(mu_);
  if (models_.contains(name)) {
    // Lost a race with a concurrent load of the same name; `served` is dropped
    // before its engine ever ran.
    return absl::AlreadyExistsError(
        absl::StrFormat("a model named \"%s\" is already loaded", name));
  }
  served->engine().Start();
  models_.emplace(name, std::move(served));
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
  std::vector<runtime::RequestId> ids;
  {
    std::lock_guard<std::mutex> lock(model->admission_mu);
    ids.assign(model->in_flight_ids.begin(), model->in_flight_ids.end());
  }
  for (runtime::RequestId id : ids) model->engine().Abort(id);
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
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt_tokens > limits_.max_queued_prompt_tokens) {
    // Waiting never helps this one, so it is not RESOURCE_EXHAUSTED.
    return absl::InvalidArgumentError(absl::StrFormat(
        "the prompt of %d tokens exceeds model \"%s\"'s queue limit of %d prompt tokens",
        prompt_tokens, model->name(), limits_.max_queued_prompt_tokens));
  }
  {
    // Check and increment together: decrements happen lock-free on the engine
    // thread and can only make the check conservative.
    std::lock_guard<std::mutex> lock(model->admission_mu);
    if (model->queued_requests.load() >= limits_.max_queued_requests) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "model \"%s\" has %d requests queued, the limit (max_queued_requests = %d); retry "
          "later",
          model->name(), model->queued_requests.load(), limits_.max_queued_requests));
    }
    const int64_t queued_tokens = model->queued_prompt_tokens.load();
    if (queued_tokens + prompt_tokens > limits_.max_queued_prompt_tokens) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "model \"%s\" has %d prompt tokens queued; %d more would pass the limit "
          "(max_queued_prompt_tokens = %d); retry later",
          model->name(), queued_tokens, prompt_tokens, limits_.max_queued_prompt_tokens));
    }
    model->queued_requests.fetch_add(1);
    model->queued_prompt_tokens.fetch_add(prompt_tokens);
    model->in_flight.fetch_add(1);
  }
  auto admission = std::make_shared<AdmissionSink>(model.get(), prompt_tokens, std::move(sink));
  absl::StatusOr<runtime::RequestId> id = model->engine().Submit(std::move(request), admission);
  if (!id.ok()) {
    // The engine refused it and will never call the sink.
    model->queued_requests.fetch_sub(1);
    model->queued_prompt_tokens.fetch_sub(prompt_tokens);
    model->in_flight.fetch_sub(1);
    return id.status();
  }
  admission->Admitted(*id);
  return *id;
}

void Router::Abort(const std::shared_ptr<ServedModel>& model, runtime::RequestId id) {
  if (model != nullptr) model->engine().Abort(id);
}

void Router::StartDraining() { draining_.store(true); }

int32_t Router::num_in_flight() const {
  int32_t n = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, model] : models_) n += model->in_flight.load();
  return n;
}

void Router::AbortAll() {
  std::vector<std::shared_ptr<ServedModel>> models;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, model] : models_) models.push_back(model);
  }
  for (const std::shared_ptr<ServedModel>& model : models) {
    std::vector<runtime::RequestId> ids;
    {
      std::lock_guard<std::mutex> lock(model->admission_mu);
      ids.assign(model->in_flight_ids.begin(), model->in_flight_ids.end());
    }
    for (runtime::RequestId id : ids) model->engine().Abort(id);
  }
}

}  // namespace cohost::scheduler
