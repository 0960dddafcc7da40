// cpu::HalfGemm for bf16 weights on CPUs with AMX-BF16: the activations
// rounded to bf16 once, then tile multiplies (tdpbf16ps: bf16 pairs, fp32
// sums) instead of widening the weights, for a decode step's rows as for a
// prompt's: one thread measured the tiles 1.1x the 512-bit dots at one row,
// 7x at sixteen, and 5-12x sgemm from 32 to 512 rows (bench/RESULTS.md). The
// weights are read in place; only the activations are repacked.
#pragma once

#include <cstdint>

#include "thread_pool.h"

namespace cohost::kernels::cpu {

// Whether this CPU has the tile registers and AMX-BF16 (granted by the OS)
// and COHOST_CPU_KERNELS does not hold the kernels below AMX.
bool HalfGemmAmxAvailable();

// c = bf16(a) * w^T (+ bias), w in rows of bf16 values (k a multiple of 32),
// each activation rounded to the nearest bf16 (ties to even) and each output
// summed in fp32 by the tile unit (which flushes bf16 subnormals to zero). A
// row's outputs do not depend on the other rows. Only where
// HalfGemmAmxAvailable().
void HalfGemmAmxBf16(const float* a /*[m, k]*/, const uint16_t* w /*[n, k]*/,
                     const float* bias /*[n] or null*/, int64_t m, int64_t n, int64_t k,
                     float* c /*[m, n], rows ldc apart*/, int64_t ldc, ThreadPool& pool);

}  // namespace cohost::kernels::cpu
