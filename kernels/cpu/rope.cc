// RoPE inverse frequencies (with Llama-3 scaling) and the CPU RopeWriteKv:
// rotate-half on q and k, then k and v into the pages at slot_mapping.
// Numerics follow Hugging Face's fp32 path: inv_freq in fp32, angle =
// fp32(pos * inv_freq), cos/sin of that fp32 angle.
#include "cohost/kernels/rope.h"

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

namespace cohost::kernels {

void RopeInvFreq(const RopeParams& p, float* inv_freq) {
  const int32_t half = p.rotary_dim / 2;
  for (int32_t d = 0; d < half; ++d) {
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in fp32.
    const float exponent = static_cast<float>(2 * d) / static_cast<float>(p.rotary_dim);
    inv_freq[d] = 1.0f / std::pow(p.theta, exponent);
  }
  if (p.llama3_factor <= 0.f) return;
  const float orig = static_cast<float>(p.llama3_original_max_position);
  const float low = p.llama3_low_freq_factor;
  const float high = p.llama3_high_freq_factor;
  const float low_freq_wavelen = orig / low;
  const float high_freq_wavelen = orig / high;
  for (int32_t d = 0; d < half; ++d) {
    const float f = inv_freq[d];
    const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
    if (wavelen > low_freq_wavelen) {
      inv_freq[d] = f / p.llama3_factor;  // long wavelengths: fully scaled
    } else if (wavelen < high_freq_wavelen) {
      inv_freq[d] = f;  // short wavelengths: unchanged
    } else {
      // In between: interpolate between the scaled and unscaled frequency.
      const float smooth = (orig / wavelen - low) / (high - low);
      inv_freq[d] = (1.0f - smooth) * f / p.llama3_factor + smooth * f;
    }
  }
}

namespace cpu {

namespace {
// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin for pairs (d, d + half).
inline void RotateHead(float* x, const float* cos, const float* sin, int32_t half) {
  for (int32_t d = 0; d < half; ++d) {
    const float x1 = x[d];
    const float x2 = x[d + half];
    x[d] = x1 * cos[d] - x2 * sin[d];
    x[d + half] = x2 * cos[d] + x1 * sin[d];
  }
}
}  // namespace

void RopeWriteKv(float* q, float* k, const float* v, const int32_t* positions,
                 const int32_t* slot_mapping, int32_t num_tokens, int32_t num_heads,
                 const float* inv_freq, int32_t rotary_dim, const PagedKv& kv) {
  const int32_t hd = kv.head_dim;
  const int32_t nkv = kv.num_kv_heads;
  const int32_t half = rotary_dim / 2;
  const int64_t kv_row = static_cast<int64_t>(nkv) * hd;  // floats per (page, row)
  std::vector<float> cos(half), sin(half);
  float* k_pages = static_cast<float*>(kv.k);  // [num_blocks, block_size, num_kv_heads, head_dim]
  float* v_pages = static_cast<float*>(kv.v);  // [num_blocks, block_size, num_kv_heads, head_dim]
  for (int32_t i = 0; i < num_tokens; ++i) {
    const float pos = static_cast<float>(positions[i]);
    for (int32_t d = 0; d < half; ++d) {
      const float angle = pos * inv_freq[d];  // rounded to fp32, as HF does
      cos[d] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[d] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    float* qi = q + static_cast<int64_t>(i) * num_heads * hd;
    for (int32_t h = 0; h < num_heads; ++h) RotateHead(qi + h * hd, cos.data(), sin.data(), half);
    float* ki = k + i * kv_row;
    for (int32_t h = 0; h < nkv; ++h) RotateHead(ki + h * hd, cos.data(), sin.data(), half);
    const int64_t slot = slot_mapping[i];
    if (slot < 0) continue;  // padding: nothing cached
    // slot = page * block_size + row, so it indexes (page, row) pairs directly.
    std::memcpy(k_pages + slot * kv_row, ki, sizeof(float) * kv_row);
    std::memcpy(v_pages + slot * kv_row, v + i * kv_row, sizeof(float) * kv_row);
  }
}

}  // namespace cpu
}  // namespace cohost::kernels
