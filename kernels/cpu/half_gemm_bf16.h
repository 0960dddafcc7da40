// cpu::HalfGemm's AVX512-BF16 path, for bf16 weights on CPUs that have the
// bf16 pair products (vdpbf16ps) but no AMX tiles: AMD Zen 4 and Zen 5.
// Each instruction multiplies sixteen lanes' bf16 pairs and adds them into
// fp32 sums, twice the multiply-adds of an fp32 FMA, and the weights are
// read in place, as they are stored.
//
// The numerics are the AMX tiles' (half_gemm_amx.h): the activations are
// rounded to the nearest bf16 once (ties to even; the instruction
// flushes subnormals to zero), the products of two bf16 values are exact in
// fp32, and the sums are fp32. Each output is summed the same way whatever
// rows and columns share its call, so a row's outputs do not depend on the
// other rows:
//   acc[l] += the product of values 2l + 1, then that of values 2l, of each
//     32 of k in order (vdpbf16ps as the ISA defines it: each addition
//     rounded to fp32);
//   out = the sixteen lanes halved four times (l + 8, then l + 4, l + 2, l + 1).
#pragma once

#include <cstdint>

#include "thread_pool.h"

namespace cohost::kernels::cpu {

// Whether this CPU has AVX512-BF16 (with AVX-512BW) and COHOST_CPU_KERNELS
// does not hold the kernels below AVX-512.
bool HalfGemmBf16DotsAvailable();

// c = a * w^T (+ bias), w in rows of bf16 values (k a multiple of 32), as
// above. Only where HalfGemmBf16DotsAvailable().
void HalfGemmBf16Dots(const float* a /*[m, k]*/, const uint16_t* w /*[n, k]*/,
                      const float* bias /*[n] or null*/, int64_t m, int64_t n, int64_t k,
                      float* c /*[m, n], rows ldc apart*/, int64_t ldc, ThreadPool& pool);

}  // namespace cohost::kernels::cpu
