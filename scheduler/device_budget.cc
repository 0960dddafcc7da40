#include "scheduler/device_budget.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cohost/kernels/cpu_info.h"

namespace cohost::scheduler {
namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream f(path);
  if (!f) return "";
  std::ostringstream s;
  s << f.rdbuf();
  return s.str().substr(0, 64);
}

// `available` (bytes the host reports; <= 0 when unknown), capped by the
// cgroup's headroom where one is set.
int64_t WithinCgroup(int64_t available) {
  if (std::optional<int64_t> cg = CgroupHeadroom(ReadSmallFile("/sys/fs/cgroup/memory.max"),
                                                 ReadSmallFile("/sys/fs/cgroup/memory.current"))) {
    return available > 0 ? std::min(available, *cg) : *cg;
  }
  return available;
}

}  // namespace

std::optional<int64_t> CgroupHeadroom(std::string_view memory_max,
                                      std::string_view memory_current) {
  const absl::string_view max =
      absl::StripAsciiWhitespace(absl::string_view(memory_max.data(), memory_max.size()));
  const absl::string_view current =
      absl::StripAsciiWhitespace(absl::string_view(memory_current.data(), memory_current.size()));
  int64_t limit = 0, used = 0;
  if (max == "max" || !absl::SimpleAtoi(max, &limit) || !absl::SimpleAtoi(current, &used) ||
      limit <= 0 || used < 0) {
    return std::nullopt;
  }
  return std::max<int64_t>(limit - used, 0);
}

absl::StatusOr<int64_t> DeviceMemoryBudget(const kernels::Backend& backend,
                                           std::optional<int64_t> cpu_memory_bytes,
                                           double gpu_fraction) {
  if (!(gpu_fraction > 0 && gpu_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--gpu-memory-fraction must be in (0, 1], got %g", gpu_fraction));
  }
  const kernels::BackendCaps caps = backend.Caps();
  if (backend.kind() == kernels::BackendKind::kCpu) {
    if (cpu_memory_bytes.has_value()) return *cpu_memory_bytes;
    const int64_t available = WithinCgroup(static_cast<int64_t>(caps.free_memory));
    if (available <= 0) {
      return absl::FailedPreconditionError(
          "the CPU reports no available memory; give --cpu-memory-mb");
    }
    return static_cast<int64_t>(
        std::floor(static_cast<double>(available) * kDefaultCpuMemoryFraction));
  }
  if (caps.free_memory == 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("device %s reports no free memory", caps.device_name));
  }
  return static_cast<int64_t>(std::floor(static_cast<double>(caps.free_memory) * gpu_fraction));
}

int64_t DefaultOffloadBudget() {
  const int64_t available = WithinCgroup(static_cast<int64_t>(kernels::HostAvailableMemory()));
  return available > 0 ? static_cast<int64_t>(
                             std::floor(static_cast<double>(available) * kDefaultOffloadFraction))
                       : 0;
}

}  // namespace cohost::scheduler
