// The CPU RopeWriteKv: rotate-half on q and k, then k and v into the pages at
// slot_mapping, rounded to the cache's element type. Numerics follow Hugging Face's fp32 path:
// angle = fp32(pos * inv_freq), cos/sin of that fp32 angle.
#include <cmath>
#include <vector>

#include "cpu_ops.h"
#include "kv_narrow.h"

namespace cohost::kernels {

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
  const int64_t kv_row = static_cast<int64_t>(nkv) * hd;  // elements per (page, row)
  const size_t row_bytes = static_cast<size_t>(kv_row) * DTypeSize(kv.dtype);
  std::vector<float> cos(half), sin(half);
  auto* k_pages = static_cast<char*>(kv.k);  // [num_blocks, block_size, num_kv_heads, head_dim]
  auto* v_pages = static_cast<char*>(kv.v);  // [num_blocks, block_size, num_kv_heads, head_dim]
  static const KvNarrowFn narrow = HostKvNarrow();
  for (int32_t i = 0; i < num_tokens; ++i) {
    const float pos = static_cast<float>(positions[i]);
    for (int32_t d = 0; d < half; ++d) {
      const float angle = pos * inv_freq[d];  // rounded to fp32, as HF does
      cos[d] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[d] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    float* qi = q + static_cast<int64_t>(i) * num_heads * hd;
    for (int32_t h = 0; h < num_heads; ++h)
      RotateHead(qi + static_cast<int64_t>(h) * hd, cos.data(), sin.data(), half);
    float* ki = k + i * kv_row;
    for (int32_t h = 0; h < nkv; ++h)
      RotateHead(ki + static_cast<int64_t>(h) * hd, cos.data(), sin.data(), half);
    const int64_t slot = slot_mapping[i];
    if (slot < 0) continue;  // padding: nothing cached
    // slot = page * block_size + row, so it indexes (page, row) pairs directly.
    const auto n = static_cast<int32_t>(kv_row);
    narrow(ki, n, kv.dtype, k_pages + slot * row_bytes);
    narrow(v + i * kv_row, n, kv.dtype, v_pages + slot * row_bytes);
  }
}

}  // namespace cpu
}  // namespace cohost::kernels
