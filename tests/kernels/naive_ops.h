// Naive host implementations of every kernels::Backend op: the reference the
// cross-backend suite checks each backend against. Plain loops in double, no
// code shared with kernels/cpu/; layouts as documented in backend.h and paged_kv.h.
#pragma once

#include <cstdint>
#include <vector>

#include "cohost/kernels/paged_kv.h"
#include "cohost/kernels/sample_spec.h"

namespace cohost::kernels::naive {

// Every pointer is host memory holding fp32; results are rounded to fp32 once,
// at the store. Signatures mirror kernels::Backend so a test calls both alike.

void Embedding(const int32_t* ids /*[n]*/, int32_t n, const float* table /*[vocab, hidden]*/,
               int32_t hidden, float* out /*[n, hidden]*/);

// One row of Backend::SampleRows, straight from SampleSpec's words: the
// tokens ranked by weight, each filter a cut on that ranking, the draw a walk
// in id order. Weights are floats from expf (as the backends'), masses double.
int32_t SampleRow(const float* x /*[width]*/, int32_t width, const SampleSpec& spec);

// One row of Backend::RowLogprobs, from its words: the log-softmax in double
// (NaN as -inf; every logprob -inf where the largest logit is not finite),
// the top ranked by a stable sort on the logit. Returns 1 + top_n entries.
std::vector<TokenLogprob> RowLogprobs(const float* x /*[width]*/, int32_t width, int32_t chosen,
                                      int32_t top_n);

void GatherRows(const float* x /*[n, width]*/, const int32_t* rows /*[num_rows]*/, int32_t num_rows,
                int32_t width, float* out /*[num_rows, width]*/);

// residual (if not null) += x, then out = v / sqrt(mean(v^2) + eps) * weight
// with v the stored residual, or x.
void RmsNorm(const float* x /*[n, hidden]*/, float* residual /*[n, hidden] or null*/,
             const float* weight /*[hidden]*/, int32_t n, int32_t hidden, float eps,
             float* out /*[n, hidden]*/);

// c = a * w^T (+ bias per row).
void Gemm(const float* a /*[m, k]*/, const float* w /*[n, k]*/, const float* bias /*[n] or null*/,
          int32_t m, int32_t n, int32_t k, float* c /*[m, n]*/);

void Add(float* x /*[n]*/, const float* y /*[n]*/, int64_t n);

// out[t] = sum_j weights[t * k + j] * y[rows[t * k + j]], in double.
void MoeCombine(const float* y, const int32_t* rows /*[n, k]*/, const float* weights /*[n, k]*/,
                int32_t n, int32_t k, int32_t width, float* out /*[n, width]*/);
// out = silu(gate) * up, rows of gate_up packed as [gate | up].
void SiluMul(const float* gate_up /*[n, 2 * inter]*/, int32_t n, int32_t inter,
             float* out /*[n, inter]*/);

// Rotate-half RoPE of the first rotary_dim dims of every q and k head, then k
// and v rows into the pages at slot_mapping (-1: padding, nothing written).
// The angle is fp32(position * inv_freq): the fp32 product is the contract
// (Hugging Face's fp32 path, which both backends follow); cos and sin of it are
// taken in double.
void RopeWriteKv(float* q /*[num_tokens, num_heads, head_dim]*/,
                 float* k /*[num_tokens, num_kv_heads, head_dim]*/,
                 const float* v /*[num_tokens, num_kv_heads, head_dim]*/, const BatchLayout& batch,
                 int32_t num_heads, const float* inv_freq /*[rotary_dim / 2]*/, int32_t rotary_dim,
                 const PagedKv& kv);

// Causal attention: new token i of sequence s attends to logical keys
// [0, min(positions[i] + 1, context_lens[s])), read through s's block table;
// query head h uses kv head h / (num_heads / num_kv_heads). Tokens outside
// every sequence's run (padding) and rows that see no key get zeros.
void PagedAttention(const float* q /*[num_tokens, num_heads, head_dim]*/, const BatchLayout& batch,
                    const PagedKv& kv, int32_t num_heads, float scale,
                    float* out /*[num_tokens, num_heads, head_dim]*/);

}  // namespace cohost::kernels::naive
