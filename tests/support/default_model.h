// The default model (scripts/fetch_model.sh) loaded once per test binary on the
// CPU backend, for the suites that check real generations.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/engine/loaded_model.h"

namespace cohost::runtime::testing {

struct DefaultModel {
  std::unique_ptr<kernels::Backend> backend;
  LoadedModel model;
};

// Loads on first use; the error (with a hint) when the file is missing or bad.
inline absl::StatusOr<DefaultModel*> SharedDefaultModel() {
  static absl::StatusOr<DefaultModel*> shared = []() -> absl::StatusOr<DefaultModel*> {
    auto* d = new DefaultModel{kernels::MakeCpuBackend(), {}};
    absl::StatusOr<LoadedModel> m = LoadModel(COHOST_DEFAULT_MODEL, d->backend.get());
    if (!m.ok()) {
      return absl::Status(m.status().code(),
                          std::string(m.status().message()) + " (run scripts/fetch_model.sh)");
    }
    d->model = *std::move(m);
    return d;
  }();
  return shared;
}

}  // namespace cohost::runtime::testing
