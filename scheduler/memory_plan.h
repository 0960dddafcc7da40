// What a model is expected to take on a device before it loads, and how a
// device's memory budget is split between the models' weights and its KV
// pool when the operator leaves the pool's size open (no --kv-cache-mb on a
// GPU): the budget less what the configured models are expected to take, as
// vLLM sizes its cache from what profiling leaves.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cohost/kernels/backend.h"
#include "runtime/engine/engine.h"
#include "runtime/loader/model_config.h"
#include "scheduler/device.h"
#include "scheduler/footprint_record.h"
#include "scheduler/model_config_file.h"
#include "scheduler/placement.h"

namespace cohost::scheduler {

// Whether loads onto `backend` keep quantized weights in their blocks, when
// the weights policy asks for it (`keep_quantized`).
bool KeepsBlocks(bool keep_quantized, const kernels::Backend& backend);

// The weights' bytes on `backend`, predicted from the config.
int64_t PredictedWeights(const runtime::ModelConfig& config, const kernels::Backend& backend,
                         bool keep_quantized);

// The engine's largest step's activations on `backend`, and the model's own
// backend context, predicted from the config.
int64_t PredictedWorkspace(const runtime::ModelConfig& config, const kernels::Backend& backend,
                           const runtime::EngineConfig& engine);

// What loading the model at `path` will reserve on `backend`: the footprint
// `record` (may be null) holds from an earlier load of the same file, device
// kind and step shape; else the prediction from its config: the weights and
// the activations of the engine's largest step (Engine::Create allocates
// them). `keep_quantized`: the weights policy's.
struct ExpectedBytes {
  int64_t bytes = 0;
  bool recorded = false;  // measured at an earlier load, not predicted
};
ExpectedBytes ExpectedFootprint(const FootprintRecord* record, const std::string& path,
                                const runtime::ModelConfig& config, const kernels::Backend& backend,
                                const runtime::EngineConfig& engine, bool keep_quantized);

// The share of a device's budget that stays KV whatever the models take.
inline constexpr double kMinKvShare = 0.1;

struct DeviceMemoryPlan {
  int64_t kv_pool_bytes = 0;
  int64_t weights_budget_bytes = 0;  // > 0
  std::vector<std::string> models;   // the models planned onto the device
};

// One plan per device. `devices[i].budget_bytes` is the device's whole
// budget (DeviceMemoryBudget); `models` are the configured models in the
// order the server registers them, each with its expected footprint. Each is
// placed as the router will place it at start-up (PlaceModel: best fit),
// over budgets that keep for KV kMinKvShare of every device, or the KV
// floors (ModelDemand::kv_floor_bytes) of the models planned there with
// this one's, whichever is more: a device's pool then holds the floors of
// its models. A device's
// weights get what its planned models are expected to take and its KV pool
// gets the rest; a device with no model planned keeps kMinKvShare for KV and
// the rest for models loaded later. A model that fits nowhere in the plan
// reserves nothing: it loads later by evicting an idle one, as a lazy model
// does.
std::vector<DeviceMemoryPlan> PlanDeviceMemory(absl::Span<const DeviceRoom> devices,
                                               absl::Span<const ModelDemand> models);

// What start-up knows of the memory it may use.
struct MemorySplitOptions {
  std::optional<int64_t> cpu_memory_bytes;  // --cpu-memory-mb
  double gpu_fraction = 0.9;                // --gpu-memory-fraction
  // --kv-cache-mb: every device's pool; nullopt: the CPU's is
  // EngineConfig's default, a GPU's is planned (PlanDeviceMemory).
  std::optional<int64_t> kv_pool_bytes;
  runtime::EngineConfig engine;  // the step shape sizes the workspace
  const FootprintRecord* footprints = nullptr;
  bool keep_quantized = false;  // the weights policy's
};

// Each device's budget (DeviceMemoryBudget) split between its KV pool and the
// models' weights, as MemorySplitOptions says. Each configured model's KV
// floor is reserved on the device it belongs to (DeviceSetup::
// reserved_kv_floors): the one it is pinned to, the only one, or the one the
// plan put it on; one the plan left out is placed at its load. A model whose
// file cannot be read plans nothing (registering it says why).
// INVALID_ARGUMENT when a device's pool leaves nothing for weights, when the
// floors reserved on a device pass its pool (naming the device and the
// models), or when a floor that belongs nowhere yet passes every pool; the
// budget's own errors. `devices` are all of one kind. Where the
// pools were planned, `planned` (if not null) gets each planned model's device
// id (RouterOptions::planned_devices).
struct DeviceHandle {
  std::string id;  // "cpu", "cuda:N"
  kernels::Backend* backend = nullptr;
};
absl::StatusOr<std::vector<DeviceSetup>> SplitDeviceBudgets(
    absl::Span<const DeviceHandle> devices, const std::vector<ModelSpec>& models,
    const MemorySplitOptions& options, std::map<std::string, std::string>* planned = nullptr);

}  // namespace cohost::scheduler
