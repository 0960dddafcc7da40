// The bounded dispatch matrix of the CUDA kernels: runtime values become
// template constants here, and anything not listed fails loudly (UNIMPLEMENTED)
// instead of falling back silently. Add a case only with a test that covers it.
#pragma once

#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohost::kernels::cuda {

// Calls f(std::integral_constant<int, kHeadDim>{}) for a supported head_dim.
template <typename F>
absl::Status DispatchHeadDim(int head_dim, const char* op, F&& f) {
  switch (head_dim) {
    case 64:
      return f(std::integral_constant<int, 64>{});
    case 128:
      return f(std::integral_constant<int, 128>{});
    default:
      return absl::UnimplementedError(absl::StrCat(
          op, ": head_dim ", head_dim, " is not supported on CUDA (supported: 64, 128)"));
  }
}

}  // namespace cohost::kernels::cuda
