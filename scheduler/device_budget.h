// How much memory cohost may use on a device, decided once at start-up: the
// CPU's budget is --cpu-memory-mb, or by default a stated fraction of what the
// machine (or its cgroup, whichever is tighter) has available; a CUDA
// device's is --gpu-memory-fraction of its measured free memory. The KV pool
// comes out of it, the models' weights get the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// A cgroup's memory headroom from its files' contents: the limit (v2's
// memory.max, v1's memory.limit_in_bytes) less the usage (memory.current,
// memory.usage_in_bytes), less the inactive page cache `stat` (memory.stat)
// counts in it, which the kernel reclaims before it fails an allocation (a
// model file mapped by an earlier run, a build's files). nullopt when
// unlimited ("max", or v1's near-2^63) or unreadable.
std::optional<int64_t> CgroupHeadroom(std::string_view limit, std::string_view usage,
                                      std::string_view stat = "");

// The memory cgroups that bound this process, innermost first, from
// /proc/self/cgroup's text under `root` (/sys/fs/cgroup): v1's
// "N:memory:/a/b" gives root/memory/a/b, root/memory/a, root/memory; else
// v2's "0::/a/b" gives root/a/b, root/a, root. (A systemd service's
// MemoryMax is on its own cgroup, a slice's on a parent, a container's at
// its namespace's root.)
struct CgroupDir {
  std::string path;
  bool v2 = true;
};
std::vector<CgroupDir> CgroupMemoryDirs(std::string_view proc_self_cgroup, std::string_view root);

// The budget for `backend`'s device. `cpu_memory_bytes` overrides the CPU's
// default; `gpu_fraction` must be in (0, 1]. INVALID_ARGUMENT for a bad
// fraction; FAILED_PRECONDITION when the device reports no memory at all.
absl::StatusOr<int64_t> DeviceMemoryBudget(const kernels::Backend& backend,
                                           std::optional<int64_t> cpu_memory_bytes,
                                           double gpu_fraction);

}  // namespace cohost::scheduler
