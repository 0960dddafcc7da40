// The CPU this process runs on, as cpuid reports it at run time, and the
// kernels chosen for it: for start-up lines, /metrics and benchmark records. And the host memory
// available now.
#pragma once

#include <cstddef>
#include <string>

namespace cohost::kernels {

struct CpuInfo {
  std::string brand;          // "AMD EPYC 9B14"; "" when cpuid has no brand string
  std::string features;       // "avx2 fma f16c avx512f ..."
  std::string quant_kernels;  // "avx2" or "scalar"
  // The 16-bit weights' products: "amx" (the tiles: bf16 weights, and f16
  // ones past a decode batch), "avx512bf16" (the pair products: bf16
  // weights; f16 ones take the 512-bit dots, and sgemm past a decode
  // batch), else their dot kernel
  // ("avx512", "avx2", "scalar").
  std::string half_kernels;

  // Whether bf16 weights multiply against activations rounded to bf16, in
  // AMX tiles or AVX512-BF16 pair products (elsewhere fp32 activations
  // against the widened weights).
  bool bf16_rounded() const { return half_kernels == "amx" || half_kernels == "avx512bf16"; }
};

CpuInfo HostCpuInfo();

// The host memory available to new allocations: MemAvailable from
// /proc/meminfo, else the free physical pages; 0 when neither is known.
size_t HostAvailableMemory();

}  // namespace cohost::kernels
