// The portable quantized kernels (the reference every vectorized table is
// tested against) and the choice of table.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "cohost/kernels/dtype.h"
#include "cpu_features.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

void QuantizeQ8A(const float* x, int64_t k, BlockQ8A* out) {
  for (int64_t b = 0; b < k / kQuantBlock; ++b, x += kQuantBlock) {
    float amax = 0;
    for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    int32_t sum = 0;
    for (int i = 0; i < kQuantBlock; ++i) {
      // Finite inputs give |v| <= 127; anything else (NaN) is taken as 0.
      const float v = std::nearbyint(x[i] * id);
      const auto q = static_cast<int8_t>(std::fabs(v) <= 127.f ? v : 0.f);
      out[b].qs[i] = q;
      sum += q;
    }
    out[b].d = d;
    out[b].s = d * static_cast<float>(sum);
  }
}

float DotQ80(const BlockQ8_0* w, const BlockQ8A* a, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kQuantBlock; ++i) sumi += w[b].qs[i] * a[b].qs[i];
    acc += F16ToF32(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return acc;
}

float DotQ40(const BlockQ4_0* w, const BlockQ8A* a, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kQuantBlock / 2; ++i) {
      sumi += ((w[b].qs[i] & 0xf) - 8) * a[b].qs[i];
      sumi += ((w[b].qs[i] >> 4) - 8) * a[b].qs[i + kQuantBlock / 2];
    }
    acc += F16ToF32(w[b].d) * a[b].d * static_cast<float>(sumi);
  }
  return acc;
}

// sum (d q + m) (da qa) = d da sum(q qa) + m s.
float DotQ41(const BlockQ4_1* w, const BlockQ8A* a, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0;
    for (int i = 0; i < kQuantBlock / 2; ++i) {
      sumi += (w[b].qs[i] & 0xf) * a[b].qs[i];
      sumi += (w[b].qs[i] >> 4) * a[b].qs[i + kQuantBlock / 2];
    }
    acc += F16ToF32(w[b].d) * a[b].d * static_cast<float>(sumi) + F16ToF32(w[b].m) * a[b].s;
  }
  return acc;
}

// The reference for four rows: four single-row dots.
template <typename Block, float (*Dot)(const Block*, const BlockQ8A*, int64_t)>
void Dot4(const Block* w, const BlockQ8A* a, int64_t a_stride, int64_t nb, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = Dot(w, a + r * a_stride, nb);
}

}  // namespace

const QuantKernels& ScalarQuantKernels() {
  static const QuantKernels k{"scalar",
                              QuantizeQ8A,
                              DotQ80,
                              DotQ40,
                              DotQ41,
                              Dot4<BlockQ8_0, DotQ80>,
                              Dot4<BlockQ4_0, DotQ40>,
                              Dot4<BlockQ4_1, DotQ41>};
  return k;
}

const QuantKernels& SelectedQuantKernels() {
  // COHOST_CPU_KERNELS=scalar forces the reference (for comparisons).
  static const QuantKernels& chosen = []() -> const QuantKernels& {
    const char* force = std::getenv("COHOST_CPU_KERNELS");
    if (force != nullptr && std::string_view(force) == "scalar") return ScalarQuantKernels();
    if (const QuantKernels* avx2 = Avx2QuantKernels()) return *avx2;
    return ScalarQuantKernels();
  }();
  return chosen;
}

}  // namespace cohost::kernels::cpu
