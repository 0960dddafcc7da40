// Rotary position embedding (rotate-half convention, optional Llama-3 scaling),
// fused with writing the new K and V rows into the paged cache.
#pragma once

#include <cstdint>

#include "cohost/kernels/paged_kv.h"

namespace cohost::kernels {

struct RopeParams {
  int32_t rotary_dim = 0;  // leading dims of each head that rotate; == head_dim for Llama
  float theta = 10000.f;
  // Llama-3 frequency scaling; factor <= 0 disables it.
  float llama3_factor = 0.f;
  float llama3_low_freq_factor = 1.f;
  float llama3_high_freq_factor = 4.f;
  int32_t llama3_original_max_position = 8192;
};

// Inverse frequencies [rotary_dim / 2] after scaling: one host table shared by
// both backends so they agree bit for bit on the angles' inputs.
void RopeInvFreq(const RopeParams& p, float* inv_freq /*[rotary_dim / 2]*/);

namespace cpu {
// Rotates q and k in place, then copies k and v into the pages at slot_mapping.
void RopeWriteKv(float* q,        // [num_tokens, num_heads, head_dim]
                 float* k,        // [num_tokens, num_kv_heads, head_dim]
                 const float* v,  // [num_tokens, num_kv_heads, head_dim]
                 const int32_t* positions, const int32_t* slot_mapping, int32_t num_tokens,
                 int32_t num_heads, const float* inv_freq, int32_t rotary_dim,
                 const PagedKv& kv);
}  // namespace cpu

}  // namespace cohost::kernels
