#include "scheduler/memory_plan.h"

#include <algorithm>
#include <cmath>

#include "runtime/model/model.h"

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
                  config, backend.compute_dtype(), sc.max_tokens_per_step, sc.max_num_seqs)),
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

}  // namespace cohost::scheduler
