// The device and engine flags shared by `cohost run` and `cohost serve`:
// --device/--threads pick the backend; the KV pool and step limits size the
// continuous-batching engine.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/engine/engine.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {

std::vector<FlagSpec> EngineFlagSpecs();

absl::StatusOr<std::unique_ptr<kernels::Backend>> BackendFromArgs(const ParsedArgs& args);
absl::StatusOr<runtime::EngineConfig> EngineConfigFromArgs(const ParsedArgs& args);

}  // namespace cohost::tools
