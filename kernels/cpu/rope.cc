// The CPU RopeWriteKv: RoPE on q and k (rotate-half's pairs, or adjacent
// ones: RopeSpec::pairs), then k and v into the pages at slot_mapping,
// rounded to the cache's element type. Numerics follow Hugging Face's fp32
// path: angle = fp32(pos * inv_freq), cos/sin of that fp32 angle; pair i
// turns the same way in either order.
#include <cmath>
#include <vector>

#include "cpu_ops.h"
#include "kv_narrow.h"

namespace cohost::kernels {

namespace cpu {

namespace {
// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin for the pairs (x1, x2) =
// (x[first * i], x[first * i + second]), i < half: (i, i + half) or
// (2i, 2i + 1).
inline void RotateHead(float* x, const float* cos, const float* sin, int32_t half, int32_t first,
                       int32_t second) {
  for (int32_t i = 0; i < half; ++i) {
    float* x1 = x + static_cast<ptrdiff_t>(first) * i;
    const float a = x1[0], b = x1[second];
    x1[0] = a * cos[i] - b * sin[i];
    x1[second] = b * cos[i] + a * sin[i];
  }
}
}  // namespace

void RopeWriteKv(const QkvRows& qkv, const int32_t* positions, const int32_t* slot_mapping,
                 int32_t num_tokens, int32_t num_heads, const RopeSpec& rope, const PagedKv& kv) {
  auto* q = static_cast<float*>(qkv.q);
  auto* k = static_cast<float*>(qkv.k);
  const auto* v = static_cast<const float*>(qkv.v);
  const int32_t hd = kv.head_dim;
  const int32_t nkv = kv.num_kv_heads;
  const int32_t half = rope.rotary_dim / 2;
  const bool adjacent = rope.pairs == RopePairs::kAdjacent;
  const int32_t first = adjacent ? 2 : 1, second = adjacent ? 1 : half;
  const int64_t kv_row = static_cast<int64_t>(nkv) * hd;  // elements per (page, row)
  const size_t row_bytes = static_cast<size_t>(kv_row) * DTypeSize(kv.dtype);
  std::vector<float> cos(half), sin(half);
  auto* k_pages = static_cast<char*>(kv.k);  // [num_blocks, block_size, num_kv_heads, head_dim]
  auto* v_pages = static_cast<char*>(kv.v);  // [num_blocks, block_size, num_kv_heads, head_dim]
  static const KvNarrowFn narrow = HostKvNarrow();
  for (int32_t i = 0; i < num_tokens; ++i) {
    const float pos = static_cast<float>(positions[i]);
    for (int32_t d = 0; d < half; ++d) {
      const float angle = pos * rope.inv_freq[d];  // rounded to fp32, as HF does
      cos[d] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[d] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    float* qi = q + i * qkv.q_stride;
    for (int32_t h = 0; h < num_heads; ++h)
      RotateHead(qi + static_cast<int64_t>(h) * hd, cos.data(), sin.data(), half, first, second);
    float* ki = k + i * qkv.kv_stride;
    for (int32_t h = 0; h < nkv; ++h)
      RotateHead(ki + static_cast<int64_t>(h) * hd, cos.data(), sin.data(), half, first, second);
    const int64_t slot = slot_mapping[i];
    if (slot < 0) continue;  // padding: nothing cached
    // slot = page * block_size + row, so it indexes (page, row) pairs directly.
    const auto n = static_cast<int32_t>(kv_row);
    narrow(ki, n, kv.dtype, k_pages + slot * row_bytes);
    narrow(v + i * qkv.kv_stride, n, kv.dtype, v_pages + slot * row_bytes);
  }
}

}  // namespace cpu
}  // namespace cohost::kernels
