#include "bench/sim/plan.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "scheduler/config_writer.h"

namespace cohost::sim {

absl::StatusOr<std::vector<scheduler::ServeConfig>> ReplicaConfigs(
    const Assignment& assignment, const scheduler::ServeConfig& fleet) {
  std::vector<scheduler::ServeConfig> out;
  for (const std::vector<int32_t>& models : assignment) {
    scheduler::ServeConfig replica;
    replica.tenants = fleet.tenants;
    for (const int32_t m : models) {
      if (m < 0 || static_cast<size_t>(m) >= fleet.models.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the plan names model ", m, "; the fleet's configuration lists ", fleet.models.size()));
      }
      replica.models.push_back(fleet.models[m]);
    }
    out.push_back(std::move(replica));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> WriteReplicaConfigs(
    const std::vector<scheduler::ServeConfig>& replicas, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  std::vector<std::string> paths;
  for (size_t d = 0; d < replicas.size(); ++d) {
    const std::string path = absl::StrCat(dir, "/replica-", d, ".yaml");
    std::ofstream f(path, std::ios::trunc);
    f << scheduler::FormatServeConfig(replicas[d]);
    f.close();
    if (!f) return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
    paths.push_back(path);
  }
  return paths;
}

}  // namespace cohost::sim
