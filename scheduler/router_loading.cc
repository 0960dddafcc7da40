// The Router's loading and eviction: making room for a model's weights on
// its device (evicting idle models past their keep-alive, parking a GPU
// model's weights in host memory), reading or restoring the weights, and the
// loader thread that runs lazy and background loads.

#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "scheduler/memory_plan.h"
#include "scheduler/placement.h"
#include "scheduler/router.h"

namespace cohost::scheduler {

bool Router::RegisteredLocked(const ServedModel& model) const {
  auto it = models_.find(model.name());
  return it != models_.end() && it->second.get() == &model;
}

bool Router::KeepsBlocks(const kernels::Backend& backend) const {
  return scheduler::KeepsBlocks(options_.weights.keep_quantized, backend);
}

ExpectedBytes Router::ExpectedFootprint(const std::string& path, const runtime::ModelConfig& config,
                                        const Device& device) const {
  return scheduler::ExpectedFootprint(options_.footprints.get(), path, config, *device.backend,
                                      engine_config_, options_.weights.keep_quantized);
}

absl::Status Router::MakeRoom(const std::shared_ptr<ServedModel>& model,
                              const ExpectedBytes& expected) {
  const int64_t bytes = expected.bytes;
  const std::string measured = expected.recorded ? "; its footprint as its last load measured" : "";
  const Device& home = model->device();
  if (home.weights_budget_bytes <= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!RegisteredLocked(*model)) return model->UnloadedError();
    weights_[model->name()] = bytes;
    placements_[model->name()] = "no memory budget set" + measured;
    return absl::OkStatus();
  }
  const size_t i = IndexOf(home);
  const ModelDemand demand{model->name(), bytes, model->busy().Load(), model->spec().device};
  // Evicting runs outside the lock (it waits for the executor); whoever
  // reserves after it sees the memory free. A few rounds at most: each one
  // either fits, evicts something, or gives up (dropping a parked context
  // is no round: there are finitely many).
  for (int round = 0; round < 4;) {
    bool drop_parked = false;
    std::shared_ptr<ServedModel> to_drop;  // chosen under the lock that judged it
    std::vector<std::vector<std::shared_ptr<ServedModel>>> residents;
    DeviceRoom room;
    absl::StatusOr<Placement> placement;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Nothing is evicted for, nor reserved to, a model unloaded meanwhile.
      if (!RegisteredLocked(*model)) return model->UnloadedError();
      room = std::move(RoomsLocked(model.get(), &residents)[i]);
      // Its own reservation, if any, is being replaced.
      placement = PlaceModel({room}, demand, runtime::Clock::now());
      if (placement.ok() && placement->evict.empty()) {
        // It fits beside the residents; parked contexts may hold the room.
        drop_parked = room.used_bytes + room.parked_bytes + bytes > room.budget_bytes;
        if (!drop_parked) {
          weights_[model->name()] = bytes;
          placements_[model->name()] = placement->why + measured;
          return absl::OkStatus();
        }
        to_drop = OldestParkedLocked(&home, *model);
      }
    }
    if (drop_parked) {
      // Placement counted them free: dropping all of them makes the room.
      // (Every context room.parked_bytes counts is one OldestParkedLocked
      // may pick.)
      if (to_drop == nullptr) {
        return absl::InternalError("parked weights hold the device's memory, none droppable");
      }
      to_drop->DropParkedWeights();  // another thread's unpark first is as good
      continue;
    }
    ++round;
    const std::vector<std::shared_ptr<ServedModel>>& on_device = residents[i];
    if (!placement.ok()) {
      std::vector<std::string> held;
      for (size_t r = 0; r < on_device.size(); ++r) {
        held.push_back(absl::StrFormat("%s (%d bytes, %s)", on_device[r]->name(),
                                       room.residents[r].bytes,
                                       room.residents[r].idle ? "within its keep-alive" : "busy"));
      }
      return absl::Status(
          placement.status().code(),
          absl::StrFormat("%s (resident on %s: %s)", placement.status().message(), home.id,
                          held.empty() ? "none" : absl::StrJoin(held, ", ")));
    }
    for (size_t r : placement->evict) {
      ServedModel& victim = *on_device[r];
      // Room for its weights in host memory is made only once its eviction
      // is certain: a model that turned busy costs nobody's parked weights.
      if (victim.Evict(
              absl::StrFormat("evicted for model \"%s\"", model->name()),
              [&](int64_t parked) { MakeOffloadRoom(victim, parked, *model); },
              room.residents[r].last_used)) {
        ReleaseWeights(victim);
      }
    }
  }
  return absl::ResourceExhaustedError("the device's weights budget stayed full while evicting");
}

void Router::MakeOffloadRoom(const ServedModel& evicting, int64_t need,
                             const ServedModel& loading) {
  OffloadBudget* budget = evicting.device().offload.get();
  if (budget == nullptr) return;
  while (need <= budget->capacity() && budget->held() + need > budget->capacity()) {
    std::shared_ptr<ServedModel> oldest;
    {
      std::lock_guard<std::mutex> lock(mu_);
      oldest = OldestParkedLocked(nullptr, evicting, &loading);
    }
    if (oldest == nullptr || !oldest->DropParkedWeights()) return;
  }
}

std::shared_ptr<ServedModel> Router::OldestParkedLocked(const Device* device,
                                                        const ServedModel& skip,
                                                        const ServedModel* also_skip) {
  std::shared_ptr<ServedModel> oldest;
  runtime::Clock::time_point oldest_use;
  for (const auto& [name, m] : models_) {
    if (m.get() == &skip || m.get() == also_skip) continue;
    // A model holding a reservation is loading with room made for it, about
    // to take its parked weights back. One queued to load without one is
    // fair game: its load reads the file then.
    if (weights_.contains(name)) continue;
    const ModelStatus s = m->status();
    const bool parked = device == nullptr ? s.offloaded_bytes > 0
                                          : s.parked_device_bytes > 0 && &m->device() == device;
    if (parked && (oldest == nullptr || s.last_used < oldest_use)) {
      oldest = m;
      oldest_use = s.last_used;
    }
  }
  return oldest;
}

