// The CUDA driver's virtual-memory calls, found at run time through the runtime
// (cudaGetDriverEntryPointByVersion) rather than linked: binaries then need
// libcuda only where a GPU is, and start on machines without a driver.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include "absl/status/status.h"

namespace cohost::kernels::cuda {

struct DriverVm {
  PFN_cuMemAddressReserve_v10020 address_reserve = nullptr;
  PFN_cuMemAddressFree_v10020 address_free = nullptr;
  PFN_cuMemCreate_v10020 create = nullptr;
  PFN_cuMemMap_v10020 map = nullptr;
  PFN_cuMemUnmap_v10020 unmap = nullptr;
  PFN_cuMemRelease_v10020 release = nullptr;
  PFN_cuMemSetAccess_v10020 set_access = nullptr;
  PFN_cuMemGetAllocationGranularity_v10020 granularity = nullptr;
  PFN_cuGetErrorName_v6000 error_name = nullptr;

  // UNAVAILABLE naming the first entry point the driver lacks.
  static absl::Status Load(DriverVm* out);
  // OK, RESOURCE_EXHAUSTED for out of memory, INTERNAL otherwise; names `what`.
  absl::Status Check(CUresult r, const char* what) const;
};

}  // namespace cohost::kernels::cuda
