// A Hugging Face config.json (a model directory's: untrusted), parsed into a
// model config as the loader reads it, then what placement computes from a
// config before any weight is read: the tensors it expects, and the memory
// its weights and a step's activations would take. An error is
// INVALID_ARGUMENT or UNIMPLEMENTED and names the file; the sizes of a
// config that parses are computed without overflow (UBSan).

#include <string>

#include "absl/strings/string_view.h"
#include "cohost/kernels/backend.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "runtime/model/model.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/model_file_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "/models/fuzz/config.json";
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cohost::runtime::ModelConfig> config = cohost::runtime::ParseHfConfig(text, path);
  if (!config.ok()) {
    cohost::fuzz::CheckFileError(config.status(), path);
    return 0;
  }
  (void)cohost::runtime::ExpectedTensors(*config);
  for (const cohost::kernels::DType dtype :
       {cohost::kernels::DType::kF32, cohost::kernels::DType::kBF16}) {
    (void)cohost::runtime::Model::PredictWeightsBytes(*config, dtype, /*keep_quantized=*/true);
    (void)cohost::runtime::Model::PredictWorkspaceBytes(*config, dtype, 512, 16);
  }
  return 0;
}
