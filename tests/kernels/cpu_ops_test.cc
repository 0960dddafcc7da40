// The CPU reference ops against naive double-precision references written
// here. Tolerance: |got - want| <= 1e-5 * (1 + |want|) unless a test says
// otherwise (fp32 accumulation over at most a few hundred terms).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/rope.h"
#include "gtest/gtest.h"
#include "kernels/cpu/exp8.h"
#include "kernels/cpu/quant/cpu_features.h"

namespace cohost::kernels {
namespace {

constexpr double kTol = 1e-5;

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float Exp8Of(float t) {
  return _mm256_cvtss_f32(cpu::Exp8(_mm256_set1_ps(t)));
}
// Exp16 of x[0, 16) into out.
__attribute__((target("avx2,fma,avx512f"))) void Exp16Of(const float* x, float* out) {
  _mm512_storeu_ps(out, cpu::Exp16(_mm512_loadu_ps(x)));
}
#else
float Exp8Of(float t) { return std::exp(t); }
#endif

std::vector<float> RandomVec(std::mt19937& rng, size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, double tol,
                const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " at " << i;
  }
}

// Three threads so the pool's split paths run even on a 2-core machine.
class CpuOpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be_ = MakeCpuBackend(3);
  std::mt19937 rng_{1234};
};

TEST_F(CpuOpsTest, CapsReportFp32AndMemory) {
  BackendCaps caps = be_->Caps();
  EXPECT_EQ(be_->kind(), BackendKind::kCpu);
  EXPECT_EQ(caps.compute_dtype, DType::kF32);
  EXPECT_GT(caps.total_memory, 0u);
  EXPECT_GT(caps.free_memory, 0u);
  EXPECT_LE(caps.free_memory, caps.total_memory);
  absl::StatusOr<DeviceBuffer> buf = DeviceBuffer::Create(be_.get(), 100);
  ASSERT_TRUE(buf.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 64, 0u);
  EXPECT_EQ(buf->bytes(), 100u);
  DeviceBuffer moved = std::move(*buf);
  EXPECT_EQ(buf->data(), nullptr);
  EXPECT_NE(moved.data(), nullptr);
  // More than the machine has fails cleanly instead of overcommitting.
  absl::StatusOr<DeviceBuffer> huge = DeviceBuffer::Create(be_.get(), caps.total_memory + 1);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(caps.device_name.find("OpenBLAS"), std::string::npos) << caps.device_name;
}

// A loaded matrix handed to the CPU backend is the buffer, not a copy of it,
// and is given back through the backend when the buffer goes (ASan, which
// runs the model-loading suites, would see a mismatched free).
TEST_F(CpuOpsTest, AdoptedHostBytesBecomeTheBufferWithoutACopy) {
  std::vector<uint8_t> bytes(1000);
  std::iota(bytes.begin(), bytes.end(), uint8_t{0});
  const void* data = bytes.data();
  std::optional<DeviceBuffer> b = be_->AdoptHostBytes(bytes);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->data(), data);
  EXPECT_EQ(b->bytes(), 1000u);
  EXPECT_TRUE(bytes.empty()) << "taken over";
  EXPECT_EQ(b->as<uint8_t>()[999], static_cast<uint8_t>(999 % 256));
  b->Reset();
  std::vector<uint8_t> none;
  EXPECT_FALSE(be_->AdoptHostBytes(none).has_value());
  // Memory from Allocate still goes back as before.
  absl::StatusOr<DeviceBuffer> allocated = DeviceBuffer::Create(be_.get(), 64);
  ASSERT_TRUE(allocated.ok());
}

