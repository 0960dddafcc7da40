// Backend::SampleRows on the CPU: the reference of kernels/cuda/sample_rows.cu,
// with the same thresholds (SampleSpec) computed by sorting instead of
// bisection. Weights are floats from expf, masses doubles.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <vector>

#include "cpu_ops.h"

namespace cohost::kernels::cpu {
namespace {

constexpr float kMinExponent = -104.f;  // exp() below this is 0 in float

constexpr float kInf = std::numeric_limits<float>::infinity();

// Of lanes (value, first index) with the values of x in lane i mod `lanes`,
// the first index of the greatest value (NaN never wins; 0 where nothing
// beats -inf), then x's tail from `from` on, in order.
int32_t ReduceLanes(const float* lane_max, const int32_t* lane_at, int lanes, const float* x,
                    int32_t from, int32_t width, float* max_out) {
  float max = -kInf;
  int32_t argmax = 0;
  for (int l = 0; l < lanes; ++l) {
    if (lane_max[l] > max || (lane_max[l] == max && max > -kInf && lane_at[l] < argmax)) {
      max = lane_max[l];
      argmax = lane_at[l];
    }
  }
  for (int32_t i = from; i < width; ++i) {
    if (x[i] > max) {  // false for NaN
      max = x[i];
      argmax = i;
    }
  }
  *max_out = max;
  return argmax;
}

// The first index of x's greatest value (NaN never wins; 0 where nothing
// beats -inf), and that value. Sixteen lanes (i mod 16) each keep their
// first greatest with SSE2 (every x86-64 has it) compares and selects; the
// one chain of compares and maxss this replaces, four cycles an element,
// was 4% of a sixteen-sequence greedy decode step (bench/RESULTS.md).
int32_t FirstArgmax(const float* x, int32_t width, float* max_out) {
  constexpr int kLanes = 16;
  alignas(16) float lane_max[kLanes];
  alignas(16) int32_t lane_at[kLanes];
  int32_t i = 0;
#if defined(__SSE2__)
  constexpr int kRegs = kLanes / 4;
  constexpr ptrdiff_t kPerReg = 4;
  __m128 max[kRegs];
  __m128i at[kRegs], index[kRegs];
  for (int g = 0; g < kRegs; ++g) {
    max[g] = _mm_set1_ps(-kInf);
    at[g] = _mm_setzero_si128();
    index[g] = _mm_setr_epi32(4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3);
  }
  const __m128i step = _mm_set1_epi32(kLanes);
  for (; i + kLanes <= width; i += kLanes) {
    for (int g = 0; g < kRegs; ++g) {
      const __m128 v = _mm_loadu_ps(x + i + kPerReg * g);
      const __m128i greater = _mm_castps_si128(_mm_cmplt_ps(max[g], v));  // false for NaN
      max[g] = _mm_max_ps(v, max[g]);  // max[g] where v is NaN or not greater
      at[g] = _mm_or_si128(_mm_and_si128(greater, index[g]), _mm_andnot_si128(greater, at[g]));
      index[g] = _mm_add_epi32(index[g], step);
    }
  }
  for (int g = 0; g < kRegs; ++g) {
    _mm_store_ps(lane_max + kPerReg * g, max[g]);
    _mm_store_si128(reinterpret_cast<__m128i*>(lane_at + kPerReg * g), at[g]);
  }
#else
  for (int l = 0; l < kLanes; ++l) {
    lane_max[l] = -kInf;
    lane_at[l] = 0;
  }
#endif
  return ReduceLanes(lane_max, lane_at, kLanes, x, i, width, max_out);
}

int32_t SampleRow(const float* x, int32_t width, const SampleSpec& s, std::vector<float>& w,
                  std::vector<float>& sorted) {
  float max;
  const int32_t argmax = FirstArgmax(x, width, &max);
  const float inv_t = s.temperature > 0.f ? 1.f / s.temperature : 0.f;
  if (!(s.temperature > 0.f) || max == -kInf || std::isinf(inv_t)) return argmax;  // NaN too
  w.assign(width, 0.f);
  if (max == kInf) {
    for (int32_t i = 0; i < width; ++i) w[i] = x[i] == kInf ? 1.f : 0.f;
  } else {
    for (int32_t i = 0; i < width; ++i) {
      const float z = (x[i] - max) * inv_t;  // NaN - max is NaN: the test fails, weight 0
      w[i] = z >= kMinExponent ? std::exp(z) : 0.f;
    }
  }
  float cut = 0.f;  // the kept weights are those >= cut (and > 0)
  if (s.top_k > 0 && s.top_k < width) {
    sorted.assign(w.begin(), w.end());
    std::nth_element(sorted.begin(), sorted.begin() + (s.top_k - 1), sorted.end(),
                     std::greater<float>());
    cut = sorted[s.top_k - 1];
  }
  if (s.top_p < 1.f) {
    sorted.clear();
    double total = 0;
    for (float v : w) {
      if (v > 0.f && v >= cut) {
        sorted.push_back(v);
        total += v;
      }
    }
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const double need = static_cast<double>(s.top_p) * total;
    // The largest weight whose "at least this" mass reaches need; ties at it
    // all count, so sum a run of equal weights whole before comparing.
    double mass = 0;
    for (size_t i = 0; i < sorted.size();) {
      size_t j = i;
      while (j < sorted.size() && sorted[j] == sorted[i]) mass += sorted[j++];
      if (mass >= need) {
        cut = std::max(cut, sorted[i]);
        break;
      }
      i = j;
    }
  }
  cut = std::max(cut, s.min_p);
  double total = 0;
  for (float v : w) {
    if (v > 0.f && v >= cut) total += v;
  }
  const double target = static_cast<double>(s.uniform) * total;
  double cumulative = 0;
  int32_t last = argmax;
  for (int32_t i = 0; i < width; ++i) {
    if (!(w[i] > 0.f && w[i] >= cut)) continue;
    cumulative += w[i];
    last = i;
    if (target < cumulative) return i;
  }
  return last;  // rounding put the target at the very end
}

}  // namespace

void MaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
              const uint64_t* masks) {
  const int64_t words = (int64_t{width} + 63) / 64;
  for (int32_t r = 0; r < rows; ++r) {
    if (mask_of[r] < 0) continue;
    float* row = x + static_cast<int64_t>(r) * width;
    const uint64_t* bits = masks + mask_of[r] * words;
    for (int32_t t = 0; t < width; ++t) {
      if (((bits[t / 64] >> (t % 64)) & 1) == 0) row[t] = -std::numeric_limits<float>::infinity();
    }
  }
}

void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                    const PenaltyTerm* terms, float* saved) {
  for (int32_t r = 0; r < rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * width;
    for (int32_t i = starts[r]; i < starts[r + 1]; ++i) {
      const PenaltyTerm& t = terms[i];
      if (t.token < 0 || t.token >= width) continue;
      if (saved != nullptr) saved[i] = row[t.token];
      row[t.token] = PenalizedLogit(row[t.token], t);
    }
  }
}

void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                   const PenaltyTerm* terms, const float* saved) {
  for (int32_t r = 0; r < rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * width;
    // Last term first: a token named twice (outside the contract) still
    // gets its first saved value, the raw one.
    for (int32_t i = starts[r + 1] - 1; i >= starts[r]; --i) {
      if (terms[i].token >= 0 && terms[i].token < width) row[terms[i].token] = saved[i];
    }
  }
}

void SampleRows(const float* x, int32_t rows, int32_t width, const SampleSpec* specs,
                int32_t* out) {
  std::vector<float> w, sorted;
  for (int32_t r = 0; r < rows; ++r) {
    out[r] = SampleRow(x + static_cast<int64_t>(r) * width, width, specs[r], w, sorted);
  }
}

}  // namespace cohost::kernels::cpu
