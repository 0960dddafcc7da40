#include "scheduler/memory_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/model/model.h"
#include "scheduler/device_budget.h"

namespace cohost::scheduler {

bool KeepsBlocks(bool keep_quantized, const kernels::Backend& backend) {
  return keep_quantized && runtime::Model::KeepsQuantizedWeights(backend);
}

int64_t PredictedWeights(const runtime::ModelConfig& config, const kernels::Backend& backend,
                         bool keep_quantized) {
  return static_cast<int64_t>(runtime::Model::PredictWeightsBytes(
      config, backend.compute_dtype(), KeepsBlocks(keep_quantized, backend)));
}

ExpectedBytes ExpectedFootprint(const FootprintRecord* record, const std::string& path,
                                const runtime::ModelConfig& config, const kernels::Backend& backend,
                                const runtime::EngineConfig& engine, bool keep_quantized) {
  const runtime::StepSchedulerConfig& sc = engine.step_scheduler;
  if (record != nullptr) {
    absl::StatusOr<FootprintKey> key =
        KeyFor(path, backend, sc, KeepsBlocks(keep_quantized, backend));
    if (key.ok()) {
      if (std::optional<Footprint> f = record->Find(*key)) {
        return {f->weights_bytes + f->workspace_bytes, true};
      }
    }
  }
  return {PredictedWeights(config, backend, keep_quantized) +
              PredictedWorkspace(config, backend, engine),
          false};
}

int64_t PredictedWorkspace(const runtime::ModelConfig& config, const kernels::Backend& backend,
                           const runtime::EngineConfig& engine) {
  const runtime::StepSchedulerConfig& sc = engine.step_scheduler;
  return static_cast<int64_t>(runtime::Model::PredictWorkspaceBytes(
             config, backend.compute_dtype(), sc.max_tokens_per_step, sc.max_num_seqs)) +
         static_cast<int64_t>(backend.ContextBytes());
}

std::vector<DeviceMemoryPlan> PlanDeviceMemory(absl::Span<const DeviceRoom> devices,
                                               absl::Span<const ModelDemand> models) {
  std::vector<DeviceRoom> rooms;
  std::vector<int64_t> kv_share;  // kMinKvShare of each budget
  for (const DeviceRoom& d : devices) {
    kv_share.push_back(static_cast<int64_t>(
        std::ceil(static_cast<double>(std::max<int64_t>(d.budget_bytes, 0)) * kMinKvShare)));
    DeviceRoom& r = rooms.emplace_back();
    r.name = d.name;
  }
  std::vector<DeviceMemoryPlan> plans(devices.size());
  std::vector<int64_t> floors(devices.size(), 0);  // of the models planned onto each
  for (const ModelDemand& m : models) {
    // Each device keeps for KV its share or the floors of its models, this
    // one's with them, whichever is more: a floor costs weights room only
    // past the share. (Each floor is at most 2^60, kMaxKvMb.)
    const int64_t floor = std::clamp<int64_t>(m.kv_floor_bytes, 0, int64_t{1} << 60);
    for (size_t i = 0; i < rooms.size(); ++i) {
      const int64_t kv = std::max(kv_share[i], std::min(floors[i] + floor, int64_t{1} << 62));
      rooms[i].budget_bytes = std::max<int64_t>(devices[i].budget_bytes - kv, 0);
    }
    // Nobody is resident yet, so nothing is evicted; the clock is unused.
    absl::StatusOr<Placement> placed = PlaceModel(rooms, m, runtime::Clock::time_point());
    if (!placed.ok()) continue;
    rooms[placed->device].used_bytes += m.bytes;
    rooms[placed->device].load += m.load;
    floors[placed->device] = std::min(floors[placed->device] + floor, int64_t{1} << 62);
    plans[placed->device].models.push_back(m.name);
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    const int64_t budget = std::max<int64_t>(devices[i].budget_bytes, 0);
    const int64_t weights = plans[i].models.empty() ? budget - kv_share[i] : rooms[i].used_bytes;
    plans[i].weights_budget_bytes = std::max<int64_t>(weights, 1);
    plans[i].kv_pool_bytes = budget - plans[i].weights_budget_bytes;
  }
  return plans;
}

namespace {

// The floors reserved on `s`, held at 2^62 (each is at most 2^60, kMaxKvMb).
int64_t ReservedFloors(const DeviceSetup& s) {
  int64_t floors = 0;
  for (const auto& reserved : s.reserved_kv_floors) {
    floors = std::min(floors + reserved.second, int64_t{1} << 62);
  }
  return floors;
}

// Each configured model's KV floor, reserved on the device it belongs to: the
// one it is pinned to, the only one, or the one the plan put it on. Those of
// one device must fit its pool. A floor that belongs nowhere yet is reserved
// on every device whose pool holds it beside the floors there (JoinPool
// moves it to the device the model loads on); there must be one.
absl::Status ReserveKvFloors(const std::vector<ModelSpec>& models,
                             const std::map<std::string, std::string>& planned,
                             std::vector<DeviceSetup>& setups) {
  std::vector<const ModelSpec*> unplaced;
  for (const ModelSpec& m : models) {
    if (m.kv_floor_bytes <= 0) continue;
    std::optional<std::string> home = m.device;
    if (!home && setups.size() == 1) home = setups[0].id;
    if (!home) {
      if (auto p = planned.find(m.name); p != planned.end()) home = p->second;
    }
    if (!home) {
      unplaced.push_back(&m);
      continue;
    }
    // A pin to a device this server lacks: its registration refuses it.
    for (DeviceSetup& s : setups) {
      if (s.id == *home) s.reserved_kv_floors[m.name] = m.kv_floor_bytes;
    }
  }
  for (const DeviceSetup& s : setups) {
    if (ReservedFloors(s) <= s.kv_pool_bytes) continue;
    std::vector<std::string> listed;
    for (const auto& [model, floor] : s.reserved_kv_floors) {
      listed.push_back(absl::StrFormat("\"%s\" %d MB", model, floor >> 20));
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the kv_floor_mb of the models that belong there (%s) add up to %d MB, more than "
        "its KV pool of %d MB",
        s.id, absl::StrJoin(listed, ", "), ReservedFloors(s) >> 20, s.kv_pool_bytes >> 20));
  }
  for (const ModelSpec* m : unplaced) {
    bool somewhere = false;
    for (DeviceSetup& s : setups) {
      if (ReservedFloors(s) + m->kv_floor_bytes > s.kv_pool_bytes) continue;
      s.reserved_kv_floors[m->name] = m->kv_floor_bytes;
      somewhere = true;
    }
    if (!somewhere) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model \"%s\": its kv_floor_mb of %d MB fits no device's KV pool beside the floors "
          "of the models that belong there",
          m->name, m->kv_floor_bytes >> 20));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<DeviceSetup>> SplitDeviceBudgets(
    absl::Span<const DeviceHandle> devices, const std::vector<ModelSpec>& models,
    const MemorySplitOptions& options, std::map<std::string, std::string>* planned) {
  if (devices.empty()) return absl::InvalidArgumentError("no devices");
  std::vector<DeviceRoom> rooms;
  for (const DeviceHandle& d : devices) {
    ASSIGN_OR_RETURN(const int64_t budget, DeviceMemoryBudget(*d.backend, options.cpu_memory_bytes,
                                                              options.gpu_fraction));
    DeviceRoom& room = rooms.emplace_back();
    room.name = d.id;
    room.budget_bytes = budget;
  }
  const kernels::Backend& kind = *devices[0].backend;
  const bool plan = !options.kv_pool_bytes.has_value() && kind.kind() != kernels::BackendKind::kCpu;
  std::vector<DeviceMemoryPlan> plans;
  std::map<std::string, std::string> planned_here;  // model -> device id
  if (plan) {
    std::vector<ModelDemand> demands;
    for (const ModelSpec& spec : models) {
      absl::StatusOr<runtime::ModelDescription> d = runtime::DescribeModel(spec.path);
      if (!d.ok()) continue;
      demands.push_back({spec.name,
                         ExpectedFootprint(options.footprints, spec.path, d->config, kind,
                                           options.engine, options.keep_quantized)
                             .bytes,
                         0, spec.device, spec.kv_floor_bytes});
    }
    plans = PlanDeviceMemory(rooms, demands);
    for (size_t i = 0; i < plans.size(); ++i) {
      for (const std::string& m : plans[i].models) planned_here[m] = devices[i].id;
    }
    if (planned != nullptr) *planned = planned_here;
  }
  std::vector<DeviceSetup> setups;
  for (size_t i = 0; i < devices.size(); ++i) {
    const int64_t budget = rooms[i].budget_bytes;
    const int64_t kv = plan
                           ? plans[i].kv_pool_bytes
                           : options.kv_pool_bytes.value_or(runtime::EngineConfig().kv_cache_bytes);
    if (budget <= kv) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: its memory budget of %d MB leaves nothing for weights beside a %d MB KV pool",
          devices[i].id, budget >> 20, kv >> 20));
    }
    setups.push_back({devices[i].backend, devices[i].id, kv, budget - kv, {}});
  }
  RETURN_IF_ERROR(ReserveKvFloors(models, planned_here, setups));
  return setups;
}

}  // namespace cohost::scheduler
