#include "driver_vm.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace cohost::kernels::cuda {
namespace {

template <typename Fn>
absl::Status Find(const char* symbol, Fn* out) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t err =
      cudaGetDriverEntryPointByVersion(symbol, &fn, 12000, cudaEnableDefault, &found);
  if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || fn == nullptr) {
    cudaGetLastError();
    return absl::UnavailableError(absl::StrCat("the CUDA driver has no ", symbol));
  }
  *out = reinterpret_cast<Fn>(fn);
  return absl::OkStatus();
}

}  // namespace

absl::Status DriverVm::Load(DriverVm* out) {
  DriverVm d;
  for (absl::Status s :
       {Find("cuMemAddressReserve", &d.address_reserve), Find("cuMemAddressFree", &d.address_free),
        Find("cuMemCreate", &d.create), Find("cuMemMap", &d.map), Find("cuMemUnmap", &d.unmap),
        Find("cuMemRelease", &d.release), Find("cuMemSetAccess", &d.set_access),
        Find("cuMemGetAllocationGranularity", &d.granularity),
        Find("cuGetErrorName", &d.error_name)}) {
    if (!s.ok()) return s;
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status DriverVm::Check(CUresult r, const char* what) const {
  if (r == CUDA_SUCCESS) return absl::OkStatus();
  const char* name = nullptr;
  if (error_name != nullptr) error_name(r, &name);
  const std::string msg = absl::StrCat(what, ": ", name != nullptr ? name : "CUresult ",
                                       name != nullptr ? "" : absl::StrCat(r));
  return r == CUDA_ERROR_OUT_OF_MEMORY ? absl::ResourceExhaustedError(msg)
                                       : absl::InternalError(msg);
}

}  // namespace cohost::kernels::cuda
