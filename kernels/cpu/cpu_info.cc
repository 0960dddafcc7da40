#include "cohost/kernels/cpu_info.h"

#include "quant/cpu_features.h"
#include "quant/quant_kernels.h"

namespace cohost::kernels {

CpuInfo HostCpuInfo() {
  const cpu::CpuFeatures& f = cpu::HostCpuFeatures();
  return {f.brand, f.Summary(), cpu::SelectedQuantKernels().name};
}

}  // namespace cohost::kernels
