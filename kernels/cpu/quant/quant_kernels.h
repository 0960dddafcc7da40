// The CPU's quantized dot products: weights in GGUF blocks (Q8_0, Q4_0, Q4_1)
// against activations quantized per block to int8 (BlockQ8A), summed per
// block in integers and scaled in fp32, as llama.cpp does. One portable scalar
// table, the reference; one AVX2 table, used only where cpuid says the CPU
// has AVX2, FMA and F16C. SelectedQuantKernels picks once, at first use.
#pragma once

#include <cstdint>

#include "cohost/kernels/quant.h"

namespace cohost::kernels::cpu {

struct QuantKernels {
  const char* name;  // "scalar", "avx2"
  // x[k] (k a multiple of 32) -> k / 32 blocks: d = max|x| / 127, q = round(x / d)
  // (to nearest, ties to even), s = d * sum(q). The same bytes from every table.
  void (*quantize_q8a)(const float* x, int64_t k, BlockQ8A* out);
  // sum over nb blocks of w . a, each block's sum exact in int32.
  float (*dot_q8_0)(const BlockQ8_0* w, const BlockQ8A* a, int64_t nb);
  float (*dot_q4_0)(const BlockQ4_0* w, const BlockQ8A* a, int64_t nb);
  float (*dot_q4_1)(const BlockQ4_1* w, const BlockQ8A* a, int64_t nb);
  // Four activation rows (row r at a + r * a_stride) against one weight row,
  // the weight blocks unpacked once: out[r] equals dot(w, row r) of the same
  // table bit for bit (prefill's rows share each weight row).
  void (*dot4_q8_0)(const BlockQ8_0* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                    float* out);
  void (*dot4_q4_0)(const BlockQ4_0* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                    float* out);
  void (*dot4_q4_1)(const BlockQ4_1* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                    float* out);
};

const QuantKernels& ScalarQuantKernels();
// nullptr when this CPU lacks AVX2, FMA or F16C.
const QuantKernels* Avx2QuantKernels();
// The fastest table this CPU runs.
const QuantKernels& SelectedQuantKernels();

}  // namespace cohost::kernels::cpu
