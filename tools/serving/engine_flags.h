// The device and engine flags shared by `cohost run` and `cohost serve`:
// --device/--threads pick the backend; the KV pool and step limits size the
// continuous-batching engine.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {

std::vector<FlagSpec> EngineFlagSpecs();

// --kv-dtype f32, f16 or bf16 for the CPU (default: f16 with --cpu-precision
// int8, f32 with reference); CUDA's is bf16 and nothing else is accepted.
absl::StatusOr<kernels::DType> KvDTypeFromArgs(const ParsedArgs& args);

// One backend: --device cpu, cuda (device 0) or cuda:N, with --kv-dtype.
absl::StatusOr<std::unique_ptr<kernels::Backend>> BackendFromArgs(const ParsedArgs& args);

struct DeviceBackend {
  std::string id;  // "cpu", "cuda:N"
  std::unique_ptr<kernels::Backend> backend;
};
// Every device `cohost serve` runs on: --device cpu; cuda (every visible GPU);
// or a list, cuda:0,cuda:2. INVALID_ARGUMENT for a bad or repeated name.
absl::StatusOr<std::vector<DeviceBackend>> BackendsFromArgs(const ParsedArgs& args);
absl::StatusOr<runtime::EngineConfig> EngineConfigFromArgs(const ParsedArgs& args);
// --cpu-precision int8 (the default; --keep-quantized says the same): a
// GGUF's quantized matrices stay in their blocks where the backend takes them
// (runtime::LoadModel); reference: fp32. INVALID_ARGUMENT for another mode.
// --no-mmap: copy the weights kept as stored out of the file's mapping.
absl::StatusOr<runtime::WeightsPolicy> WeightsPolicyFromArgs(const ParsedArgs& args);

}  // namespace cohost::tools
