// The planner's answer as deployment input: for each `cohost serve` replica
// of a fleet, the configuration file that makes it hold the models a policy
// assigned to it. Past one machine cohost runs as replicas under an existing
// router (a Kubernetes Deployment per replica, say), each started with its
// own file; there is no cluster manager of cohost's own.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/sim/cluster.h"
#include "scheduler/model_config_file.h"

namespace cohost::sim {

// `fleet` lists every model, the simulator's model k as its k-th (the most
// requested first, as the power-law shares rank them). Replica d's
// configuration holds the models assignment[d] names, with all their fields,
// and the fleet's tenants. INVALID_ARGUMENT for an index past the list.
absl::StatusOr<std::vector<scheduler::ServeConfig>> ReplicaConfigs(
    const Assignment& assignment, const scheduler::ServeConfig& fleet);

// Writes each configuration as `dir/replica-<d>.yaml` (scheduler::
// FormatServeConfig), creating `dir`; returns the paths written.
absl::StatusOr<std::vector<std::string>> WriteReplicaConfigs(
    const std::vector<scheduler::ServeConfig>& replicas, const std::string& dir);

}  // namespace cohost::sim
