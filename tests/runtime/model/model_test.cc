// The Llama forward on tiny random-weight models: against a dense double
// reference written here, and against itself under different batchings
// (prefill vs decode vs chunks, varlen batches, scattered pages). Also
// Model::Create's checks of the file and KvCache sizing.
#include "runtime/model/model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/cpu_info.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/panels.h"
#include "cohost/kernels/quant.h"
#include "cohost/kernels/rope.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/model_file.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/sampling/logprobs.h"
#include "tests/runtime/loader/tiny_gguf_model.h"
#include "tests/support/forwarding_backend.h"
#include "tests/support/tiny_model.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;

// fp32 through two layers of a 32-wide model vs double: well under 1e-4.
constexpr float kTol = 1e-4f;

struct Variant {
  std::string name;
  bool attention_bias;
  bool tied;
  bool llama3;
  int32_t block_size;
  bool qk_norm = false;  // Qwen3's per-head q and k norms
  // Qwen3-MoE: 2 of 4 experts a token, the picked probabilities as they are
  // (norm_topk_prob false: transformers' default for the class).
  bool moe = false;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

ModelFile MakeTinyModel(const Variant& v, uint32_t seed = 7) {
  ModelFile f;
  f.path = "tiny-" + v.name;
  ModelConfig& c = f.config;
  c.architecture = v.moe ? "qwen3moe" : v.qk_norm ? "qwen3" : v.attention_bias ? "qwen2" : "llama";
  if (v.moe) {
    c.num_experts = 4;
    c.num_experts_used = 2;
    c.expert_intermediate_size = 24;
    c.norm_topk_prob = false;
  }
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.f;
  c.tie_word_embeddings = v.tied;
  c.attention_bias = v.attention_bias;
  if (v.llama3) {
    // Small original context so every llama3 branch hits one of 4 frequencies.
    c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
    c.rope_scaling.factor = 8.f;
    c.rope_scaling.original_max_position_embeddings = 64;
  }
  std::mt19937 rng(seed);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
    HostTensor t;
    t.shape = std::move(shape);
    t.data.resize(t.numel());
    std::uniform_real_distribution<float> d(lo, hi);
    for (float& x : t.data) x = d(rng);
    f.tensors[name] = std::move(t);
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  add("token_embd.weight", {V, H}, -1.f, 1.f);
  add("output_norm.weight", {H}, 0.8f, 1.2f);
  if (!v.tied) add("output.weight", {V, H}, -0.3f, 0.3f);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {H}, 0.8f, 1.2f);
    add(p + "ffn_norm.weight", {H}, 0.8f, 1.2f);
    // Wide q/k weights make attention far from uniform, so masking errors show.
    add(p + "attn_q.weight", {q, H}, -0.6f, 0.6f);
    add(p + "attn_k.weight", {kv, H}, -0.6f, 0.6f);
    add(p + "attn_v.weight", {kv, H}, -0.3f, 0.3f);
    if (v.attention_bias) {
      add(p + "attn_q.bias", {q}, -0.5f, 0.5f);
      add(p + "attn_k.bias", {kv}, -0.5f, 0.5f);
      add(p + "attn_v.bias", {kv}, -0.5f, 0.5f);
    }
    add(p + "attn_output.weight", {H, q}, -0.3f, 0.3f);
    if (v.moe) {
      // Router logits spread over a few units: picks rarely near a tie.
      add(p + "ffn_gate_inp.weight", {c.num_experts, H}, -0.6f, 0.6f);
      const int64_t expert_inter = c.expert_intermediate_size;
      for (int e = 0; e < c.num_experts; ++e) {
        const std::string x = "." + std::to_string(e) + ".weight";
        add(absl::StrCat(p, "ffn_gate", x), {expert_inter, H}, -0.3f, 0.3f);
        add(absl::StrCat(p, "ffn_up", x), {expert_inter, H}, -0.3f, 0.3f);
        add(absl::StrCat(p, "ffn_down", x), {H, expert_inter}, -0.3f, 0.3f);
      }
    } else {
      add(p + "ffn_gate.weight", {I, H}, -0.3f, 0.3f);
      add(p + "ffn_up.weight", {I, H}, -0.3f, 0.3f);
      add(p + "ffn_down.weight", {H, I}, -0.3f, 0.3f);
    }
    if (v.qk_norm || v.moe) {
      // Wide weights: a head's scores would be flat without them.
      add(p + "attn_q_norm.weight", {c.head_dim}, 0.5f, 2.5f);
      add(p + "attn_k_norm.weight", {c.head_dim}, 0.5f, 2.5f);
    }
  }
  return f;
}

