// The default model loaded once per benchmark process on the CPU backend;
// exits with a hint when scripts/fetch_model.sh has not been run.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "runtime/engine/loaded_model.h"

namespace cohost::bench {

struct DefaultModel {
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend();
  runtime::LoadedModel model;
};

inline DefaultModel* SharedDefaultModel() {
  static DefaultModel* f = [] {
    auto* f = new DefaultModel;
    absl::StatusOr<runtime::LoadedModel> m =
        runtime::LoadModel(COHOST_DEFAULT_MODEL, f->backend.get());
    if (!m.ok()) {
      std::fprintf(stderr, "%s (run scripts/fetch_model.sh)\n",
                   std::string(m.status().message()).c_str());
      std::exit(1);
    }
    f->model = *std::move(m);
    return f;
  }();
  return f;
}

}  // namespace cohost::bench
