// Rotary position embedding parameters (optional Llama-3 scaling), the
// inverse-frequency table both backends share, and how a head's dims pair
// up for the rotation.
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

// The dims of a head that turn together, pair i by the angle position *
// inv_freq[i]: (i, i + rotary_dim / 2), Hugging Face's rotate_half; or
// (2i, 2i + 1), GPT-J's. llama.cpp's converter stores a Llama's q and k rows
// permuted so that its RoPE turns adjacent pairs: weights kept in the file's
// order take kAdjacent. Permuting q's and k's dims alike leaves q . k, and so
// attention, unchanged.
enum class RopePairs : uint8_t { kHalves, kAdjacent };

// The RoPE of one RopeWriteKv call.
struct RopeSpec {
  const float* inv_freq = nullptr;  // device memory, [rotary_dim / 2], fp32
  int32_t rotary_dim = 0;           // leading dims of each head that turn
  RopePairs pairs = RopePairs::kHalves;
};

}  // namespace cohost::kernels
