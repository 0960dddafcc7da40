// The simulator's cost model measured on this machine: the default model (or
// any) loaded on the CPU backend and run through a real Engine on prompts of
// several sizes, its step line read back from the engine's own fit
// (EngineStats::step_cost, the line TTFT admission uses in the server).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "bench/sim/cost_model.h"

namespace cohost::sim {

// `device_bytes`: the memory one simulated device gives weights and KV.
absl::StatusOr<SimCost> MeasureCpuCost(const std::string& model_path, double device_bytes);

}  // namespace cohost::sim
