#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "cohost/kernels/sample_spec.h"
#include "common/bounded_heap.h"

namespace cohost::runtime {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();
// exp() of anything below this is 0 in float: such tokens cannot be drawn.
constexpr float kMinShiftedLogit = -104.f;
// Up to this top_k, selection uses a bounded heap in one pass; above, nth_element.
constexpr size_t kHeapTopK = 1024;

// Values the Sampler can always compute with, so a params struct that skipped
// Validate() degrades to "off" instead of producing NaN.
SamplingParams Sanitized(SamplingParams p) {
  auto in = [](float v, float lo, float hi) { return v >= lo && v <= hi; };  // false for NaN
  if (!(p.repetition_penalty > 0.f && p.repetition_penalty <= 10.f)) p.repetition_penalty = 1.f;
  if (!in(p.temperature, 0.f, 100.f)) p.temperature = 0.f;
  if (p.top_k < 0) p.top_k = 0;
  if (!in(p.top_p, 0.f, 1.f)) p.top_p = 1.f;
  if (!in(p.min_p, 0.f, 1.f)) p.min_p = 0.f;
  if (!in(p.presence_penalty, -2.f, 2.f)) p.presence_penalty = 0.f;
  if (!in(p.frequency_penalty, -2.f, 2.f)) p.frequency_penalty = 0.f;
  // By token, each once (ForEachPenalty's lookup, and the device's rule that
  // a row names a token once); a bias out of range is dropped.
  std::erase_if(p.logit_bias, [in](const LogitBias& b) {
    return !in(b.bias, -kMaxLogitBiasValue, kMaxLogitBiasValue);
  });
  std::stable_sort(p.logit_bias.begin(), p.logit_bias.end(), ByToken);
  p.logit_bias.erase(
      std::unique(p.logit_bias.begin(), p.logit_bias.end(),
                  [](const LogitBias& a, const LogitBias& b) { return a.token == b.token; }),
      p.logit_bias.end());
  return p;
}

struct Candidate {
  float logit;   // penalized logit / temperature, shifted so the max is 0
  float weight;  // exp(logit): unnormalized probability
  int32_t id;
};

// The calling thread's working arrays, reused across calls (and requests) so
// the hot path does not allocate once sized to the vocabulary.
struct Scratch {
  std::vector<Candidate> candidates;
  std::vector<Candidate> selection;      // top-p's quickselect reorders a copy
  std::vector<double> weight_mass;       // top-p's sums by weight bucket
  std::vector<int32_t> generated_count;  // [vocab], zero between calls
  std::vector<uint8_t> seen;             // [vocab], zero between calls
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, uint64_t default_seed)
    : params_(Sanitized(params)), rng_(params.seed.value_or(default_seed)) {}

double Sampler::UniformDouble() {
  // 53 random bits -> [0, 1); std::uniform_real_distribution differs between libraries.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::ForEachPenalty(absl::Span<const int32_t> history, int32_t num_prompt_tokens,
                             int64_t vocab,
                             absl::FunctionRef<void(const kernels::PenaltyTerm&)> fn) {
  const float rep = params_.repetition_penalty;
  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  const std::vector<LogitBias>& biases = params_.logit_bias;  // by token, each once
  const bool counts = presence != 0.f || frequency != 0.f;
  if (rep == 1.f && !counts && biases.empty()) return;
  auto valid = [vocab](int32_t id) { return id >= 0 && id < vocab; };
  auto bias_of = [&biases](int32_t id) {
    auto it = std::lower_bound(biases.begin(), biases.end(), LogitBias{id, 0.f}, ByToken);
    return it != biases.end() && it->token == id ? it->bias : 0.f;
  };
  const size_t num_prompt =
      std::clamp<int64_t>(num_prompt_tokens, 0, static_cast<int64_t>(history.size()));
  Scratch& scratch = ThreadScratch();
  std::vector<uint8_t>& seen = scratch.seen;
  std::vector<int32_t>& generated_count = scratch.generated_count;
  if (seen.size() < static_cast<size_t>(vocab)) seen.resize(static_cast<size_t>(vocab), 0);
  // The counts only where presence or frequency reads them: a repetition
  // penalty alone needs no vocabulary-long array of them.
  if (counts) {
    if (generated_count.size() < static_cast<size_t>(vocab)) {
      generated_count.resize(static_cast<size_t>(vocab), 0);
    }
    for (int32_t id : history.subspan(num_prompt)) {
      if (valid(id)) ++generated_count[id];
    }
  }
  // Rep and counts only where they move something: without them the
  // history names no term (its biased tokens come below).
  const absl::Span<const int32_t> walked =
      rep != 1.f || counts ? history : absl::Span<const int32_t>();
  for (int32_t id : walked) {
    if (!valid(id) || seen[id]) continue;
    seen[id] = 1;
    const int32_t count = counts ? generated_count[id] : 0;
    const float add = biases.empty() ? 0.f : bias_of(id);
    if (rep == 1.f && count == 0 && add == 0.f) continue;  // nothing moves it
    fn({id, rep, count > 0 ? presence + frequency * static_cast<float>(count) : 0.f, add});
  }
  // The biased tokens the history did not name.
  for (const LogitBias& b : biases) {
    if (valid(b.token) && !seen[b.token] && b.bias != 0.f) fn({b.token, 1.f, 0.f, b.bias});
  }
  for (int32_t id : walked) {
    if (!valid(id)) continue;
    seen[id] = 0;
    if (counts) generated_count[id] = 0;
  }
}

void Sampler::ApplyPenalties(absl::Span<float> logits, absl::Span<const int32_t> history,
                             int32_t num_prompt_tokens) {
  ForEachPenalty(history, num_prompt_tokens, static_cast<int64_t>(logits.size()),
                 [&](const kernels::PenaltyTerm& t) {
                   logits[t.token] = kernels::PenalizedLogit(logits[t.token], t);
                 });
}

namespace {

// Higher logit first; ties to the lower id. A total order, so every sort and
// selection below gives the same result on every standard library.
struct Higher {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    // Bitwise operators: no branches, which matters in the partition loop below.
    return (a.logit > b.logit) | ((a.logit == b.logit) & (a.id < b.id));
  }
};

// Weights in [0, 1] (0 and subnormals where exp underflows near the -104
// floor, bucket 0) by their float bits' top 12 (sign 0, the exponent, three
// mantissa bits): an order-preserving bucket, 0x3f800000 >> 20 = 1016 at most.
constexpr int kWeightBucketShift = 20;
constexpr size_t kWeightBuckets = (std::bit_cast<uint32_t>(1.0f) >> kWeightBucketShift) + 1;
uint32_t WeightBucket(float weight) {
  return std::bit_cast<uint32_t>(weight) >> kWeightBucketShift;
}

// The candidates that can hold the top-p cut, copied into `selection`, and
// the mass of those ranked above all of them (0 where none is known to be).
// Flat logits: sums by weight bucket (one pass), the bucket holding the cut
// from those sums, and that bucket's candidates alone. Peaked logits (most
// weights negligible): the candidates at or above the floor weight, in one
// pass that copies few of them. Which is which is guessed from 64 evenly
// spaced candidates; a wrong guess costs time, never the result.
// Returns false where rounding leaves the whole mass short of need.
bool TopPCandidates(const std::vector<Candidate>& candidates, double need, double floor_weight,
                    std::vector<Candidate>& selection, std::vector<double>& mass, double* above) {
  const size_t n = candidates.size();
  const size_t step = std::max<size_t>(1, n / 64);
  size_t seen = 0, passing = 0;
  for (size_t at = 0; at < n; at += step, ++seen) passing += candidates[at].weight >= floor_weight;
  selection.clear();
  *above = 0.0;
  if (passing * 8 <= seen) {
    // Tokens below floor_weight can be skipped: together they hold less than
    // (1 - top_p) of the mass, so the tokens at or above it already reach
    // top_p, and they rank below all of those.
    for (const Candidate& c : candidates) {
      if (c.weight >= floor_weight) selection.push_back(c);
    }
    return true;
  }
  // Mass by bucket, in two interleaved arrays so that runs of weights in one
  // bucket do not wait on one chain of additions.
  mass.assign(2 * kWeightBuckets, 0.0);
  size_t at = 0;
  for (; at + 1 < n; at += 2) {
    mass[WeightBucket(candidates[at].weight)] += candidates[at].weight;
    mass[kWeightBuckets + WeightBucket(candidates[at + 1].weight)] += candidates[at + 1].weight;
  }
  if (at < n) mass[WeightBucket(candidates[at].weight)] += candidates[at].weight;
  // The bucket holding the cut: the highest whose mass, with all above it,
  // reaches need. Every weight in a higher bucket is larger, so its
  // candidates rank above this bucket's in Higher's order too.
  for (size_t b = kWeightBuckets; b-- > 0;) {
    const double here = mass[b] + mass[kWeightBuckets + b];
    if (*above + here >= need) {
      for (const Candidate& c : candidates) {
        if (WeightBucket(c.weight) == b) selection.push_back(c);
      }
      return true;
    }
    *above += here;
  }
  return false;
}

// Keeps the candidates whose weight is at least the cut's: the largest weight
// whose "at least this" mass reaches top_p of the total (ties at the cut all
// stay, as Backend::SampleRows keeps them). They keep their order. A weighted
// selection among the candidates that can hold the cut (TopPCandidates)
// finds it without sorting.
void ApplyTopP(std::vector<Candidate>& candidates, Scratch& scratch, float top_p, double total) {
  std::vector<Candidate>& selection = scratch.selection;
  const double need = static_cast<double>(top_p) * total;
  const Higher higher;
  const double floor_weight =
      (1.0 - static_cast<double>(top_p)) * total / static_cast<double>(candidates.size());
  double above = 0.0;
  if (!TopPCandidates(candidates, need, floor_weight, selection, scratch.weight_mass, &above)) {
    return;  // keep all
  }
  // Weighted quickselect on the copy: [0, lo) is known to be kept and holds
  // (with what ranks above the copy) `above` of the mass; the cut lies in
  // [lo, hi). Our own partition code (std::partition's order is unspecified)
  // and sorts under a total order keep the result identical on every
  // standard library.
  size_t lo = 0, hi = selection.size();
  int budget = 64;  // partition rounds before falling back to a sort (bad pivots)
  Candidate cut{};  // the last kept candidate in highest-first order
  bool found = false;
  while (lo < hi && !found) {
    if (hi - lo <= 16 || --budget == 0) {
      std::sort(selection.begin() + lo, selection.begin() + hi, higher);
      for (size_t i = lo; i < hi; ++i) {
        above += selection[i].weight;
        if (above >= need || i + 1 == hi) {
          cut = selection[i];
          found = true;
          break;
        }
      }
      break;
    }
    // Median of three as the pivot, moved to hi - 1.
    const size_t mid = lo + (hi - lo) / 2;
    if (higher(selection[mid], selection[lo])) std::swap(selection[mid], selection[lo]);
    if (higher(selection[hi - 1], selection[lo])) std::swap(selection[hi - 1], selection[lo]);
    if (higher(selection[hi - 1], selection[mid])) std::swap(selection[hi - 1], selection[mid]);
    std::swap(selection[mid], selection[hi - 1]);
    const Candidate pivot = selection[hi - 1];
    size_t p = lo;
    double upper = 0.0;  // mass ranked above the pivot within [lo, hi)
    for (size_t i = lo; i + 1 < hi; ++i) {
      // Branch-free Lomuto step: the comparison is a coin flip for the predictor.
      const Candidate c = selection[i];
      const bool is_higher = higher(c, pivot);
      selection[i] = selection[p];
      selection[p] = c;
      p += is_higher;
      upper += is_higher ? c.weight : 0.0;
    }
    std::swap(selection[p], selection[hi - 1]);
    if (p > lo && above + upper >= need) {
      hi = p;
    } else if (above + upper + pivot.weight >= need || p + 1 == hi) {
      cut = pivot;
      found = true;
    } else {
      above += upper + pivot.weight;
      lo = p + 1;
    }
  }
  if (!found) return;  // rounding: the whole mass is short of need, keep everything
  std::erase_if(candidates, [&](const Candidate& c) { return c.weight < cut.weight; });
}

}  // namespace