// Dense, unpaged forward in double for every position of one sequence:
// logits [tokens.size()][vocab].
std::vector<std::vector<double>> ReferenceLogits(const ModelFile& f,
                                                 const std::vector<int32_t>& tokens) {
  const ModelConfig& c = f.config;
  const int H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_heads,
            nkv = c.num_kv_heads, T = static_cast<int>(tokens.size());
  auto W = [&](const std::string& n) { return f.tensors.at(n).data; };
  auto matvec = [](const std::vector<float>& w, const std::vector<double>& x, int rows) {
    const int cols = static_cast<int>(x.size());
    std::vector<double> y(rows);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) y[r] += w[static_cast<size_t>(r) * cols + j] * x[j];
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& w) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1 / std::sqrt(ss / x.size() + c.rms_norm_eps);
    std::vector<double> y(x.size());
    for (size_t j = 0; j < x.size(); ++j) y[j] = x[j] * inv * w[j];
    return y;
  };
  // Inverse frequencies from the kernel (checked against transformers in
  // cpu_ops_test); angles and rotation in double.
  kernels::RopeParams rp;
  rp.rotary_dim = hd;
  rp.theta = c.rope_theta;
  if (c.rope_scaling.kind == RopeScaling::Kind::kLlama3) {
    rp.llama3_factor = c.rope_scaling.factor;
    rp.llama3_low_freq_factor = c.rope_scaling.low_freq_factor;
    rp.llama3_high_freq_factor = c.rope_scaling.high_freq_factor;
    rp.llama3_original_max_position = c.rope_scaling.original_max_position_embeddings;
  }
  std::vector<float> inv_freq(hd / 2);
  kernels::RopeInvFreq(rp, inv_freq.data());
  auto rope = [&](std::vector<double>& x, int heads, int pos) {
    for (int h = 0; h < heads; ++h) {
      for (int d = 0; d < hd / 2; ++d) {
        const double a = pos * static_cast<double>(inv_freq[d]);
        double& x1 = x[h * hd + d];
        double& x2 = x[h * hd + d + hd / 2];
        const double n1 = x1 * std::cos(a) - x2 * std::sin(a),
                     n2 = x2 * std::cos(a) + x1 * std::sin(a);
        x1 = n1;
        x2 = n2;
      }
    }
  };
  std::vector<std::vector<double>> x(T, std::vector<double>(H));
  const std::vector<float> embd = W("token_embd.weight");
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < H; ++j) x[t][j] = embd[tokens[t] * H + j];
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      std::vector<double> h = rmsnorm(x[t], W(p + "attn_norm.weight"));
      q[t] = matvec(W(p + "attn_q.weight"), h, nh * hd);
      k[t] = matvec(W(p + "attn_k.weight"), h, nkv * hd);
      v[t] = matvec(W(p + "attn_v.weight"), h, nkv * hd);
      if (c.attention_bias) {
        for (int j = 0; j < nh * hd; ++j) q[t][j] += W(p + "attn_q.bias")[j];
        for (int j = 0; j < nkv * hd; ++j) k[t][j] += W(p + "attn_k.bias")[j];
        for (int j = 0; j < nkv * hd; ++j) v[t][j] += W(p + "attn_v.bias")[j];
      }
      // Qwen3: each head RMS-normalized before RoPE.
      auto norm_heads = [&](std::vector<double>& x, int heads, const std::string& w) {
        for (int h = 0; h < heads; ++h) {
          const std::vector<double> head(x.begin() + h * hd, x.begin() + (h + 1) * hd);
          const std::vector<double> normed = rmsnorm(head, W(w));
          std::copy(normed.begin(), normed.end(), x.begin() + h * hd);
        }
      };
      if (c.qk_norm()) {
        norm_heads(q[t], nh, p + "attn_q_norm.weight");
        norm_heads(k[t], nkv, p + "attn_k_norm.weight");
      }
      rope(q[t], nh, t);
      rope(k[t], nkv, t);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> attn(nh * hd);
      for (int h = 0; h < nh; ++h) {
        const int g = h / (nh / nkv);
        std::vector<double> s(t + 1);
        double mx = -1e300, denom = 0;
        for (int u = 0; u <= t; ++u) {
          for (int d = 0; d < hd; ++d) s[u] += q[t][h * hd + d] * k[u][g * hd + d];
          s[u] /= std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[u]);
        }
        for (double& e : s) denom += (e = std::exp(e - mx));
        for (int u = 0; u <= t; ++u)
          for (int d = 0; d < hd; ++d) attn[h * hd + d] += s[u] / denom * v[u][g * hd + d];
      }
      std::vector<double> o = matvec(W(p + "attn_output.weight"), attn, H);
      for (int j = 0; j < H; ++j) x[t][j] += o[j];
      std::vector<double> h = rmsnorm(x[t], W(p + "ffn_norm.weight"));
      auto ffn = [&](const std::string& suffix, int width) {
        std::vector<double> g = matvec(W(absl::StrCat(p, "ffn_gate", suffix)), h, width);
        std::vector<double> u = matvec(W(absl::StrCat(p, "ffn_up", suffix)), h, width);
        for (int j = 0; j < width; ++j) g[j] = g[j] / (1 + std::exp(-g[j])) * u[j];
        return matvec(W(absl::StrCat(p, "ffn_down", suffix)), g, H);
      };
      if (!c.moe()) {
        const std::vector<double> d = ffn(".weight", I);
        for (int j = 0; j < H; ++j) x[t][j] += d[j];
        continue;
      }
      // Softmax over the router's logits, the top num_experts_used (ties to
      // the lower index), their probabilities (over their sum where
      // norm_topk_prob) weighting their FFNs.
      const std::vector<double> r = matvec(W(p + "ffn_gate_inp.weight"), h, c.num_experts);
      const double mx = *std::max_element(r.begin(), r.end());
      std::vector<double> prob(r.size());
      double all = 0;
      for (size_t e = 0; e < r.size(); ++e) all += (prob[e] = std::exp(r[e] - mx));
      std::vector<int> order(r.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r[a] > r[b]; });
      order.resize(c.num_experts_used);
      double picked = 0;
      for (int e : order) picked += prob[e];
      for (int e : order) {
        const std::vector<double> d =
            ffn("." + std::to_string(e) + ".weight", c.expert_intermediate_size);
        const double w = prob[e] / (c.norm_topk_prob ? picked : all);
        for (int j = 0; j < H; ++j) x[t][j] += w * d[j];
      }
    }
  }
  std::vector<std::vector<double>> logits(T);
  const std::vector<float> head = W(c.tie_word_embeddings ? "token_embd.weight" : "output.weight");
  for (int t = 0; t < T; ++t)
    logits[t] = matvec(head, rmsnorm(x[t], W("output_norm.weight")), c.vocab_size);
  return logits;
}

// One sequence's pages and how many of its tokens are cached.
struct Seq {
  std::vector<int32_t> pages;
  int32_t len = 0;
};

// A batch advancing each (seq, new tokens) pair; samples every new token when
// sample_all, else the last new token of each sequence.
Batch MakeBatch(const std::vector<std::pair<Seq*, std::vector<int32_t>>>& parts, int32_t bs,
                bool sample_all = false) {
  Batch b;
  b.seq_starts = {0};
  for (const auto& [seq, toks] : parts)
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, static_cast<int32_t>(seq->pages.size()));
  for (const auto& [seq, toks] : parts) {
    for (size_t j = 0; j < toks.size(); ++j) {
      const int32_t pos = seq->len + static_cast<int32_t>(j);
      b.token_ids.push_back(toks[j]);
      b.positions.push_back(pos);
      b.slot_mapping.push_back(seq->pages[pos / bs] * bs + pos % bs);
      if (sample_all || j + 1 == toks.size()) b.sample_rows.push_back(b.num_tokens() - 1);
    }
    seq->len += static_cast<int32_t>(toks.size());
    b.seq_starts.push_back(b.num_tokens());
    b.context_lens.push_back(seq->len);
    std::vector<int32_t> row = seq->pages;
    row.resize(b.max_blocks_per_seq, 0);
    b.block_tables.insert(b.block_tables.end(), row.begin(), row.end());
  }
  return b;
}