// Bytes in a model file's mapping become the buffer too: the buffer holds
// the mapping's owner until it goes, and never frees the bytes themselves.
// The same bytes are never taken over twice (a file naming one range for two
// tensors): the second asker copies instead.
TEST_F(CpuOpsTest, MappedBytesBecomeTheBufferWhileItHoldsTheirOwner) {
  EXPECT_TRUE(be_->AdoptsHostMemory());
  auto owner = std::make_shared<std::vector<uint8_t>>(256, uint8_t{7});
  const absl::Span<const uint8_t> bytes(*owner);
  std::optional<DeviceBuffer> b = be_->AdoptMapped(bytes, owner);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->data(), owner->data());
  EXPECT_EQ(b->bytes(), 256u);
  EXPECT_EQ(owner.use_count(), 2) << "held by the buffer";
  EXPECT_FALSE(be_->AdoptMapped(bytes, owner).has_value()) << "already taken over";
  EXPECT_FALSE(be_->AdoptMapped({}, owner).has_value());
  EXPECT_FALSE(be_->AdoptMapped(bytes, nullptr).has_value());
  b->Reset();
  EXPECT_EQ(owner.use_count(), 1) << "given back with the buffer";
  EXPECT_EQ((*owner)[255], 7) << "and never freed by it";
}

