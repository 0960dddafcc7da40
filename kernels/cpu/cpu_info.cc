#include "cohost/kernels/cpu_info.h"

#include <unistd.h>

#include <cstdio>

#include "cpu_ops.h"
#include "half_gemm_amx.h"
#include "half_gemm_bf16.h"
#include "quant/cpu_features.h"
#include "quant/quant_kernels.h"

namespace cohost::kernels {

CpuInfo HostCpuInfo() {
  const cpu::CpuFeatures& f = cpu::HostCpuFeatures();
  return {f.brand, f.Summary(), cpu::SelectedQuantKernels().name,
          cpu::HalfGemmAmxAvailable()        ? "amx"
          : cpu::HalfGemmBf16DotsAvailable() ? "avx512bf16"
                                             : cpu::HalfGemmDotsName()};
}

size_t HostAvailableMemory() {
  if (FILE* f = std::fopen("/proc/meminfo", "r"); f != nullptr) {
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof(line), f) != nullptr) {
      found = std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
    }
    std::fclose(f);
    if (found) return static_cast<size_t>(kib) * 1024;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<size_t>(pages) * page_size : 0;
}

}  // namespace cohost::kernels
