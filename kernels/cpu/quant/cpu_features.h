// What this CPU can run, read from cpuid (and xgetbv: the OS must save the
// wide registers) at run time, never assumed from the build machine. The
// quantized kernels are chosen from it once (quant_kernels.h).
#pragma once

#include <string>

namespace cohost::kernels::cpu {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  std::string brand;  // "AMD EPYC 9B14", from the extended cpuid leaves

  // "avx2 fma f16c avx512f ..." for start-up lines and benchmark records.
  std::string Summary() const;
};

// Read once, on first use.
const CpuFeatures& HostCpuFeatures();

// The fastest code the quantized tables and attention may use: all this
// CPU has, unless the environment's COHOST_CPU_KERNELS names a slower level
// (to compare code paths, and to test the ones this CPU would not pick):
// "scalar" (the portable reference code), "avx2", or "avx512vnni" (AVX-512
// without AMX). The 16-bit products' AMX tiles need kAll too, and their
// AVX512-BF16 pair products kAvx512 (so below it bf16 weights take fp32
// dots); their dot products, SiLU and KV narrowing ignore it.
enum class KernelCap { kScalar, kAvx2, kAvx512, kAll };
// Read once, on first use.
KernelCap HostKernelCap();

}  // namespace cohost::kernels::cpu
