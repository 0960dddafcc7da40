#include "scheduler/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
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
              static_cast<int64_t>(runtime::Model::PredictWorkspaceBytes(
                  config, backend.compute_dtype(), sc.max_tokens_per_step, sc.max_num_seqs)) +
              static_cast<int64_t>(backend.ContextBytes()),
          false};
}

std::vector<DeviceMemoryPlan> PlanDeviceMemory(absl::Span<const DeviceRoom> devices,
                                               absl::Span<const ModelDemand> models) {
  std::vector<DeviceRoom> rooms;
  std::vector<int64_t> kv_floor;
  for (const DeviceRoom& d : devices) {
    const auto floor = static_cast<int64_t>(
        std::ceil(static_cast<double>(std::max<int64_t>(d.budget_bytes, 0)) * kMinKvShare));
    DeviceRoom& r = rooms.emplace_back();
    r.name = d.name;
    r.budget_bytes = std::max<int64_t>(d.budget_bytes - floor, 0);
    kv_floor.push_back(floor);
  }
  std::vector<DeviceMemoryPlan> plans(devices.size());
  for (const ModelDemand& m : models) {
    // Nobody is resident yet, so nothing is evicted; the clock is unused.
    absl::StatusOr<Placement> placed = PlaceModel(rooms, m, runtime::Clock::time_point());
    if (!placed.ok()) continue;
    rooms[placed->device].used_bytes += m.bytes;
    rooms[placed->device].load += m.load;
    plans[placed->device].models.push_back(m.name);
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    const int64_t budget = std::max<int64_t>(devices[i].budget_bytes, 0);
    const int64_t weights = plans[i].models.empty() ? budget - kv_floor[i] : rooms[i].used_bytes;
    plans[i].weights_budget_bytes = std::max<int64_t>(weights, 1);
    plans[i].kv_pool_bytes = budget - plans[i].weights_budget_bytes;
  }
  return plans;
}

absl::StatusOr<std::vector<DeviceSetup>> SplitDeviceBudgets(
    absl::Span<const DeviceHandle> devices, std::vector<ModelSpec>& models,
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
  if (plan) {
    std::vector<ModelDemand> demands;
    for (const ModelSpec& spec : models) {
      absl::StatusOr<runtime::ModelDescription> d = runtime::DescribeModel(spec.path);
      if (!d.ok()) continue;
      demands.push_back({spec.name,
                         ExpectedFootprint(options.footprints, spec.path, d->config, kind,
                                           options.engine, options.keep_quantized)
                             .bytes,
                         0, spec.device});
    }
    plans = PlanDeviceMemory(rooms, demands);
    if (planned != nullptr) {
      for (size_t i = 0; i < plans.size(); ++i) {
        for (const std::string& m : plans[i].models) (*planned)[m] = devices[i].id;
      }
    }
  }
  std::vector<DeviceSetup> setups;
  int64_t smallest_pool = std::numeric_limits<int64_t>::max();
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
    setups.push_back({devices[i].backend, devices[i].id, kv, budget - kv});
    smallest_pool = std::min(smallest_pool, kv);
  }
  RETURN_IF_ERROR(FillDefaultKvCaps(models, smallest_pool));
  return setups;
}

}  // namespace cohost::scheduler
