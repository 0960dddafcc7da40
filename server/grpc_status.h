// absl::Status <-> grpc::Status for the service boundary, and the canonical
// code names that metrics and logs use ("RESOURCE_EXHAUSTED", ...).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cohost::server {

// Same numeric codes on both sides (both follow google.rpc.Code).
grpc::Status ToGrpcStatus(const absl::Status& status);

// The canonical upper-case name of a gRPC code, e.g. "DEADLINE_EXCEEDED".
std::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace cohost::server