TEST(DTypeTest, HalfConversions) {
  EXPECT_EQ(DTypeName(DType::kBF16), "bf16");
  EXPECT_EQ(F32ToF16(1.f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.f), 0xc000);
  EXPECT_EQ(F32ToF16(65504.f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.f), 0x7c00);  // rounds up past the largest half
  EXPECT_EQ(F32ToF16(std::ldexp(1.f, -24)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(1.f / 3.f), 0x3555);
  EXPECT_EQ(F32ToF16(1.f + std::ldexp(1.f, -11)), 0x3c00);      // tie to even, down
  EXPECT_EQ(F32ToF16(1.f + 3 * std::ldexp(1.f, -11)), 0x3c02);  // tie to even, up
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  // Every non-NaN half survives a round trip through fp32.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) continue;
    ASSERT_EQ(F32ToF16(F16ToF32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST_F(CpuOpsTest, RmsNormWithoutAndWithResidual) {
  const int n = 300, hidden = 128;  // large enough to split across threads
  const float eps = 1e-5f;
  std::vector<float> x = RandomVec(rng_, n * hidden), w = RandomVec(rng_, hidden, 0.5f, 1.5f);
  std::vector<float> res = RandomVec(rng_, n * hidden, -3.f, 3.f);
  for (bool with_residual : {false, true}) {
    std::vector<float> r = res, out(n * hidden);
    be_->RmsNorm(x.data(), with_residual ? r.data() : nullptr, w.data(), n, hidden, eps,
                 out.data());
    std::vector<double> want(n * hidden), want_r(n * hidden);
    for (int i = 0; i < n; ++i) {
      double ss = 0;
      for (int j = 0; j < hidden; ++j) {
        double v =
            x[i * hidden + j] + (with_residual ? static_cast<double>(res[i * hidden + j]) : 0);
        want_r[i * hidden + j] = v;
        ss += v * v;
      }
      const double inv = 1 / std::sqrt(ss / hidden + eps);
      for (int j = 0; j < hidden; ++j) want[i * hidden + j] = want_r[i * hidden + j] * inv * w[j];
    }
    ExpectNear(out, want, kTol, "rmsnorm out");
    if (with_residual) ExpectNear(r, want_r, kTol, "rmsnorm residual");
  }
}

TEST_F(CpuOpsTest, GemmWithAndWithoutBias) {
  for (int m : {1, 2, 7}) {
    const int n = 37, k = 70;
    std::vector<float> a = RandomVec(rng_, m * k), w = RandomVec(rng_, n * k),
                       b = RandomVec(rng_, n);
    for (bool with_bias : {false, true}) {
      std::vector<float> c(m * n, 99.f);
      be_->Gemm(a.data(), w.data(), with_bias ? b.data() : nullptr, m, n, k, c.data());
      std::vector<double> want(m * n);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double acc = with_bias ? b[j] : 0.0;
          for (int t = 0; t < k; ++t) acc += static_cast<double>(a[i * k + t]) * w[j * k + t];
          want[i * n + j] = acc;
        }
      }
      ExpectNear(c, want, kTol, with_bias ? "gemm+bias" : "gemm");
    }
  }
}

// SiLU at the edges (large magnitudes either way, zeros, tiny values) and
// with a row length that leaves a tail past the eight-wide loop.
TEST_F(CpuOpsTest, SiluMulAtTheEdges) {
  const std::vector<float> g = {0.f,   -0.f, 1e-3f, -1e-3f, 5.f,    -5.f, 20.f,
                                -20.f, 90.f, -90.f, 87.5f,  -87.5f, 0.75f};
  const int inter = static_cast<int>(g.size());
  std::vector<float> gu(g);
  for (int j = 0; j < inter; ++j) gu.push_back(1.5f - 0.25f * j);  // the up half
  std::vector<float> out(inter, -7.f);
  be_->SiluMul(gu.data(), 1, inter, out.data());
  std::vector<double> want(inter);
  for (int j = 0; j < inter; ++j) {
    const double x = g[j];
    want[j] = x / (1 + std::exp(-x)) * gu[inter + j];
  }
  ExpectNear(out, want, kTol, "silu_mul edges");
}

TEST(Exp8Test, WithinThreeUlpOfExpfForNonPositiveArguments) {
  if (!cpu::HostCpuFeatures().avx2 || !cpu::HostCpuFeatures().fma) {
    GTEST_SKIP() << "no AVX2/FMA here (" << cpu::HostCpuFeatures().Summary() << ")";
  }
  int max_ulp = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float t = -88.f * static_cast<float>(i) / 200000.f;
    const float got = Exp8Of(t), want = std::exp(t);
    if (want < std::numeric_limits<float>::min()) {
      EXPECT_EQ(got, 0.f) << "t=" << t << ": below FLT_MIN flushes to 0";
      continue;
    }
    int32_t a, b;
    std::memcpy(&a, &got, 4);
    std::memcpy(&b, &want, 4);
    max_ulp = std::max(max_ulp, std::abs(a - b));
  }
  EXPECT_LE(max_ulp, 3);
  EXPECT_EQ(Exp8Of(-std::numeric_limits<float>::infinity()), 0.f);
  EXPECT_TRUE(std::isnan(Exp8Of(std::numeric_limits<float>::quiet_NaN())));
}

#if defined(__x86_64__)
// Attention's softmax takes either by the CPU's features and must give the
// same bits either way.
TEST(Exp8Test, Exp16HasExp8sBitsInEveryLane) {
  const cpu::CpuFeatures& f = cpu::HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.avx512f) GTEST_SKIP() << "no AVX-512F here (" << f.Summary() << ")";
  std::vector<float> x;
  for (int i = 0; i < 200000; ++i) x.push_back(-100.f * static_cast<float>(i) / 200000.f);
  for (float special :
       {-0.f, -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
        -87.33654f, -87.3365f, -87.3366f, -std::numeric_limits<float>::denorm_min()}) {
    x.insert(x.end(), 16, special);  // in every lane
  }
  float got[16];
  for (size_t i = 0; i < x.size(); i += 16) {
    Exp16Of(x.data() + i, got);
    for (size_t l = 0; l < 16; ++l) {
      const float want = Exp8Of(x[i + l]);
      uint32_t a, b;
      std::memcpy(&a, &got[l], 4);
      std::memcpy(&b, &want, 4);
      ASSERT_EQ(a, b) << "t=" << x[i + l] << " (lane " << l << ")";
    }
  }
}
#endif

