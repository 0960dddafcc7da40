// Rotary position embedding parameters (rotate-half convention, optional
// Llama-3 scaling) and the inverse-frequency table both backends share.
#pragma once

#include <cstdint>

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

}  // namespace cohost::kernels
