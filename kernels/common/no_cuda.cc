// MakeCudaBackend and CudaDeviceCount in builds without CUDA: every request for a CUDA device is a
// clear NOT_FOUND. Compiled only when the CUDA backend is not (kernels/CMakeLists.txt).
#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"

namespace cohost::kernels {

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index) {
  return absl::NotFoundError(
      absl::StrCat("CUDA device ", device_index, " requested, but cohost was built without CUDA"));
}

int CudaDeviceCount() { return 0; }

}  // namespace cohost::kernels
