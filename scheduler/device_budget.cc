#include "scheduler/device_budget.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cohost/kernels/cpu_info.h"

namespace cohost::scheduler {
namespace {

// The start of a small kernel file (empty when unreadable).
std::string ReadText(const std::string& path, size_t max_bytes) {
  std::ifstream f(path);
  if (!f) return "";
  std::string text(max_bytes, '\0');
  f.read(text.data(), static_cast<std::streamsize>(max_bytes));
  text.resize(static_cast<size_t>(f.gcount()));
  return text;
}

// A v1 limit this large is no limit (the kernel's "unlimited" is 2^63 less a
// page).
constexpr int64_t kUnlimitedV1 = int64_t{1} << 62;

// The value of `key` in memory.stat's "key value" lines; 0 when absent.
int64_t StatValue(absl::string_view stat, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    absl::string_view value = line;
    int64_t v = 0;
    if (absl::ConsumePrefix(&value, key) && absl::ConsumePrefix(&value, " ") &&
        absl::SimpleAtoi(value, &v) && v > 0) {
      return v;
    }
  }
  return 0;
}

// `available` (bytes the host reports; <= 0 when unknown), capped by the
// tightest headroom of the cgroups that bound this process.
int64_t WithinCgroup(int64_t available) {
  std::optional<int64_t> tightest;
  for (const CgroupDir& d :
       CgroupMemoryDirs(ReadText("/proc/self/cgroup", 1 << 16), "/sys/fs/cgroup")) {
    const std::string stat = ReadText(d.path + "/memory.stat", 1 << 14);
    const std::optional<int64_t> h =
        d.v2 ? CgroupHeadroom(ReadText(d.path + "/memory.max", 64),
                              ReadText(d.path + "/memory.current", 64), stat)
             : CgroupHeadroom(ReadText(d.path + "/memory.limit_in_bytes", 64),
                              ReadText(d.path + "/memory.usage_in_bytes", 64), stat);
    if (h) tightest = tightest ? std::min(*tightest, *h) : *h;
  }
  if (!tightest) return available;
  return available > 0 ? std::min(available, *tightest) : *tightest;
}

}  // namespace

std::optional<int64_t> CgroupHeadroom(std::string_view limit_text, std::string_view usage_text,
                                      std::string_view stat_text) {
  const absl::string_view max =
      absl::StripAsciiWhitespace(absl::string_view(limit_text.data(), limit_text.size()));
  const absl::string_view current =
      absl::StripAsciiWhitespace(absl::string_view(usage_text.data(), usage_text.size()));
  int64_t limit = 0, used = 0;
  if (max == "max" || !absl::SimpleAtoi(max, &limit) || !absl::SimpleAtoi(current, &used) ||
      limit <= 0 || limit >= kUnlimitedV1 || used < 0) {
    return std::nullopt;
  }
  const absl::string_view stat(stat_text.data(), stat_text.size());
  // v1's hierarchical count where there is one (its plain one is this
  // cgroup's own pages alone); v2's is hierarchical.
  int64_t reclaimable = StatValue(stat, "total_inactive_file");
  if (reclaimable == 0) reclaimable = StatValue(stat, "inactive_file");
  used -= std::min(reclaimable, used);
  return std::max<int64_t>(limit - used, 0);
}

std::vector<CgroupDir> CgroupMemoryDirs(std::string_view proc_self_cgroup, std::string_view root) {
  std::optional<std::string> v1, v2;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(proc_self_cgroup.data(), proc_self_cgroup.size()), '\n')) {
    // "hierarchy-id:controllers:path"
    const std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3 || !absl::StartsWith(f[2], "/")) continue;
    if (f[0] == "0" && f[1].empty()) v2 = std::string(f[2]);
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      if (c == "memory") v1 = std::string(f[2]);
    }
  }
  std::vector<CgroupDir> dirs;
  if (!v1 && !v2) return dirs;
  const bool is_v2 = !v1;  // a hybrid host's v2 hierarchy has no memory controller
  const std::string base = is_v2 ? std::string(root) : std::string(root) + "/memory";
  std::string path = is_v2 ? *v2 : *v1;
  for (;;) {
    // ".." would climb out of the hierarchy: the kernel writes none.
    if (absl::StrContains(path, "..")) break;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    dirs.push_back({path == "/" ? base : absl::StrCat(base, path), is_v2});
    if (path == "/") break;
    path = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
  }
  return dirs;
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