std::vector<int32_t> Prompt(uint32_t seed, int n, int vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

float MaxDiff(const float* a, const float* b, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class ModelTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    file_ = MakeTinyModel(GetParam());
    auto m = Model::Create(file_, be_.get());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    bs_ = GetParam().block_size;
  }

  std::unique_ptr<KvCache> NewCache(int32_t num_blocks = 48) {
    auto kv = KvCache::Create(be_.get(), file_.config, num_blocks, bs_);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return *std::move(kv);
  }

  // Pages [first, first + n) in order: the "contiguous" layout.
  static Seq Contiguous(int32_t first, int32_t n) {
    Seq s;
    s.pages.resize(n);
    std::iota(s.pages.begin(), s.pages.end(), first);
    return s;
  }

  // Runs `prompt` through a fresh cache in chunks of `chunk` tokens and returns
  // the logits of every position, [prompt.size() * vocab].
  std::vector<float> RunChunked(const std::vector<int32_t>& prompt, int chunk, Seq seq) {
    auto kv = NewCache();
    std::vector<float> all, logits;
    for (size_t start = 0; start < prompt.size(); start += chunk) {
      const size_t end = std::min(prompt.size(), start + chunk);
      Batch b = MakeBatch({{&seq, {prompt.begin() + start, prompt.begin() + end}}}, bs_, true);
      absl::Status s = model_->Forward(b, *kv, &logits);
      EXPECT_TRUE(s.ok()) << s;
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  }

  std::unique_ptr<kernels::Backend> be_ = kernels::MakeCpuBackend(2);
  ModelFile file_;
  std::unique_ptr<Model> model_;
  int32_t bs_ = 16;
};

TEST_P(ModelTest, PrefillDecodeAndChunksMatchDenseReference) {
  const int V = file_.config.vocab_size;
  const std::vector<int32_t> prompt = Prompt(3, 21, V);
  const auto ref = ReferenceLogits(file_, prompt);
  const int pages = (21 + bs_ - 1) / bs_;
  const std::vector<float> prefill = RunChunked(prompt, 21, Contiguous(1, pages));
  const std::vector<float> decode = RunChunked(prompt, 1, Contiguous(1, pages));
  const std::vector<float> chunks = RunChunked(prompt, 3, Contiguous(1, pages));
  ASSERT_EQ(prefill.size(), prompt.size() * V);
  ASSERT_EQ(decode.size(), prefill.size());
  ASSERT_EQ(chunks.size(), prefill.size());
  for (size_t t = 0; t < prompt.size(); ++t) {
    for (int j = 0; j < V; ++j) {
      ASSERT_NEAR(prefill[t * V + j], ref[t][j], kTol) << "prefill, position " << t;
      ASSERT_NEAR(decode[t * V + j], ref[t][j], kTol) << "decode, position " << t;
      ASSERT_NEAR(chunks[t * V + j], ref[t][j], kTol) << "chunks of 3, position " << t;
    }
  }
  // The model is not degenerate: positions disagree with each other.
  EXPECT_GT(MaxDiff(&prefill[0], &prefill[20 * V], V), 0.1f);
}

// What placement counts a model's workspace at (Model::PredictWorkspaceBytes)
// is what the first Reserve allocates, experts' buffers included.
TEST_P(ModelTest, TheWorkspaceIsThePredictedOne) {
  EXPECT_EQ(model_->workspace_bytes(), 0u);
  ASSERT_TRUE(model_->ReserveWorkspace(100, 5).ok());
  EXPECT_EQ(model_->workspace_bytes(),
            Model::PredictWorkspaceBytes(file_.config, kernels::DType::kF32, 100, 5));
}

TEST_P(ModelTest, VarlenBatchMatchesEachSequenceAlone) {
  const int V = file_.config.vocab_size;
  const std::vector<int32_t> a = Prompt(11, 14, V), b = Prompt(12, 9, V);
  const int32_t max_pages = (20 + bs_ - 1) / bs_;
  // Alone: a's prefill then 3 decodes; b's prefill in two chunks then a chunk of 4.
  std::vector<float> alone_a = RunChunked(a, 11, Contiguous(1, max_pages));
  std::vector<float> alone_b = RunChunked(b, 5, Contiguous(1, max_pages));
  // Together: step 1 = a[0:11] + b[0:5], step 2 = a[11] + b[5:9], steps 3-4 = a decodes.
  auto kv = NewCache();
  Seq sa = Contiguous(1, max_pages), sb = Contiguous(1 + max_pages, max_pages);
  std::vector<float> logits;
  auto slice = [](const std::vector<int32_t>& v, int s, int e) {
    return std::vector<int32_t>(v.begin() + s, v.begin() + e);
  };
  ASSERT_TRUE(
      model_->Forward(MakeBatch({{&sa, slice(a, 0, 11)}, {&sb, slice(b, 0, 5)}}, bs_), *kv, &logits)
          .ok());
  ASSERT_EQ(logits.size(), 2u * V);
  EXPECT_LT(MaxDiff(&logits[0], &alone_a[10 * V], V), kTol);
  EXPECT_LT(MaxDiff(&logits[V], &alone_b[4 * V], V), kTol);
  ASSERT_TRUE(
      model_
          ->Forward(MakeBatch({{&sa, slice(a, 11, 12)}, {&sb, slice(b, 5, 9)}}, bs_), *kv, &logits)
          .ok());
  EXPECT_LT(MaxDiff(&logits[0], &alone_a[11 * V], V), kTol);
  EXPECT_LT(MaxDiff(&logits[V], &alone_b[8 * V], V), kTol);
  for (int t = 12; t < 14; ++t) {
    ASSERT_TRUE(model_->Forward(MakeBatch({{&sa, slice(a, t, t + 1)}}, bs_), *kv, &logits).ok());
    EXPECT_LT(MaxDiff(&logits[0], &alone_a[t * V], V), kTol) << "decode " << t;
  }
}

TEST_P(ModelTest, ForwardSampleAtTemperatureZeroGivesEachSampledRowsArgmax) {
  const int V = file_.config.vocab_size;
  const std::vector<int32_t> a = Prompt(11, 14, V), b = Prompt(12, 9, V);
  const int32_t max_pages = (14 + bs_ - 1) / bs_;
  // Every position of both sequences samples; each call on a fresh cache.
  auto batch = [&](Seq* sa, Seq* sb) { return MakeBatch({{sa, a}, {sb, b}}, bs_, true); };
  Seq sa = Contiguous(1, max_pages), sb = Contiguous(1 + max_pages, max_pages);
  Seq ga = sa, gb = sb;
  auto kv = NewCache(), greedy_kv = NewCache();
  std::vector<float> logits;
  ASSERT_TRUE(model_->Forward(batch(&sa, &sb), *kv, &logits).ok());
  SampleInputs greedy;
  greedy.specs.resize(23);
  SampledRows sampled;
  ASSERT_TRUE(model_->ForwardSample(batch(&ga, &gb), *greedy_kv, greedy, &sampled).ok());
  const std::vector<int32_t>& ids = sampled.ids;
  EXPECT_TRUE(sampled.logprobs.empty()) << "none asked";
  ASSERT_EQ(ids.size(), 23u);
  ASSERT_EQ(logits.size(), ids.size() * V);
  std::set<int32_t> distinct;
  for (size_t r = 0; r < ids.size(); ++r) {
    const float* row = &logits[r * V];
    EXPECT_EQ(ids[r], std::max_element(row, row + V) - row) << "row " << r;
    distinct.insert(ids[r]);
  }
  EXPECT_GT(distinct.size(), 3u) << "the rows' argmaxes should differ";
}

// Penalties move a row's logits before its draw: a term that pushes the
// argmax far down leaves the runner-up; logprobs still read the raw logits
// of both rows (the moved logits put back after the draw); starts that do
// not index the terms by row are refused before anything runs.
TEST_P(ModelTest, ForwardSamplePenaltiesMoveTheRowsBeforeTheDraw) {
  const int V = file_.config.vocab_size;
  const std::vector<int32_t> a = Prompt(11, 9, V), b = Prompt(12, 6, V);
  const int32_t pages = (9 + bs_ - 1) / bs_;
  Seq s1 = Contiguous(1, pages), t1 = Contiguous(1 + pages, pages);
  Seq s2 = s1, t2 = t1, s3 = s1, t3 = t1;
  auto kv = NewCache();
  std::vector<float> logits;
  ASSERT_TRUE(model_->Forward(MakeBatch({{&s1, a}, {&t1, b}}, bs_), *kv, &logits).ok());
  ASSERT_EQ(logits.size(), 2u * V);
  const auto top = std::max_element(logits.begin(), logits.begin() + V) - logits.begin();
  std::vector<float> rest(logits.begin(), logits.begin() + V);
  rest[top] = -std::numeric_limits<float>::infinity();
  const auto second = std::max_element(rest.begin(), rest.end()) - rest.begin();
  const auto other_top = std::max_element(logits.begin() + V, logits.end()) - logits.begin() - V;
  SampleInputs in;
  in.specs.resize(2);  // greedy
  // Row 1's term moves its runner-up down a little: not its draw, but its
  // logprob must be the raw one.
  std::vector<float> rest1(logits.begin() + V, logits.end());
  rest1[other_top] = -std::numeric_limits<float>::infinity();
  const auto other_second = std::max_element(rest1.begin(), rest1.end()) - rest1.begin();
  in.penalties.starts = {0, 1, 2};
  in.penalties.terms = {{static_cast<int32_t>(top), 1.f, 1e6f},
                        {static_cast<int32_t>(other_second), 2.f, 0.5f}};
  in.top_logprobs = 4;
  kv = NewCache();
  SampledRows out;
  ASSERT_TRUE(model_->ForwardSample(MakeBatch({{&s2, a}, {&t2, b}}, bs_), *kv, in, &out).ok());
  ASSERT_EQ(out.ids,
            (std::vector<int32_t>{static_cast<int32_t>(second), static_cast<int32_t>(other_top)}));
  ASSERT_EQ(out.top, 4);
  ASSERT_EQ(out.logprobs.size(), 2u * 5);
  for (int32_t r = 0; r < 2; ++r) {
    const TokenLogprobs want = ComputeLogprobs(
        absl::MakeConstSpan(logits).subspan(static_cast<size_t>(r) * V, V), out.ids[r], 4);
    const TokenLogprobs got = FromRow(absl::MakeConstSpan(out.logprobs).subspan(r * 5, 5), 4);
    EXPECT_EQ(got.chosen.id, want.chosen.id);
    EXPECT_NEAR(got.chosen.logprob, want.chosen.logprob, 1e-4) << "row " << r;
    ASSERT_EQ(got.top.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(got.top[i].id, want.top[i].id) << "row " << r << " top " << i;
      EXPECT_NEAR(got.top[i].logprob, want.top[i].logprob, 1e-4) << "row " << r << " top " << i;
    }
  }
  EXPECT_EQ(out.logprobs[1].id, top) << "the raw argmax leads the penalized row's top";
  EXPECT_EQ(out.logprobs[5 + 2].id, other_second) << "row 1's runner-up, raw, is second";
  in.penalties.starts = {0, 2, 1};
  kv = NewCache();
  const absl::Status bad =
      model_->ForwardSample(MakeBatch({{&s3, a}, {&t3, b}}, bs_), *kv, in, &out);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  in.penalties.starts = {0, 1, 2};
  in.top_logprobs = kernels::kMaxTopLogprobs + 1;
  const absl::Status too_many =
      model_->ForwardSample(MakeBatch({{&s3, a}, {&t3, b}}, bs_), *kv, in, &out);
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument) << too_many;
}

