// The x86 quantized tables: the kernels' body (quant_x86_body.h) compiled
// twice, for AVX2 (+FMA, F16C) and for AVX-512 VNNI on 256-bit vectors
// (AVX512VL: vpdpbusd replaces maddubs + madd). Each function carries its own
// target attribute (no file-wide -mavx2), so nothing here, inline library code
// included, runs on a CPU without it: each table is handed out only when
// cpuid says the CPU has what it needs.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu_features.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace avx2 {
namespace {
#define COHOST_TARGET __attribute__((target("avx2,fma,f16c")))
#define COHOST_VNNI 0
#include "quant_x86_body.h"  // NOLINT(bugprone-suspicious-include)
#undef COHOST_TARGET
#undef COHOST_VNNI
}  // namespace
}  // namespace avx2

namespace vnni {
namespace {
#define COHOST_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define COHOST_VNNI 1
#include "quant_x86_body.h"  // NOLINT(bugprone-suspicious-include)
#undef COHOST_TARGET
#undef COHOST_VNNI
}  // namespace
}  // namespace vnni

#define COHOST_X86_TABLE(ns, label)                                                                \
  QuantKernels {                                                                                   \
    label, ns::QuantizeQ8A, {                                                                      \
      nullptr, ns::Tile<BlockQ8_0>, ns::Tile<BlockQ4_0>, ns::Tile<BlockQ4_1>, ns::Tile<BlockQ5_0>, \
          ns::Tile<BlockQ5_1>, ns::Tile<BlockQ4_K>, ns::Tile<BlockQ5_K>, ns::Tile<BlockQ6_K>,      \
          ns::Tile<BlockQ2_K>, ns::Tile<BlockQ3_K>                                                 \
    }                                                                                              \
  }

const QuantKernels* Avx2QuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c) return nullptr;
  static const QuantKernels k = COHOST_X86_TABLE(avx2, "avx2");
  return &k;
}

const QuantKernels* Avx512VnniQuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c || !f.avx512f || !f.avx512vl || !f.avx512vnni) return nullptr;
  static const QuantKernels k = COHOST_X86_TABLE(vnni, "avx512vnni");
  return &k;
}

}  // namespace cohost::kernels::cpu