TEST_F(CpuOpsTest, SiluMulAddEmbeddingGather) {
  const int n = 5, inter = 9000;  // n * inter > one parallel chunk
  std::vector<float> gu = RandomVec(rng_, n * 2 * inter, -6.f, 6.f), out(n * inter);
  be_->SiluMul(gu.data(), n, inter, out.data());
  std::vector<double> want(n * inter);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < inter; ++j) {
      const double g = gu[i * 2 * inter + j], u = gu[i * 2 * inter + inter + j];
      want[i * inter + j] = g / (1 + std::exp(-g)) * u;
    }
  }
  ExpectNear(out, want, kTol, "silu_mul");

  std::vector<float> x = RandomVec(rng_, 40000), y = RandomVec(rng_, 40000);
  std::vector<double> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = static_cast<double>(x[i]) + y[i];
  be_->Add(x.data(), y.data(), static_cast<int64_t>(x.size()));
  ExpectNear(x, sum, kTol, "add");

  const int vocab = 11, hidden = 6;
  std::vector<float> table = RandomVec(rng_, vocab * hidden);
  std::vector<int32_t> ids = {3, 0, 10, 3};
  std::vector<float> emb(ids.size() * hidden);
  be_->Embedding(ids.data(), 4, table.data(), hidden, emb.data());
  for (size_t i = 0; i < ids.size(); ++i)
    for (int j = 0; j < hidden; ++j) ASSERT_EQ(emb[i * hidden + j], table[ids[i] * hidden + j]);

  std::vector<int32_t> rows = {2, 2, 0};
  std::vector<float> g(rows.size() * hidden);
  be_->GatherRows(emb.data(), rows.data(), 3, hidden, g.data());
  for (size_t r = 0; r < rows.size(); ++r)
    for (int j = 0; j < hidden; ++j) ASSERT_EQ(g[r * hidden + j], emb[rows[r] * hidden + j]);
}

TEST(RopeInvFreqTest, MatchesHuggingFaceValues) {
  // Golden values from transformers' fp32 rope init (default and "llama3").
  RopeParams plain;
  plain.rotary_dim = 64;
  plain.theta = 100000.f;
  std::vector<float> f(32);
  RopeInvFreq(plain, f.data());
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.6978305578231812f);
  EXPECT_FLOAT_EQ(f[17], 0.002206734148785472f);
  EXPECT_FLOAT_EQ(f[31], 1.4330126759887207e-05f);

  RopeParams l3;  // Llama 3.1 8B
  l3.rotary_dim = 128;
  l3.theta = 500000.f;
  l3.llama3_factor = 8.f;
  l3.llama3_low_freq_factor = 1.f;
  l3.llama3_high_freq_factor = 4.f;
  l3.llama3_original_max_position = 8192;
  std::vector<float> g(64);
  RopeInvFreq(l3, g.data());
  EXPECT_FLOAT_EQ(g[0], 1.0f);
  EXPECT_FLOAT_EQ(g[1], 0.8146172165870667f);
  EXPECT_FLOAT_EQ(g[20], 0.016560440883040428f);   // high frequency: unchanged
  EXPECT_FLOAT_EQ(g[30], 0.0013718936825171113f);  // medium: smoothed
  EXPECT_FLOAT_EQ(g[40], 3.428102354519069e-05f);  // low frequency: divided by 8
  EXPECT_FLOAT_EQ(g[63], 3.068925877869333e-07f);
}

