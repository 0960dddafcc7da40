// How much memory cohost may use on a device, decided once at start-up: the
// CPU's budget is --cpu-memory-mb, or by default a stated fraction of what the
// machine (or its cgroup, whichever is tighter) has available; a CUDA
// device's is --gpu-memory-fraction of its measured free memory. The KV pool
// comes out of it, the models' weights get the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"

namespace cohost::scheduler {

// Of MemAvailable (or the cgroup's headroom), by default.
inline constexpr double kDefaultCpuMemoryFraction = 0.8;

// Of the host's available memory (or the cgroup's headroom), by default, that
// evicted models' weights may wait in where a device's memory is its own
// (RouterOptions::offload_budget_bytes).
inline constexpr double kDefaultOffloadFraction = 0.5;

// That share of what the host has available now; 0 when it is unknown.
int64_t DefaultOffloadBudget();

// The cgroup v2 headroom: memory.max less memory.current, from their file
// contents; nullopt when unlimited ("max") or unreadable.
std::optional<int64_t> CgroupHeadroom(std::string_view memory_max, std::string_view memory_current);

// The budget for `backend`'s device. `cpu_memory_bytes` overrides the CPU's
// default; `gpu_fraction` must be in (0, 1]. INVALID_ARGUMENT for a bad
// fraction; FAILED_PRECONDITION when the device reports no memory at all.
absl::StatusOr<int64_t> DeviceMemoryBudget(const kernels::Backend& backend,
                                           std::optional<int64_t> cpu_memory_bytes,
                                           double gpu_fraction);

}  // namespace cohost::scheduler
