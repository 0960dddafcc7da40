// RoPE inverse frequencies (with Llama-3 scaling): one host table that both
// backends upload, so they agree bit for bit on the angles' inputs. Follows
// Hugging Face's fp32 path: inv_freq computed in fp32.
#include <cmath>
#include <numbers>

#include "cohost/kernels/rope.h"

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

}  // namespace cohost::kernels