void Router::ReleaseWeights(const ServedModel& model) {
  std::lock_guard<std::mutex> lock(mu_);
  // Not another model's since registered under the same name.
  if (!RegisteredLocked(model)) return;
  weights_.erase(model.name());
  placements_.erase(model.name());
}

absl::Status Router::Load(const std::shared_ptr<ServedModel>& model, const ProgressFn& progress) {
  const runtime::Clock::time_point start = runtime::Clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(runtime::Clock::now() - start).count();
  };
  // The weights (if any were made) go, then their reservation, and only then
  // is the model failed, and so loadable again: a later load's reservation
  // is never the one erased here.
  std::unique_ptr<kernels::Backend> context;
  absl::StatusOr<std::unique_ptr<runtime::Model>> weights;
  bool device_full = false;  // placement found no room: no backoff (ServedModel::Fail)
  bool restored = false;     // the weights came back from host memory
  const auto failed = [&](absl::Status why) {  // a copy: it may be `weights`' own
    weights = nullptr;
    context = nullptr;
    ReleaseWeights(*model);
    model->Fail(why, device_full);
    if (options_.on_load) options_.on_load(model->name(), false, elapsed());
    return why;
  };
  if (options_.before_load) options_.before_load();
  const Device* device = &model->device();
  const ExpectedBytes expected = ExpectedFootprint(model->path(), model->config(), *device);
  // `context`: the model's own handle on the device (its stream and error,
  // on CUDA).
  weights = [&]() -> absl::StatusOr<std::unique_ptr<runtime::Model>> {
    Rehome(model, expected);
    device = &model->device();
    if (absl::Status room = MakeRoom(model, expected); !room.ok()) {
      device_full = room.code() == absl::StatusCode::kResourceExhausted;
      return room;
    }
    // Weights kept in host memory at its eviction come back with one copy.
    if (std::optional<ServedModel::Unparked> back = model->Unpark()) {
      context = std::move(back->context);
      restored = true;
      return std::move(back->model);
    }
    ASSIGN_OR_RETURN(context, device->backend->NewContext());
    return runtime::LoadWeights(model->path(), context != nullptr ? context.get() : device->backend,
                                progress, options_.weights);
  }();
  if (!weights.ok()) return failed(weights.status());
  // The tokenizer, the KV layout and the memory planned are the registered
  // file's: weights of another model now at its path would not fit them.
  if (const std::string change = runtime::ShapeChange(model->config(), (*weights)->config());
      !change.empty()) {
    const absl::Status changed = absl::FailedPreconditionError(
        absl::StrCat("the model's file now holds another model (", change,
                     ") than when it was added: unload it and load it again"));
    return failed(changed);
  }
  if (model->retired()) {  // unloaded while its weights were read: they go
    return failed(model->UnloadedError());
  }
  if (!restored) {
    if (absl::Status room = RoomForMeasuredWeights(model, **weights, expected, elapsed());
        !room.ok()) {
      device_full = room.code() == absl::StatusCode::kResourceExhausted;
      return failed(room);
    }
  }
  const double seconds = elapsed();
  if (absl::Status a = model->Activate(*std::move(weights), seconds, std::move(context), restored);
      !a.ok()) {
    return failed(a);
  }
  const ModelStatus loaded = model->status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The expectation's place, now measured.
    if (RegisteredLocked(*model)) {
      weights_[model->name()] = loaded.weights_bytes + loaded.workspace_bytes;
    }
  }
  // The record predicts a load from the file (a restart's first).
  if (!restored) RecordFootprint(*model, {loaded.weights_bytes, loaded.workspace_bytes, seconds});
  if (options_.on_load) options_.on_load(model->name(), true, seconds);
  return absl::OkStatus();
}

absl::Status Router::RoomForMeasuredWeights(const std::shared_ptr<ServedModel>& model,
                                            const runtime::Model& weights,
                                            const ExpectedBytes& expected, double load_seconds) {
  const auto measured = static_cast<int64_t>(weights.weights_bytes());
  const int64_t workspace =
      PredictedWorkspace(model->config(), *model->device().backend, engine_config_);
  const int64_t need = measured + workspace;
  if (need <= expected.bytes) return absl::OkStatus();
  absl::Status room = MakeRoom(model, {need, false});
  if (room.ok()) return room;
  // The next placement plans with what this load measured, and refuses
  // before the file is read again.
  RecordFootprint(*model, {measured, workspace, load_seconds});
  return absl::Status(
      room.code(),
      absl::StrFormat("its weights measured %s, more than the %s %s for them and its "
                      "workspace: %s",
                      Mb(measured), Mb(expected.bytes),
                      expected.recorded ? "its last load measured" : "predicted", room.message()));
}

void Router::RecordFootprint(const ServedModel& model, const Footprint& measured) {
  if (options_.footprints == nullptr) return;
  absl::StatusOr<FootprintKey> key =
      KeyFor(model.path(), *model.device().backend, engine_config_.step_scheduler,
             KeepsBlocks(*model.device().backend));
  absl::Status s = key.ok() ? options_.footprints->Put(*key, measured) : key.status();
  if (!s.ok() && !footprint_write_failed_.exchange(true)) {
    std::fprintf(stderr, "cohost: not recording model footprints (%s): %s\n",
                 options_.footprints->file().c_str(), std::string(s.message()).c_str());
  }
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

}  // namespace cohost::scheduler