TEST_P(ModelTest, ScatteredPagesMatchContiguousPages) {
  const int V = file_.config.vocab_size;
  const std::vector<int32_t> prompt = Prompt(5, 19, V);
  const int32_t pages = (19 + bs_ - 1) / bs_;
  std::vector<int32_t> perm(47);
  std::iota(perm.begin(), perm.end(), 1);  // never page 0, the allocator's null block
  std::shuffle(perm.begin(), perm.end(), std::mt19937(99));
  Seq scattered;
  scattered.pages.assign(perm.begin(), perm.begin() + pages);
  const std::vector<float> want = RunChunked(prompt, 4, Contiguous(1, pages));
  const std::vector<float> got = RunChunked(prompt, 4, scattered);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(MaxDiff(got.data(), want.data(), static_cast<int>(got.size())), 1e-6f);
}

TEST_P(ModelTest, ForwardRejectsBadBatchAndMismatchedCache) {
  auto kv = NewCache(8);
  Seq s = Contiguous(1, 2);
  Batch b = MakeBatch({{&s, {1, 2, 3}}}, bs_);
  std::vector<float> logits;
  b.token_ids[1] = file_.config.vocab_size;
  EXPECT_EQ(model_->Forward(b, *kv, &logits).code(), absl::StatusCode::kInvalidArgument);
  b.token_ids[1] = 2;
  b.block_tables[0] = 8;  // == num_blocks
  EXPECT_EQ(model_->Forward(b, *kv, &logits).code(), absl::StatusCode::kInvalidArgument);
  ModelConfig other = file_.config;
  other.num_layers = 3;
  auto wrong = KvCache::Create(be_.get(), other, 8, bs_);
  ASSERT_TRUE(wrong.ok());
  b.block_tables[0] = 1;
  EXPECT_EQ(model_->Forward(b, **wrong, &logits).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(model_->Forward(b, *kv, &logits).ok());
  EXPECT_EQ(logits.size(), static_cast<size_t>(file_.config.vocab_size));
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, ModelTest,
    ::testing::Values(Variant{"llama_untied_bs4", false, false, false, 4},
                      Variant{"qwen2_bias_tied_bs16", true, true, false, 16},
                      Variant{"llama3_rope_tied_bs5", false, true, true, 5},
                      Variant{"qwen3_qk_norm_bs8", false, true, false, 8, true},
                      Variant{"qwen3moe_experts_bs8", false, false, false, 8, true, true}),
    [](const ::testing::TestParamInfo<Variant>& info) { return info.param.name; });

TEST(ModelCreateTest, RejectsMissingAndMisshapenTensors) {
  auto be = kernels::MakeCpuBackend(1);
  const Variant v{"checks", true, false, false, 16};
  {
    ModelFile f = MakeTinyModel(v);
    f.tensors.erase("blk.1.attn_v.weight");
    auto m = Model::Create(f, be.get());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()),
                HasSubstr("missing tensor 'blk.1.attn_v.weight'"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    HostTensor& t = f.tensors["blk.0.ffn_up.weight"];
    t.shape = {32, 48};  // transposed
    auto m = Model::Create(f, be.get());
    ASSERT_FALSE(m.ok());
    EXPECT_THAT(std::string(m.status().message()),
                HasSubstr("'blk.0.ffn_up.weight' has shape [32, 48], expected [48, 32]"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    f.tensors.erase("blk.0.attn_k.bias");
    auto m = Model::Create(f, be.get());
    EXPECT_THAT(std::string(m.status().message()), HasSubstr("blk.0.attn_k.bias"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    f.tensors.erase("output.weight");  // untied model needs its own lm_head
    EXPECT_THAT(std::string(Model::Create(f, be.get()).status().message()),
                HasSubstr("output.weight"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    f.tensors["token_embd.weight"].data.pop_back();  // shape right, data short
    EXPECT_THAT(std::string(Model::Create(f, be.get()).status().message()),
                HasSubstr("token_embd.weight"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    f.config.architecture = "gpt2";
    EXPECT_THAT(std::string(Model::Create(f, be.get()).status().message()),
                HasSubstr("not supported"));
  }
  {
    ModelFile f = MakeTinyModel(v);
    f.config.num_kv_heads = 3;  // does not divide num_heads
    EXPECT_EQ(Model::Create(f, be.get()).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// Records the largest copy to the host.
class CopyCountingBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    largest_copy = std::max(largest_copy, bytes);
    return ForwardingBackend::CopyToHost(dst, src, bytes);
  }
  size_t largest_copy = 0;
};

TEST(ModelSampleTest, ASampledStepBringsBackIdsNotLogits) {
  CopyCountingBackend be(kernels::MakeCpuBackend(1));
  const ModelFile f = MakeTinyModel(Variant{"greedy", false, true, false, 16});
  const int32_t V = f.config.vocab_size;
  auto m = Model::Create(f, &be);
  ASSERT_TRUE(m.ok()) << m.status();
  auto kv = KvCache::Create(&be, f.config, 8, 16);
  ASSERT_TRUE(kv.ok()) << kv.status();
  const std::vector<int32_t> prompt = Prompt(3, 10, V);
  Seq greedy_seq{{1}, 0}, seq{{2}, 0};
  be.largest_copy = 0;
  SampleInputs in;
  in.specs.assign(10, kernels::SampleSpec{1.f, 0, 1.f, 0.f, 0.5f});
  SampledRows out;
  ASSERT_TRUE(
      (*m)->ForwardSample(MakeBatch({{&greedy_seq, prompt}}, 16, true), **kv, in, &out).ok());
  EXPECT_EQ(be.largest_copy, 10 * sizeof(int32_t));
  // Logprobs come as (id, logprob) pairs, never as a row of logits.
  Seq asked_seq{{3}, 0};
  in.top_logprobs = kernels::kMaxTopLogprobs;
  be.largest_copy = 0;
  ASSERT_TRUE(
      (*m)->ForwardSample(MakeBatch({{&asked_seq, prompt}}, 16, true), **kv, in, &out).ok());
  EXPECT_EQ(be.largest_copy, 10 * (1 + kernels::kMaxTopLogprobs) * sizeof(kernels::TokenLogprob));
  EXPECT_EQ(out.logprobs.size(), 10u * (1 + kernels::kMaxTopLogprobs));
  std::vector<float> logits;
  be.largest_copy = 0;
  ASSERT_TRUE((*m)->Forward(MakeBatch({{&seq, prompt}}, 16, true), **kv, &logits).ok());
  EXPECT_EQ(be.largest_copy, size_t{10} * V * sizeof(float));
}

// A device whose memory is its own, with a cap: it counts the bytes it holds.
class MeteredBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (held + bytes > cap) return absl::ResourceExhaustedError("the test device is full");
    absl::StatusOr<void*> p = ForwardingBackend::Allocate(bytes);
    if (p.ok()) {
      sizes[*p] = bytes;
      held += bytes;
    }
    return p;
  }
  void Free(void* ptr) override {
    held -= sizes[ptr];
    sizes.erase(ptr);
    ForwardingBackend::Free(ptr);
  }
  std::map<void*, size_t> sizes;
  size_t held = 0;
  size_t cap = SIZE_MAX;
};

// Offloaded weights leave nothing on the device and come back bit for bit;
// a full device leaves them offloaded, to be restored later; where the
// device's memory is the host's there is nothing to offload.
TEST(ModelOffloadTest, WeightsGoToHostMemoryAndComeBackWhole) {
  MeteredBackend be(kernels::MakeCpuBackend(1));
  const ModelFile f = MakeTinyModel(Variant{"offload", false, true, false, 16});
  const int32_t V = f.config.vocab_size;
  auto m = Model::Create(f, &be);
  ASSERT_TRUE(m.ok()) << m.status();
  Model& model = **m;
  const std::vector<int32_t> prompt = Prompt(3, 10, V);
  auto forward = [&](int32_t page) {
    auto kv = KvCache::Create(&be, f.config, 8, 16);
    EXPECT_TRUE(kv.ok()) << kv.status();
    Seq seq{{page}, 0};
    std::vector<float> logits;
    absl::Status s = model.Forward(MakeBatch({{&seq, prompt}}, 16, true), **kv, &logits);
    EXPECT_TRUE(s.ok()) << s;
    return logits;
  };
  const std::vector<float> want = forward(1);
  ASSERT_EQ(want.size(), 10u * V);
  ASSERT_GT(model.workspace_bytes(), 0u);
  const size_t weights = model.weights_bytes();
  ASSERT_GE(be.held, weights + model.workspace_bytes()) << "weights, activations, step buffers";

  absl::StatusOr<size_t> offloaded = model.OffloadWeights();
  ASSERT_TRUE(offloaded.ok()) << offloaded.status();
  EXPECT_EQ(*offloaded, weights);
  EXPECT_TRUE(model.weights_offloaded());
  EXPECT_EQ(be.held, 0u) << "nothing left on the device";
  EXPECT_EQ(model.workspace_bytes(), 0u);
  EXPECT_EQ(model.OffloadWeights().status().code(), absl::StatusCode::kFailedPrecondition);
  {
    auto kv = KvCache::Create(&be, f.config, 8, 16);
    ASSERT_TRUE(kv.ok()) << kv.status();
    Seq seq{{1}, 0};
    std::vector<float> logits;
    EXPECT_EQ(model.Forward(MakeBatch({{&seq, prompt}}, 16, true), **kv, &logits).code(),
              absl::StatusCode::kFailedPrecondition)
        << "no step runs on weights that are not there";
  }

  be.cap = weights / 2;  // the device is full: still offloaded, nothing held
  EXPECT_EQ(model.RestoreWeights().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(model.weights_offloaded());
  EXPECT_EQ(be.held, 0u);
  be.cap = SIZE_MAX;
  ASSERT_TRUE(model.RestoreWeights().ok());
  EXPECT_FALSE(model.weights_offloaded());
  EXPECT_EQ(be.held, weights);
  EXPECT_EQ(model.weights_bytes(), weights);
  EXPECT_EQ(forward(2), want);
  EXPECT_EQ(model.RestoreWeights().code(), absl::StatusCode::kFailedPrecondition);

  std::unique_ptr<kernels::Backend> cpu = kernels::MakeCpuBackend(1);
  auto on_cpu = Model::Create(f, cpu.get());
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  EXPECT_EQ((*on_cpu)->OffloadWeights().status().code(), absl::StatusCode::kFailedPrecondition);
}

// A device with attention kernels for one head size only, as CUDA has a
// dispatch list: it counts the bytes it is asked for.
class OneHeadDimBackend final : public cohost::testing::ForwardingBackend {
 public:
  OneHeadDimBackend(int32_t head_dim, std::unique_ptr<kernels::Backend> inner)
      : ForwardingBackend(std::move(inner)), head_dim_(head_dim) {}
  absl::Status CheckHeadDim(int32_t head_dim) const override {
    if (head_dim == head_dim_) return absl::OkStatus();
    return absl::UnimplementedError(
        absl::StrCat("head_dim ", head_dim, " is not supported (supported: ", head_dim_, ")"));
  }
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    allocated += bytes;
    return ForwardingBackend::Allocate(bytes);
  }
  size_t allocated = 0;

 private:
  int32_t head_dim_;
};

// A fused group with a part that stays fp32 (q in F32, k in F16, v in Q4_1)
// cannot stay as stored, so its kept parts are dequantized: mapped from the
// file (the CPU's default), they were read from the empty copy, and the model
// could not be built. Mapped and copied, it computes the same logits.
TEST(ModelCreateTest, AMixedGroupMappedFromTheFileBuildsAsCopied) {
  testing::TinyOptions o;
  o.quantized_attention = false;
  const std::string path = testing::TempPath("model_mapped_mixed.gguf");
  testing::WriteFile(path, testing::MakeTinyModel(o).writer.Build());
  LoadOptions keep;
  keep.keep_quantized = true;
  absl::StatusOr<ModelFile> copied = LoadModelFile(path, keep);
  keep.map_weights = true;
  absl::StatusOr<ModelFile> mapped = LoadModelFile(path, keep);
  std::filesystem::remove(path);  // the mapping holds the file
  ASSERT_TRUE(copied.ok()) << copied.status();
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  std::unique_ptr<kernels::Backend> be = kernels::MakeCpuBackend(1);
  std::vector<float> want, got;
  for (auto [file, out] : {std::pair{&*copied, &want}, {&*mapped, &got}}) {
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(*file, be.get());
    ASSERT_TRUE(model.ok()) << model.status();
    auto kv = KvCache::Create(be.get(), file->config, 4, 16);
    ASSERT_TRUE(kv.ok()) << kv.status();
    Seq seq;
    seq.pages = {0, 1, 2, 3};
    ASSERT_TRUE((*model)->Forward(MakeBatch({{&seq, {1, 5, 2, 7, 3}}}, 16, true), **kv, out).ok());
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
  }
}

// A CPU backend that asks for `layout` for every format that has panels,
// whatever its quantized table (one without panel tiles unpacks them), and
// counts the products it is handed in panels. With `host`, it takes loaded
// bytes over as the CPU backend does (parts split, rearranged in place);
// without, they are copied to it.
class LayoutBackend final : public cohost::testing::ForwardingBackend {
 public:
  LayoutBackend(kernels::WeightLayout layout, bool host)
      : ForwardingBackend(kernels::MakeCpuBackend(1)), layout_(layout), host_(host) {}
  bool SupportsWeightFormat(kernels::WeightFormat) const override { return true; }
  kernels::WeightLayout PreferredLayout(kernels::WeightFormat f) const override {
    return kernels::HasPanels(f) ? layout_ : kernels::WeightLayout::kRows;
  }
  bool AdoptsHostMemory() const override { return host_; }
  std::optional<kernels::DeviceBuffer> AdoptHostBytes(std::vector<uint8_t>& bytes) override {
    return host_ ? inner().AdoptHostBytes(bytes) : std::nullopt;
  }
  std::optional<kernels::DeviceBuffer> AdoptMapped(absl::Span<const uint8_t> bytes,
                                                   std::shared_ptr<const void> owner) override {
    return host_ ? inner().AdoptMapped(bytes, std::move(owner)) : std::nullopt;
  }
  void Gemm(const void* a, kernels::WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    panel_products += w.layout == kernels::WeightLayout::kPanels16 ? 1 : 0;
    ForwardingBackend::Gemm(a, w, bias, m, n, k, c);
  }
  int panel_products = 0;

 private:
  kernels::WeightLayout layout_;
  bool host_;
};

// Matrices laid out in panels where the backend prefers them (stored Q8_0,
// Q4_0 and Q4_1, a mixed group's part requantized to Q8_0; the embedding,
// looked up, and the output or the tied lm_head; from loaded copies and
// from the file's mapping; into memory taken over or copied to) give the
// logits of the rows as stored, bit for bit.
TEST(ModelCreateTest, PanelsGiveTheLogitsOfRowsBitForBit) {
  for (const bool tied : {false, true}) {
    testing::TinyOptions o;
    o.quantized_attention = true;
    o.vocab = 2 * static_cast<int>(kernels::kPanelRows);
    o.tied = tied;
    const std::string path = testing::TempPath("model_panels.gguf");
    testing::WriteFile(path, testing::MakeTinyModel(o).writer.Build());
    for (const bool mapped : {false, true}) {
      LoadOptions keep;
      keep.keep_quantized = true;
      keep.map_weights = mapped;
      for (const bool host : {false, true}) {
        SCOPED_TRACE(absl::StrCat("tied ", tied, " mapped ", mapped, " host ", host));
        std::vector<float> logits[2];
        int panel_products[2] = {0, 0};
        for (const auto layout : {kernels::WeightLayout::kRows, kernels::WeightLayout::kPanels16}) {
          absl::StatusOr<ModelFile> file = LoadModelFile(path, keep);
          ASSERT_TRUE(file.ok()) << file.status();
          LayoutBackend be(layout, host);
          absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(*std::move(file), &be);
          ASSERT_TRUE(model.ok()) << model.status();
          auto kv = KvCache::Create(&be, (*model)->config(), 4, 16);
          ASSERT_TRUE(kv.ok()) << kv.status();
          Seq seq;
          // Token ids in both of the embedding's panels.
          seq.pages = {0, 1, 2, 3};
          const auto i = static_cast<size_t>(layout);
          ASSERT_TRUE(
              (*model)
                  ->Forward(MakeBatch({{&seq, {1, 5, 20, 7, 31, 16}}}, 16, true), **kv, &logits[i])
                  .ok());
          panel_products[i] = be.panel_products;
        }
        EXPECT_EQ(panel_products[0], 0);
        // Taken over, every part is its own buffer: q, k, v, gate, up, down
        // and the output in panels. Copied, q, k and v (and gate and up,
        // requantized to one format) are joined in one buffer of rows: down
        // and the output.
        EXPECT_GE(panel_products[1], host ? 7 : 2);
        EXPECT_EQ(logits[1], logits[0]);
      }
    }
    std::filesystem::remove(path);
  }
}

TEST(ModelCreateTest, AHeadSizeWithoutKernelsIsRefusedBeforeAnyUpload) {
  const Variant v{"checks", true, false, false, 16};
  ModelFile f = MakeTinyModel(v);
  const int32_t head_dim = f.config.head_dim;
  {
    OneHeadDimBackend be(head_dim + 2, kernels::MakeCpuBackend(1));
    auto m = Model::Create(f, &be);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(std::string(m.status().message()),
                HasSubstr(absl::StrCat("head_dim ", head_dim, " is not supported")));
    EXPECT_EQ(be.allocated, 0u);
  }
  OneHeadDimBackend be(head_dim, kernels::MakeCpuBackend(1));
  auto m = Model::Create(f, &be);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(be.allocated, 0u);
}

// Rows of `type` blocks (Q8_0, Q4_0, F16 or BF16) for `t` (its rows a
// multiple of 32 long), and t's values replaced by what the blocks
// dequantize to.
void QuantizeTo(GgmlType type, HostTensor* t, HostTensor* dequantized) {
  std::string raw;
  const bool half = type == GgmlType::kF16 || type == GgmlType::kBF16;
  if (half) {
    for (size_t i = 0; i < t->data.size(); ++i) {
      const uint16_t h =
          type == GgmlType::kF16 ? kernels::F32ToF16(t->data[i]) : kernels::F32ToBf16(t->data[i]);
      dequantized->data[i] = type == GgmlType::kF16 ? kernels::F16ToF32(h) : kernels::Bf16ToF32(h);
      raw.append(reinterpret_cast<const char*>(&h), sizeof h);
    }
  }
  for (size_t b = 0; !half && b < t->data.size(); b += kernels::kQuantBlock) {
    const float* x = t->data.data() + b;
    float* out = dequantized->data.data() + b;
    if (type == GgmlType::kQ8_0) {
      float amax = 0;
      for (int i = 0; i < kernels::kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
      const uint16_t d16 = kernels::F32ToF16(amax / 127.f);
      const float d = kernels::F16ToF32(d16);
      kernels::BlockQ8_0 block{d16, {}};
      for (int i = 0; i < kernels::kQuantBlock; ++i) {
        const float q = d == 0 ? 0.f : std::clamp(std::nearbyint(x[i] / d), -127.f, 127.f);
        block.qs[i] = static_cast<int8_t>(q);
        out[i] = d * q;
      }
      raw.append(reinterpret_cast<const char*>(&block), sizeof block);
    } else {
      // Q4_0: d = the value largest in magnitude / -8, nibbles q = x / d + 8.
      float max = 0;
      for (int i = 0; i < kernels::kQuantBlock; ++i) {
        if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
      }
      const uint16_t d16 = kernels::F32ToF16(max / -8.f);
      const float d = kernels::F16ToF32(d16);
      kernels::BlockQ4_0 block{d16, {}};
      for (int i = 0; i < kernels::kQuantBlock; ++i) {
        const int q =
            d == 0 ? 8 : static_cast<int>(std::clamp(std::nearbyint(x[i] / d) + 8.f, 0.f, 15.f));
        block.qs[i % 16] |= static_cast<uint8_t>(i < 16 ? q : q << 4);
        out[i] = d * static_cast<float>(q - 8);
      }
      raw.append(reinterpret_cast<const char*>(&block), sizeof block);
    }
  }
  t->raw.assign(raw.begin(), raw.end());
  t->raw_type = type;
  t->data.clear();
}

// The CPU backend as a device whose memory is its own would place weights: it
// computes on blocks but takes no loaded bytes over, so a fused group whose
// parts share a format is copied into one buffer, and one-row q/k/v is one
// product.
class CopyingCpuBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  bool SupportsWeightFormat(kernels::WeightFormat f) const override {
    return inner().SupportsWeightFormat(f);
  }
};

// A model whose matrices stay in blocks (`type_of` each one's type) against
// the same model in fp32 with the blocks' values: the same logits, for a
// prompt and for one token (the one-row path), but for the rounding of the
// activations (to int8, or to bf16: `rounded_activations`); its weights take
// what PredictWeightsBytes says. On a backend that takes the loaded bytes
// over, and on one that copies them.
void ExpectKeptMatchesDense(bool tied, const std::function<GgmlType(const std::string&)>& type_of,
                            size_t* kept_bytes, bool rounded_activations = true) {
  ModelFile dense = MakeTinyModel({"q8", false, tied, false, 16});
  ModelFile quant = dense;
  // Every matrix 32 wide (ffn_down is 48 wide: it stays fp32).
  std::vector<std::string> names = {"output.weight"};
  for (int l = 0; l < dense.config.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"}) {
      names.push_back(p + m + ".weight");
    }
  }
  for (const std::string& n : names) {
    if (!quant.tensors.contains(n)) continue;  // tied: no output.weight
    QuantizeTo(type_of(n), &quant.tensors[n], &dense.tensors[n]);
    quant.config.stored_types[n] = type_of(n);
  }
  for (const bool adopts : {true, false}) {
    SCOPED_TRACE(adopts ? "the loaded bytes taken over" : "groups copied together");
    std::unique_ptr<kernels::Backend> be = kernels::MakeCpuBackend(2);
    if (!adopts) be = std::make_unique<CopyingCpuBackend>(std::move(be));
    absl::StatusOr<std::unique_ptr<Model>> fp32 = Model::Create(dense, be.get());
    absl::StatusOr<std::unique_ptr<Model>> kept = Model::Create(quant, be.get());
    ASSERT_TRUE(fp32.ok()) << fp32.status();
    ASSERT_TRUE(kept.ok()) << kept.status();
    if (adopts) *kept_bytes = (*kept)->weights_bytes();
    EXPECT_EQ((*kept)->weights_bytes(), *kept_bytes) << "the same bytes, however placed";
    EXPECT_EQ((*kept)->weights_bytes(),
              Model::PredictWeightsBytes(quant.config, kernels::DType::kF32, true));
    EXPECT_LT((*kept)->weights_bytes(), (*fp32)->weights_bytes());
    EXPECT_EQ((*fp32)->weights_bytes(),
              Model::PredictWeightsBytes(dense.config, kernels::DType::kF32));

    for (const std::vector<int32_t>& prompt :
         {std::vector<int32_t>{1, 5, 9, 2, 33, 17, 60, 4, 8}, std::vector<int32_t>{7}}) {
      SCOPED_TRACE(prompt.size() == 1 ? "one row" : "a prompt");
      std::vector<float> want, got;
      for (auto [model, out] : {std::pair{fp32->get(), &want}, {kept->get(), &got}}) {
        auto kv = KvCache::Create(be.get(), dense.config, 4, 16);
        ASSERT_TRUE(kv.ok());
        Seq seq;
        seq.pages = {0, 1, 2, 3};
        ASSERT_TRUE(model->Forward(MakeBatch({{&seq, prompt}}, 16, true), **kv, out).ok());
      }
      ASSERT_EQ(got.size(), want.size());
      float max_err = 0, max_abs = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        max_err = std::max(max_err, std::fabs(got[i] - want[i]));
        max_abs = std::max(max_abs, std::fabs(want[i]));
      }
      if (rounded_activations) {
        // About 1/254 of each block's range per value for int8, up to
        // 1/256 of each value for bf16.
        EXPECT_LT(max_err, 0.03f * max_abs) << "max |logit| " << max_abs;
        EXPECT_GT(max_err, 0.f) << "the activations really were rounded";
      } else {
        // fp32 products of the same values, summed in another order.
        EXPECT_LT(max_err, 1e-4f * max_abs) << "max |logit| " << max_abs;
      }
    }
  }
}

// F16 and BF16 matrices stay 16-bit: half the bytes of fp32, the same
// products (fp32 activations against the widened values; for BF16 on a CPU
// with AMX-BF16 or AVX512-BF16, activations rounded to bf16: a rounding the
// int8 bound covers).
TEST(QuantizedModelTest, SixteenBitMatricesStayHalfTheSizeWithTheSameLogits) {
  for (const GgmlType type : {GgmlType::kF16, GgmlType::kBF16}) {
    SCOPED_TRACE(type == GgmlType::kF16 ? "F16" : "BF16");
    size_t half = 0, q8 = 0;
    const bool rounded = type == GgmlType::kBF16 && kernels::HostCpuInfo().bf16_rounded();
    ExpectKeptMatchesDense(
        false, [&](const std::string&) { return type; }, &half, rounded);
    ExpectKeptMatchesDense(
        false, [](const std::string&) { return GgmlType::kQ8_0; }, &q8);
    ModelFile f = MakeTinyModel({"q8", false, false, false, 16});
    // The kept matrices' values: 2 bytes each, where Q8_0 takes 34 per 32.
    size_t values = f.tensors["output.weight"].data.size();
    for (int l = 0; l < f.config.num_layers; ++l) {
      for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"}) {
        values += f.tensors["blk." + std::to_string(l) + "." + m + ".weight"].data.size();
      }
    }
    EXPECT_EQ(half - q8, values / kernels::kQuantBlock * (64 - 34));
  }
}

TEST(QuantizedModelTest, MatricesKeptInBlocksMatchTheirValuesInFp32) {
  for (const bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    size_t bytes = 0;
    ExpectKeptMatchesDense(
        tied, [](const std::string&) { return GgmlType::kQ8_0; }, &bytes);
  }
}

// q and k in Q4_0, v in Q8_0 (as llama.cpp's K-quant mixes give v more bits):
// each part keeps its own blocks, split by rows, instead of all three being
// requantized to Q8_0; the forward pass runs a product per part.
TEST(QuantizedModelTest, AQkvGroupMixingFormatsKeepsEachPartsOwnBlocks) {
  size_t uniform = 0, mixed = 0;
  ExpectKeptMatchesDense(
      false, [](const std::string&) { return GgmlType::kQ8_0; }, &uniform);
  ExpectKeptMatchesDense(
      false,
      [](const std::string& n) {
        return n.ends_with("attn_q.weight") || n.ends_with("attn_k.weight") ? GgmlType::kQ4_0
                                                                            : GgmlType::kQ8_0;
      },
      &mixed);
  ModelFile f = MakeTinyModel({"q8", false, false, false, 16});
  size_t qk_values = 0;
  for (int l = 0; l < f.config.num_layers; ++l) {
    for (const char* m : {"attn_q", "attn_k"}) {
      qk_values += f.tensors["blk." + std::to_string(l) + "." + m + ".weight"].data.size();
    }
  }
  // Q4_0 takes 18 bytes a block of 32 where Q8_0 takes 34.
  EXPECT_EQ(uniform - mixed, qk_values / kernels::kQuantBlock * (34 - 18));

  // gate and up run as one product: a mixed pair is joined as Q8_0, the Q4_0
  // part requantized from its values.
  size_t joined = 0;
  ExpectKeptMatchesDense(
      false,
      [](const std::string& n) {
        return n.ends_with("ffn_gate.weight") ? GgmlType::kQ4_0 : GgmlType::kQ8_0;
      },
      &joined);
  EXPECT_EQ(joined, uniform);
}

// A gate/up pair mixing formats is joined as Q8_0, the other part
// requantized: blocks whose values pass what a Q8_0 scale (fp16) can hold are
// refused. Q6_K blocks at the largest finite scales dequantize to ~2.6e8,
// whose Q8_0 scale (2e6) was stored as inf, turning every logit NaN; the
// file's own scale checks pass them.
TEST(QuantizedModelTest, ValuesTooLargeToRequantizeAreRefused) {
  testing::TinyModelOptions options;
  options.hidden_size = 256;  // K-quant rows are 256 wide
  options.intermediate_size = 256;
  ModelFile f = testing::MakeTinyModelFile(options);
  HostTensor& gate = f.tensors["blk.0.ffn_gate.weight"];
  HostTensor& up = f.tensors["blk.0.ffn_up.weight"];
  HostTensor up_dequantized = up;
  QuantizeTo(GgmlType::kQ8_0, &up, &up_dequantized);
  f.config.stored_types["blk.0.ffn_up.weight"] = GgmlType::kQ8_0;
  kernels::BlockQ6_K largest{};
  std::fill(std::begin(largest.ql), std::end(largest.ql), uint8_t{0xff});
  std::fill(std::begin(largest.qh), std::end(largest.qh), uint8_t{0xff});
  std::fill(std::begin(largest.scales), std::end(largest.scales), int8_t{127});
  largest.d = 0x7bff;  // 65504, fp16's largest
  gate.raw.clear();
  for (int64_t b = 0; b < gate.numel() / kernels::kSuperBlock; ++b) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&largest);
    gate.raw.insert(gate.raw.end(), bytes, bytes + sizeof largest);
  }
  gate.raw_type = GgmlType::kQ6_K;
  gate.data.clear();
  f.config.stored_types["blk.0.ffn_gate.weight"] = GgmlType::kQ6_K;
  std::unique_ptr<kernels::Backend> be = kernels::MakeCpuBackend(1);
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(f, be.get());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("too large to requantize to Q8_0"));
}

TEST(KvCacheTest, SizesAndFailsCleanly) {
  auto be = kernels::MakeCpuBackend(1);
  ModelFile f = MakeTinyModel({"kv", false, false, false, 16});
  // 2 (K, V) x 2 layers x 16 rows x 2 kv heads x 8 dims x 4 bytes.
  EXPECT_EQ(KvCache::BytesPerBlock(f.config, kernels::DType::kF32, 16), 2u * 2 * 16 * 2 * 8 * 4);
  auto kv = KvCache::Create(be.get(), f.config, 10, 16);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ((*kv)->num_layers(), 2);
  kernels::PagedKv p = (*kv)->Layer(1);
  EXPECT_EQ(p.num_blocks, 10);
  EXPECT_EQ(p.block_size, 16);
  EXPECT_EQ(p.num_kv_heads, 2);
  EXPECT_EQ(p.head_dim, 8);
  EXPECT_NE(p.k, p.v);
  EXPECT_NE(p.k, (*kv)->Layer(0).k);
  // 2^48 rows of 64 bytes: more than any address space.
  auto huge = KvCache::Create(be.get(), f.config, 1 << 24, 1 << 24);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  EXPECT_EQ(KvCache::Create(be.get(), f.config, 0, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::runtime
