// Naive reference ops: one output element at a time, double arithmetic, no
// blocking, no online softmax, no threads. Slow on purpose; obviously right is
// the point.
#include "naive_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace cohost::kernels::naive {

void Embedding(const int32_t* ids, int32_t n, const float* table, int32_t hidden, float* out) {
  GatherRows(table, ids, n, hidden, out);
}

std::vector<TokenLogprob> RowLogprobs(const float* x, int32_t width, int32_t chosen,
                                      int32_t top_n) {
  const double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> v(x, x + width);
  for (double& d : v) d = std::isnan(d) ? -kInf : d;
  const double max = *std::max_element(v.begin(), v.end());
  double lse = max;
  if (std::isfinite(max)) {
    double sum = 0;
    for (double d : v) sum += std::exp(d - max);
    lse = max + std::log(sum);
  }
  auto logprob = [&](int32_t id) {
    return std::isfinite(v[id]) && std::isfinite(lse) ? static_cast<float>(v[id] - lse)
                                                      : -std::numeric_limits<float>::infinity();
  };
  std::vector<int32_t> ids(width);
  for (int32_t i = 0; i < width; ++i) ids[i] = i;
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  std::vector<TokenLogprob> out = {{chosen, logprob(chosen)}};
  for (int32_t i = 0; i < top_n; ++i) out.push_back({ids[i], logprob(ids[i])});
  return out;
}

int32_t SampleRow(const float* x, int32_t width, const SampleSpec& spec) {
  const float inf = std::numeric_limits<float>::infinity();
  int32_t argmax = 0;
  for (int32_t i = 0; i < width; ++i) {
    if (x[i] > x[argmax] || (std::isnan(x[argmax]) && !std::isnan(x[i]))) argmax = i;
  }
  const float max = width > 0 && !std::isnan(x[argmax]) ? x[argmax] : -inf;
  if (max == -inf) return 0;
  if (!(spec.temperature > 0.f) || std::isinf(1.f / spec.temperature)) return argmax;
  struct Token {
    float w;
    int32_t id;
  };
  std::vector<Token> ranked;
  for (int32_t i = 0; i < width; ++i) {
    float w = 0.f;
    if (max == inf) {
      w = x[i] == inf ? 1.f : 0.f;
    } else if (!std::isnan(x[i])) {
      const float z = (x[i] - max) * (1.f / spec.temperature);
      w = z >= -104.f ? std::exp(z) : 0.f;
    }
    ranked.push_back({w, i});
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Token& a, const Token& b) { return a.w > b.w; });
  // Every filter keeps a prefix of the ranking, and ties at its cut.
  size_t keep = ranked.size();
  auto keep_ties = [&](size_t n) {
    while (n < ranked.size() && ranked[n].w == ranked[n - 1].w) ++n;
    return n;
  };
  if (spec.top_k > 0 && spec.top_k < width) keep = keep_ties(static_cast<size_t>(spec.top_k));
  while (keep > 0 && ranked[keep - 1].w == 0.f) --keep;  // weight 0 is never drawn
  if (spec.top_p < 1.f) {
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += ranked[i].w;
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) {
      mass += ranked[i].w;
      if (mass >= spec.top_p * total && (i + 1 == keep || ranked[i + 1].w != ranked[i].w)) {
        keep = i + 1;
        break;
      }
    }
  }
  while (keep > 1 && ranked[keep - 1].w < spec.min_p) --keep;
  std::vector<double> kept_weight(width, 0.0);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    kept_weight[ranked[i].id] = ranked[i].w;
    total += ranked[i].w;
  }
  const double target = spec.uniform * total;
  double cumulative = 0;
  int32_t last = argmax;
  for (int32_t i = 0; i < width; ++i) {
    if (kept_weight[i] == 0) continue;
    last = i;
    cumulative += kept_weight[i];
    if (target < cumulative) return i;
  }
  return last;
}

void GatherRows(const float* x, const int32_t* rows, int32_t num_rows, int32_t width, float* out) {
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t j = 0; j < width; ++j) out[r * width + j] = x[int64_t{rows[r]} * width + j];
  }
}

void RmsNorm(const float* x, float* residual, const float* weight, int32_t n, int32_t hidden,
             float eps, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * hidden;
    const float* v = xr;
    if (residual != nullptr) {
      float* rr = residual + i * hidden;
      for (int64_t j = 0; j < hidden; ++j) rr[j] = static_cast<float>(double{rr[j]} + xr[j]);
      v = rr;
    }
    double sum_sq = 0;
    for (int64_t j = 0; j < hidden; ++j) sum_sq += double{v[j]} * v[j];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / hidden + eps);
    for (int64_t j = 0; j < hidden; ++j) {
      out[i * hidden + j] = static_cast<float>(v[j] * inv_rms * weight[j]);
    }
  }
}