// Distinct pages in random order: page_of[s][b] for sequence s, logical block b.
std::vector<int32_t> RandomPages(std::mt19937& rng, int num_blocks) {
  std::vector<int32_t> p(num_blocks);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

TEST_F(CpuOpsTest, RopeRotatesAndWritesPages) {
  for (int rotary_dim : {16, 8}) {  // full rotation and partial (tail untouched)
    const int nh = 4, nkv = 2, hd = 16, bs = 5, num_blocks = 7, nt = 9;
    RopeParams p;
    p.rotary_dim = rotary_dim;
    p.theta = 10000.f;
    std::vector<float> inv(rotary_dim / 2);
    RopeInvFreq(p, inv.data());
    std::vector<float> q = RandomVec(rng_, nt * nh * hd), k = RandomVec(rng_, nt * nkv * hd),
                       v = RandomVec(rng_, nt * nkv * hd);
    const std::vector<float> q0 = q, k0 = k;
    std::vector<int32_t> positions(nt), slots(nt);
    std::vector<int32_t> pages = RandomPages(rng_, num_blocks);
    for (int i = 0; i < nt; ++i) {
      positions[i] = 1000 + 3 * i;  // large positions exercise the fp32 angle
      slots[i] = (i == 4) ? -1 : pages[i / bs] * bs + i % bs;
    }
    const float kSentinel = 12345.f;
    std::vector<float> kc(num_blocks * bs * nkv * hd, kSentinel), vc = kc;
    PagedKv kv{kc.data(), vc.data(), num_blocks, bs, nkv, hd};
    BatchLayout layout;
    layout.positions = positions.data();
    layout.slot_mapping = slots.data();
    layout.num_tokens = nt;
    be_->RopeWriteKv(QkvRows::Dense(q.data(), k.data(), v.data(), nh, nkv, hd), layout, nh,
                     RopeSpec{inv.data(), rotary_dim}, kv);

    auto rotate = [&](const std::vector<float>& x0, int heads) {
      std::vector<double> out(x0.begin(), x0.end());
      const int half = rotary_dim / 2;
      for (int i = 0; i < nt; ++i) {
        for (int h = 0; h < heads; ++h) {
          const float* x = &x0[(i * heads + h) * hd];
          double* o = &out[(i * heads + h) * hd];
          for (int d = 0; d < half; ++d) {
            const float angle = static_cast<float>(positions[i]) * inv[d];  // fp32, as HF
            const double c = std::cos(static_cast<double>(angle)),
                         s = std::sin(static_cast<double>(angle));
            o[d] = x[d] * c - x[d + half] * s;
            o[d + half] = x[d + half] * c + x[d] * s;
          }
        }
      }
      return out;
    };
    ExpectNear(q, rotate(q0, nh), kTol, "rope q");
    std::vector<double> k_want = rotate(k0, nkv);
    ExpectNear(k, k_want, kTol, "rope k");
    std::vector<bool> written(num_blocks * bs, false);
    for (int i = 0; i < nt; ++i) {
      if (slots[i] < 0) continue;
      written[slots[i]] = true;
      for (int j = 0; j < nkv * hd; ++j) {
        ASSERT_EQ(kc[slots[i] * nkv * hd + j], k[i * nkv * hd + j]);
        ASSERT_EQ(vc[slots[i] * nkv * hd + j], v[i * nkv * hd + j]);
      }
    }
    for (int s = 0; s < num_blocks * bs; ++s) {
      if (written[s]) continue;
      for (int j = 0; j < nkv * hd; ++j) ASSERT_EQ(kc[s * nkv * hd + j], kSentinel) << "slot " << s;
    }
  }
}

// One sequence of a paged-attention case: cached tokens before this step and
// new tokens in it.
struct SeqSpec {
  int cached;
  int new_tokens;
};

struct AttentionCase {
  int group;  // num_heads / num_kv_heads
  int block_size;
  int head_dim = 16;
};
void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << "group " << c.group << ", block_size " << c.block_size << ", head_dim " << c.head_dim;
}

class PagedAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(PagedAttentionTest, MatchesDenseReference) {
  const AttentionCase c = GetParam();
  std::mt19937 rng(42 + c.group * 100 + c.block_size);
  std::unique_ptr<Backend> be = MakeCpuBackend(3);
  const int nkv = 2, nh = nkv * c.group, hd = c.head_dim, bs = c.block_size;
  // Decode after a long prefix, a prefill chunk after a cached prefix, a fresh
  // prefill, a single-token prompt, and a chunk across the end of a span of
  // pages after several (attention.cc): one varlen batch.
  const std::vector<SeqSpec> seqs = {{37, 1}, {21, 6}, {0, 13}, {0, 1}, {bs, 1}, {120, 13}};
  const int ns = static_cast<int>(seqs.size());
  int max_blocks = 0, nt = 0, max_ctx = 0, max_q = 0;
  for (const SeqSpec& s : seqs) {
    const int ctx = s.cached + s.new_tokens;
    max_blocks = std::max(max_blocks, (ctx + bs - 1) / bs);
    max_ctx = std::max(max_ctx, ctx);
    max_q = std::max(max_q, s.new_tokens);
    nt += s.new_tokens;
  }
  const int num_blocks = ns * max_blocks + 3;
  const std::vector<int32_t> pages = RandomPages(rng, num_blocks);
  std::vector<int32_t> seq_starts = {0}, context_lens, block_tables(ns * max_blocks, 0), positions;
  for (int s = 0; s < ns; ++s) {
    const int ctx = seqs[s].cached + seqs[s].new_tokens;
    for (int b = 0; b < (ctx + bs - 1) / bs; ++b)
      block_tables[s * max_blocks + b] = pages[s * max_blocks + b];
    for (int j = 0; j < seqs[s].new_tokens; ++j) positions.push_back(seqs[s].cached + j);
    seq_starts.push_back(seq_starts.back() + seqs[s].new_tokens);
    context_lens.push_back(ctx);
  }
  // Random K/V everywhere: stray reads of unowned rows would change the result.
  std::vector<float> kc =
      RandomVec(rng, static_cast<size_t>(num_blocks) * bs * nkv * hd, -2.f, 2.f);
  std::vector<float> vc = RandomVec(rng, kc.size());
  std::vector<float> q = RandomVec(rng, nt * nh * hd, -2.f, 2.f), out(nt * nh * hd, -7.f);
  PagedKv kv{kc.data(), vc.data(), num_blocks, bs, nkv, hd};
  BatchLayout layout;
  layout.seq_starts = seq_starts.data();
  layout.context_lens = context_lens.data();
  layout.block_tables = block_tables.data();
  layout.positions = positions.data();
  layout.num_seqs = ns;
  layout.num_tokens = nt;
  layout.max_blocks_per_seq = max_blocks;
  layout.max_query_len = max_q;
  layout.max_context_len = max_ctx;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  be->PagedAttention(q.data(), int64_t{nh} * hd, layout, kv, nh, scale, out.data());

  std::vector<double> want(out.size());
  for (int s = 0; s < ns; ++s) {
    for (int i = seq_starts[s]; i < seq_starts[s + 1]; ++i) {
      const int n_ctx = positions[i] + 1;  // causal
      for (int h = 0; h < nh; ++h) {
        const int g = h / c.group;
        auto row = [&](const std::vector<float>& cache, int t) {
          const int page = block_tables[s * max_blocks + t / bs];
          return &cache[((static_cast<size_t>(page) * bs + t % bs) * nkv + g) * hd];
        };
        std::vector<double> logits(n_ctx);
        double mx = -1e300;
        for (int t = 0; t < n_ctx; ++t) {
          double dot = 0;
          const float* kr = row(kc, t);
          for (int d = 0; d < hd; ++d) dot += static_cast<double>(q[(i * nh + h) * hd + d]) * kr[d];
          logits[t] = dot * scale;
          mx = std::max(mx, logits[t]);
        }
        double denom = 0;
        for (double& l : logits) denom += (l = std::exp(l - mx));
        for (int d = 0; d < hd; ++d) {
          double acc = 0;
          for (int t = 0; t < n_ctx; ++t) acc += logits[t] * row(vc, t)[d];
          want[(i * nh + h) * hd + d] = acc / denom;
        }
      }
    }
  }
  ExpectNear(out, want, kTol, "paged attention");
}

INSTANTIATE_TEST_SUITE_P(GqaAndBlockSizes, PagedAttentionTest,
                         ::testing::Values(AttentionCase{1, 16}, AttentionCase{3, 16},
                                           AttentionCase{4, 16}, AttentionCase{1, 5},
                                           AttentionCase{3, 5}, AttentionCase{4, 7, 12},
                                           AttentionCase{2, 16, 64}, AttentionCase{2, 96}),
                         [](const ::testing::TestParamInfo<AttentionCase>& info) {
                           return "gqa" + std::to_string(info.param.group) + "_bs" +
                                  std::to_string(info.param.block_size) + "_hd" +
                                  std::to_string(info.param.head_dim);
                         });

}  // namespace
}  // namespace cohost::kernels
