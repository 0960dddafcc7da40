// Rows of the CPU's paged KV cache narrowed from fp32 to its element type
// (PagedKv::dtype) as RopeWriteKv stores them: fp16 and bf16 round to nearest
// even (F32ToF16, F32ToBf16; F16C and AVX2 where cpuid has them, to the same
// bits). Attention widens them back as it loads them (attention.cc).
#pragma once

#include <cstdint>

#include "cohost/kernels/dtype.h"

namespace cohost::kernels::cpu {

// dst[i] = dtype(src[i]) for i < n.
using KvNarrowFn = void (*)(const float* src, int32_t n, DType dtype, void* dst);

// Portable C++.
KvNarrowFn ScalarKvNarrow();
// The fastest this CPU runs, chosen once from cpuid.
KvNarrowFn HostKvNarrow();

}  // namespace cohost::kernels::cpu