void Gemm(const float* a, const float* w, const float* bias, int32_t m, int32_t n, int32_t k,
          float* c) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias != nullptr ? bias[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) sum += double{a[i * k + p]} * w[j * k + p];
      c[i * n + j] = static_cast<float>(sum);
    }
  }
}

void Add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(double{x[i]} + y[i]);
}

void MoeCombine(const float* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                int32_t width, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < width; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        sum += double{weights[t * k + j]} * y[int64_t{rows[t * k + j]} * width + i];
      }
      out[t * width + i] = static_cast<float>(sum);
    }
  }
}

void SiluMul(const float* gate_up, int32_t n, int32_t inter, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < inter; ++j) {
      const double gate = gate_up[i * 2 * inter + j];
      const double up = gate_up[i * 2 * inter + inter + j];
      out[i * inter + j] = static_cast<float>(gate / (1.0 + std::exp(-gate)) * up);
    }
  }
}

namespace {

// Rotates one head in place: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) for
// the pairs (d, d + rotary_dim / 2); dims from rotary_dim on are left as they are.
void RotateHalf(float* head, int32_t position, const float* inv_freq, int32_t rotary_dim) {
  const int32_t half = rotary_dim / 2;
  for (int32_t d = 0; d < half; ++d) {
    const float angle = static_cast<float>(position) * inv_freq[d];  // fp32 by contract
    const double cos = std::cos(double{angle}), sin = std::sin(double{angle});
    const double x1 = head[d], x2 = head[d + half];
    head[d] = static_cast<float>(x1 * cos - x2 * sin);
    head[d + half] = static_cast<float>(x2 * cos + x1 * sin);
  }
}

}  // namespace

void RopeWriteKv(float* q, float* k, const float* v, const BatchLayout& batch, int32_t num_heads,
                 const float* inv_freq, int32_t rotary_dim, const PagedKv& kv) {
  const int64_t hd = kv.head_dim;
  const int64_t kv_row = kv.num_kv_heads * hd;  // one token's K (or V) row
  float* k_pages = static_cast<float*>(kv.k);
  float* v_pages = static_cast<float*>(kv.v);
  for (int64_t t = 0; t < batch.num_tokens; ++t) {
    const int32_t pos = batch.positions[t];
    for (int64_t h = 0; h < num_heads; ++h) {
      RotateHalf(q + (t * num_heads + h) * hd, pos, inv_freq, rotary_dim);
    }
    for (int64_t h = 0; h < kv.num_kv_heads; ++h) {
      RotateHalf(k + t * kv_row + h * hd, pos, inv_freq, rotary_dim);
    }
    const int64_t slot = batch.slot_mapping[t];
    if (slot < 0) continue;
    const int64_t page = slot / kv.block_size, row = slot % kv.block_size;
    for (int64_t e = 0; e < kv_row; ++e) {
      const int64_t at = (page * kv.block_size + row) * kv_row + e;
      k_pages[at] = k[t * kv_row + e];
      v_pages[at] = v[t * kv_row + e];
    }
  }
}

void PagedAttention(const float* q, const BatchLayout& batch, const PagedKv& kv, int32_t num_heads,
                    float scale, float* out) {
  const int64_t hd = kv.head_dim;
  const int32_t group = num_heads / kv.num_kv_heads;
  const auto* k_pages = static_cast<const float*>(kv.k);
  const auto* v_pages = static_cast<const float*>(kv.v);
  // Padding tokens and rows without keys keep these zeros.
  std::fill(out, out + int64_t{batch.num_tokens} * num_heads * hd, 0.f);
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int32_t* table = batch.block_tables + int64_t{s} * batch.max_blocks_per_seq;
    // Element d of kv head g of logical token t.
    auto at = [&](int32_t t, int32_t g, int64_t d) {
      const int64_t page = table[t / kv.block_size], row = t % kv.block_size;
      return ((page * kv.block_size + row) * kv.num_kv_heads + g) * hd + d;
    };
    for (int32_t i = batch.seq_starts[s]; i < batch.seq_starts[s + 1]; ++i) {
      const int32_t keys = std::min(batch.positions[i] + 1, batch.context_lens[s]);
      if (keys <= 0) continue;
      for (int32_t h = 0; h < num_heads; ++h) {
        const int32_t g = h / group;
        const float* qh = q + (int64_t{i} * num_heads + h) * hd;
        std::vector<double> score(keys);
        for (int32_t t = 0; t < keys; ++t) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += double{qh[d]} * k_pages[at(t, g, d)];
          score[t] = dot * scale;
        }
        const double max = *std::max_element(score.begin(), score.end());
        double denom = 0;
        for (double& x : score) denom += (x = std::exp(x - max));
        float* oh = out + (int64_t{i} * num_heads + h) * hd;
        for (int64_t d = 0; d < hd; ++d) {
          double sum = 0;
          for (int32_t t = 0; t < keys; ++t) sum += score[t] * v_pages[at(t, g, d)];
          oh[d] = static_cast<float>(sum / denom);
        }
      }
    }
  }
}

}  // namespace cohost::kernels::naive
