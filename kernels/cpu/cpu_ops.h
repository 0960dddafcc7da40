// The CPU reference ops in fp32, as CpuBackend calls them. Shapes use the
// layout notation of docs/architecture.md; every pointer is host memory.
#pragma once

#include <cstdint>

#include "cohost/kernels/paged_kv.h"
#include "cohost/kernels/quant.h"
#include "cohost/kernels/rope.h"
#include "cohost/kernels/sample_spec.h"
#include "quant/cpu_features.h"
#include "thread_pool.h"

namespace cohost::kernels::cpu {

void Embedding(const int32_t* ids /*[n]*/, int32_t n, WeightRef table /*[vocab, hidden]*/,
               int32_t hidden, float* out /*[n, hidden]*/, ThreadPool& pool);

// out may alias x.
void RmsNorm(const float* x /*[n, hidden]*/, float* residual /*[n, hidden] or null*/,
             const float* weight /*[hidden]*/, int32_t n, int32_t hidden, float eps,
             float* out /*[n, hidden]*/, ThreadPool& pool);
// Backend::HeadRmsNorm: RmsNorm's arithmetic on each head of each row.
void HeadRmsNorm(float* x /*[rows, row_stride]*/, int32_t rows, int64_t row_stride, int32_t heads,
                 int32_t head_dim, const float* weight /*[head_dim]*/, float eps, ThreadPool& pool);

// c = a * w^T (+ bias), through BLAS.
void Gemm(const float* a /*[m, k]*/, const float* w /*[n, k]*/, const float* bias /*[n] or null*/,
          int32_t m, int32_t n, int32_t k, float* c /*[m, n]*/);

// For each part, c = a * w^T (+ bias) for w in rows of quantized blocks (k a
// multiple of 32): each row of a quantized to int8 blocks once for all the
// parts, then integer dot products (quant/quant_kernels.h, the table this CPU
// runs best), every part's 16 output columns a pool task, so that no two
// threads write one cache line of c, all in one pass over the pool. A part
// with a row range (GemmPart::first_row, rows) takes those rows of a.
void QuantGemm(const float* a /*[m, k]*/, const GemmPart* parts, int32_t num_parts, int32_t m,
               int32_t k, ThreadPool& pool);
// How HalfGemm multiplies. kAuto: dot products (the best kernel cpuid allows)
// up to HalfGemmDotRows() rows of a, sgemm past them; except that where
// HalfGemmAmxAvailable() (half_gemm_amx.h), AMX tiles take bf16 weights at
// any number of rows and f16 ones in place of sgemm, and where only
// HalfGemmBf16DotsAvailable() (half_gemm_bf16.h), bf16 pair products take
// bf16 weights at any number of rows. The others force one
// way (tests, bench/quant_dot_bench): kAvx2Dots where the CPU has AVX2, FMA
// and F16C, else the scalar dots; kAmx the tiles where the CPU has them,
// else sgemm; kBf16Dots the AVX512-BF16 pair products (half_gemm_bf16.h) for
// bf16 weights where the CPU has them, else the dots.
enum class HalfGemmPath { kAuto, kDots, kAvx2Dots, kScalarDots, kSgemm, kAmx, kBf16Dots };

// c = a * w^T (+ bias) for w in rows of fp16 or bf16 values (kF16, kBF16; k
// a multiple of 32: the dot products step by 32), widened to fp32 as read. Dot products: split
// over the pool by 16 output columns; 512-bit (AVX-512F), or F16C + AVX2 + FMA, where cpuid has
// them, else scalar; all give the same bits, and a row's outputs do not depend on the other
// rows. sgemm: 256 weight rows at a time widened into a scratch buffer for OpenBLAS's sgemm.
// AMX: bf16 products summed in fp32 by the tile unit (half_gemm_amx.h says how close).
// Pairs: bf16 weights against the activations rounded to bf16, fp32 sums in a stated
// order (half_gemm_bf16.h).
void HalfGemm(const float* a /*[m, k]*/, WeightRef w /*[n, k]*/, const float* bias /*[n] or null*/,
              int32_t m, int32_t n, int32_t k, float* c /*[m, n], rows ldc apart*/, int32_t ldc,
              ThreadPool& pool, HalfGemmPath path = HalfGemmPath::kAuto);
// Whether HalfGemm runs vectorized on this CPU, its dot kernel's name
// ("avx512", "avx2" or "scalar"), and the most rows kAuto gives that kernel
// (up to which a row's outputs are the same bits in any batch; the AMX
// tiles' and the pair products' are at any number of rows).
bool HalfGemmVectorized();
const char* HalfGemmDotsName();
int32_t HalfGemmDotRows();

void Add(float* x /*[n]*/, const float* y /*[n]*/, int64_t n, ThreadPool& pool);

void SiluMul(const float* gate_up /*[n, 2 * inter]*/, int32_t n, int32_t inter,
             float* out /*[n, inter]*/, ThreadPool& pool);

// Backend::MoeCombine.
void MoeCombine(const float* y, const int32_t* rows /*[n, k]*/, const float* weights /*[n, k]*/,
                int32_t n, int32_t k, int32_t width, float* out /*[n, width]*/, ThreadPool& pool);
void GatherRows(const float* x /*[n, width]*/, const int32_t* rows /*[num_rows]*/, int32_t num_rows,
                int32_t width, float* out /*[num_rows, width]*/);

// Backend::SampleRows, the reference of the CUDA kernel: weights in float
// (expf), masses in double.
void SampleRows(const float* x /*[rows, width]*/, int32_t rows, int32_t width,
                const SampleSpec* specs /*[rows]*/, int32_t* out /*[rows]*/);

// Backend::MaskRows, the reference of the CUDA kernel.
void MaskRows(float* x /*[rows, width]*/, int32_t rows, int32_t width, const int32_t* mask_of,
              const uint64_t* masks);

// Backend::ApplyPenalties and RestoreLogits, the references of the CUDA
// kernels.
void ApplyPenalties(float* x /*[rows, width]*/, int32_t rows, int32_t width,
                    const int32_t* starts /*[rows + 1]*/, const PenaltyTerm* terms,
                    float* saved /*or null*/);
void RestoreLogits(float* x /*[rows, width]*/, int32_t rows, int32_t width,
                   const int32_t* starts /*[rows + 1]*/, const PenaltyTerm* terms,
                   const float* saved);

// Rotates q and k in place, then copies k and v into the pages at
// slot_mapping. q, k, v: fp32.
void RopeWriteKv(const QkvRows& qkv, const int32_t* positions, const int32_t* slot_mapping,
                 int32_t num_tokens, int32_t num_heads, const RopeSpec& rope, const PagedKv& kv);

// Token t's q heads at q + t * q_stride. `cap` bounds the code it picks
// (to compare the code paths; every one gives each row the bits it gets
// alone).
void PagedAttention(const float* q, int64_t q_stride, const BatchLayout& batch, const PagedKv& kv,
                    int32_t num_heads, float scale,
                    float* out /*[num_tokens, num_heads, head_dim]*/, ThreadPool& pool,
                    KernelCap cap = HostKernelCap());

}  // namespace cohost::kernels::cpu