int32_t Sampler::Sample(absl::Span<float> logits, absl::Span<const int32_t> history,
                        int32_t num_prompt_tokens) {
  if (logits.empty()) return 0;
  ApplyPenalties(logits, history, num_prompt_tokens);  // NaN stays NaN through these

  int32_t argmax = 0;
  float max_logit = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    float l = logits[i];
    if (std::isnan(l)) logits[i] = l = kNegInf;
    if (l > max_logit) {
      max_logit = l;
      argmax = static_cast<int32_t>(i);
    }
  }
  if (params_.temperature == 0.f) return argmax;

  // One draw per call whatever happens below, so token i always uses the i-th number.
  const double u = UniformDouble();
  const float inv_temperature = 1.f / params_.temperature;
  // Nothing finite (all masked), or a denormal temperature: only the argmax can win.
  if (max_logit == kNegInf || std::isinf(inv_temperature)) return argmax;

  // Candidates: tokens whose weight w = exp((logit - max) / temperature) does
  // not underflow to zero, in id order; with +inf logits present, those alone,
  // weight 1 each. Then the filters as thresholds on the weights and the draw
  // in id order: Backend::SampleRows' rule (kernels/sample_spec.h), so a
  // request draws the same token from the same logits on the host and on a
  // device, and ties at every cut stay, as in vLLM and transformers.
  Scratch& scratch = ThreadScratch();
  std::vector<Candidate>& candidates = scratch.candidates;
  candidates.clear();
  candidates.reserve(logits.size());
  // top_k >= vocab is the same as off.
  const size_t top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < logits.size()
                           ? static_cast<size_t>(params_.top_k)
                           : 0;
  if (max_logit == kPosInf) {
    for (size_t i = 0; i < logits.size(); ++i) {
      if (logits[i] == kPosInf) candidates.push_back({0.f, 1.f, static_cast<int32_t>(i)});
    }
  } else if (top_k > 0 && top_k <= kHeapTopK) {
    // The top_k best in one pass (bounded_heap.h), then the tokens tied with
    // the k-th in weight (the heap broke their ties by id).
    for (size_t i = 0; i < logits.size(); ++i) {
      const Candidate c{(logits[i] - max_logit) * inv_temperature, 0.f, static_cast<int32_t>(i)};
      if (c.logit >= kMinShiftedLogit) OfferBounded(candidates, top_k, c, Higher());
    }
    if (candidates.size() == top_k) {
      const Candidate kth =
          *std::min_element(candidates.begin(), candidates.end(),
                            [](const Candidate& a, const Candidate& b) { return Higher()(b, a); });
      const float kth_weight = std::exp(kth.logit);
      // exp of a lower logit equals kth_weight only within float rounding of
      // it; where the weights are subnormal (below 2^-126) the spacing is
      // fixed and a whole range of logits rounds to one weight.
      const float near =
          kth_weight < std::numeric_limits<float>::min() ? kMinShiftedLogit : kth.logit - 1e-4f;
      for (size_t i = 0; i < logits.size(); ++i) {
        const Candidate c{(logits[i] - max_logit) * inv_temperature, 0.f, static_cast<int32_t>(i)};
        if (c.logit >= near && Higher()(kth, c) && std::exp(c.logit) >= kth_weight) {
          candidates.push_back(c);
        }
      }
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
  } else {
    for (size_t i = 0; i < logits.size(); ++i) {
      const float shifted = (logits[i] - max_logit) * inv_temperature;
      if (shifted >= kMinShiftedLogit) {
        candidates.push_back({shifted, 0.f, static_cast<int32_t>(i)});
      }
    }
  }
  // The argmax itself has weight 1, so candidates is not empty.
  if (max_logit != kPosInf) {
    for (Candidate& c : candidates) c.weight = std::exp(c.logit);  // the max has weight 1
  }
  if (top_k > 0 && top_k < candidates.size() && top_k > kHeapTopK) {
    // The k-th largest weight; every weight at least it stays.
    std::vector<Candidate>& selection = scratch.selection;
    selection.assign(candidates.begin(), candidates.end());
    std::nth_element(selection.begin(), selection.begin() + static_cast<std::ptrdiff_t>(top_k - 1),
                     selection.end(),
                     [](const Candidate& a, const Candidate& b) { return a.weight > b.weight; });
    const float cut = selection[top_k - 1].weight;
    std::erase_if(candidates, [cut](const Candidate& c) { return c.weight < cut; });
  }

  if (params_.top_p < 1.f) {
    double total = 0.0;
    for (const Candidate& c : candidates) total += c.weight;
    ApplyTopP(candidates, scratch, params_.top_p, total);
  }
  if (params_.min_p > 0.f) {
    // The largest weight is 1 (the argmax's), so this is min_p of the max.
    const float threshold = params_.min_p;
    std::erase_if(candidates, [threshold](const Candidate& c) { return c.weight < threshold; });
  }

  double total = 0.0;
  for (const Candidate& c : candidates) total += c.weight;
  // The device's draw is this number in float, just below 1 at most
  // (DeviceSampleInputs): the same here.
  const float uniform = std::min(static_cast<float>(u), 0x1.fffffep-1f);
  const double target = static_cast<double>(uniform) * total;
  double cumulative = 0.0;
  for (const Candidate& c : candidates) {
    cumulative += c.weight;
    if (target < cumulative) return c.id;
  }
  return candidates.back().id;  // rounding put target at the very end
}

}  // namespace cohost::runtime
