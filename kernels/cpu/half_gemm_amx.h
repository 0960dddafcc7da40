// cpu::HalfGemm's AMX-BF16 path: tile multiplies (tdpbf16ps: bf16 pairs,
// fp32 sums) instead of widening 16-bit weights to fp32.
//
// BF16 weights are read in place, against the activations rounded to bf16
// once per call, for a decode step's rows as for a prompt's: one thread
// measured the tiles even with the 512-bit dots at one row, 8x them at
// sixteen, and 5-13x sgemm from 32 to 512 rows (bench/RESULTS.md).
//
// F16 weights do not fit bf16, so a panel's rows are split, exactly, into
// two bf16 matrices (hi + lo: an f16's eleven bits are bf16's eight and three
// more), and each activation into two bf16 values within 2^-17 of it; three
// tile multiplies a sum (the lo x lo one, at most 2^-16 of each product,
// left out) keep each product within 1.5 x 2^-16 (2.3e-5), where llama.cpp
// rounds the activations to f16 (2^-11). HalfGemm gives them prompt rows
// only: the split costs a panel's conversion per call.
#pragma once

#include <cstdint>

#include "cohost/kernels/quant.h"
#include "thread_pool.h"

namespace cohost::kernels::cpu {

// Whether this CPU has the tile registers and AMX-BF16 (granted by the OS)
// and COHOST_CPU_KERNELS does not hold the kernels below AMX.
bool HalfGemmAmxAvailable();

// c = a * w^T (+ bias), w in rows of bf16 or f16 values (kBF16, kF16; k a
// multiple of 32), as above, each output summed in fp32 by the tile unit
// (which flushes bf16 subnormals to zero); bf16 weights see each activation
// rounded to the nearest bf16 (ties to even). A row's outputs do not depend
// on the other rows. Only where HalfGemmAmxAvailable().
void HalfGemmAmx(const float* a /*[m, k]*/, WeightRef w /*[n, k]*/,
                 const float* bias /*[n] or null*/, int64_t m, int64_t n, int64_t k,
                 float* c /*[m, n], rows ldc apart*/, int64_t ldc, ThreadPool& pool);

}  // namespace cohost::kernels::cpu
