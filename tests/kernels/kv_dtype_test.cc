// The CPU's paged KV cache in fp16 and bf16 (PagedKv::dtype): rows round as
// the scalar conversions do on every kernel cpuid may pick, RopeWriteKv
// stores those rounded rows, and attention over narrow pages is, bit for bit,
// attention over fp32 pages holding the same values.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/rope.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/kv_narrow.h"
#include "kernels/cpu/quant/cpu_features.h"
#include "kernels/cpu/thread_pool.h"

namespace cohost::kernels {
namespace {

using cpu::HostKvNarrow;
using cpu::KvNarrowFn;
using cpu::ScalarKvNarrow;

constexpr DType kNarrow[] = {DType::kF16, DType::kBF16};

std::vector<float> RandomVec(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// n elements of `dtype` (2 bytes each) from fp32.
std::vector<uint16_t> Narrow(KvNarrowFn narrow, const std::vector<float>& x, DType dtype) {
  std::vector<uint16_t> out(x.size());
  narrow(x.data(), static_cast<int32_t>(x.size()), dtype, out.data());
  return out;
}

std::vector<float> Widen(const std::vector<uint16_t>& x, DType dtype) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    out[i] = dtype == DType::kF16 ? F16ToF32(x[i]) : Bf16ToF32(x[i]);
  }
  return out;
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(KvNarrowTest, HostKernelRoundsAsTheScalarConversions) {
  if (HostKvNarrow() == ScalarKvNarrow()) {
    GTEST_SKIP() << "this CPU has no F16C/AVX2 (" << cpu::HostCpuFeatures().Summary()
                 << "): the scalar conversions are the only kernel";
  }
  // Every fp16 and bf16 edge: zeros, infinities, NaN, fp16's largest finite
  // value and the first that rounds to infinity, fp16 subnormals and
  // underflow, fp32 subnormals, ties; then values over many binades.
  std::vector<float> x = {0.f,
                          -0.f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          65504.f,
                          65519.f,
                          65520.f,
                          -70000.f,
                          6.0e-5f,
                          1.0e-7f,
                          3.0e-8f,
                          1.0e-40f,
                          std::numeric_limits<float>::min(),
                          3.0e38f,
                          1.00048828125f /* fp16 tie */,
                          1.00390625f /* bf16 tie */,
                          1.0f + 3.0f / 1024};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mant(-1.f, 1.f);
  std::uniform_int_distribution<int> exp(-30, 20);
  for (int i = 0; i < 400; ++i) x.push_back(std::ldexp(mant(rng), exp(rng)));
  for (DType t : kNarrow) {
    // Every length up to 37: the eight-wide loops and their scalar tails.
    for (size_t n = 0; n <= 37; ++n) {
      for (size_t at = 0; at + n <= x.size(); at += 41) {
        const std::vector<float> part(x.begin() + at, x.begin() + at + n);
        const std::vector<uint16_t> want = Narrow(ScalarKvNarrow(), part, t);
        const std::vector<uint16_t> got = Narrow(HostKvNarrow(), part, t);
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(got[i], want[i]) << DTypeName(t) << " narrowing " << part[i];
        }
      }
    }
  }
}

TEST(KvNarrowTest, NarrowingRoundsToNearest) {
  for (KvNarrowFn narrow : {ScalarKvNarrow(), HostKvNarrow()}) {
    const std::vector<float> x = {1.f, -2.5f, 65504.f, 65520.f, 1.0f + 1.0f / 4096, 3.0e-8f};
    const std::vector<float> f16 = Widen(Narrow(narrow, x, DType::kF16), DType::kF16);
    EXPECT_EQ(f16[0], 1.f);
    EXPECT_EQ(f16[1], -2.5f);
    EXPECT_EQ(f16[2], 65504.f);
    EXPECT_EQ(f16[3], std::numeric_limits<float>::infinity());  // past the largest finite
    EXPECT_EQ(f16[4], 1.f);                                     // below half an ulp (2^-10)
    EXPECT_EQ(f16[5], std::ldexp(1.f, -24));                    // the nearest subnormal
    const std::vector<float> bf16 = Widen(Narrow(narrow, x, DType::kBF16), DType::kBF16);
    EXPECT_EQ(bf16[1], -2.5f);
    EXPECT_EQ(bf16[2], 65536.f);  // bf16 has fp32's range and 8 significant bits
    EXPECT_EQ(bf16[4], 1.f);
  }
}

// A varlen batch over shuffled pages: a decode after a long prefix, a
// prefill chunk after a cached prefix, a fresh prefill.
struct PagedBatch {
  std::vector<int32_t> seq_starts = {0}, context_lens, block_tables, positions, slots;
  int32_t num_blocks = 0, max_blocks = 0;
  BatchLayout layout;

  PagedBatch(int32_t bs, std::mt19937& rng) {
    // cached, new. The last three chunks cross the end of a span of pages
    // (attention.cc), each with a tile row whose context ends right at a
    // span's start (bs 16 and 7: 64 and 63 keys a span; bs 5: 60).
    const std::vector<std::pair<int, int>> seqs = {{37, 1},  {21, 6}, {0, 13},
                                                   {124, 9}, {62, 4}, {58, 4}};
    for (const auto& [cached, fresh] : seqs) {
      max_blocks = std::max(max_blocks, (cached + fresh + bs - 1) / bs);
    }
    num_blocks = static_cast<int32_t>(seqs.size()) * max_blocks + 2;
    std::vector<int32_t> pages(num_blocks);
    for (int32_t i = 0; i < num_blocks; ++i) pages[i] = i;
    std::shuffle(pages.begin(), pages.end(), rng);
    block_tables.assign(seqs.size() * max_blocks, 0);
    int32_t max_q = 0, max_ctx = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const auto [cached, fresh] = seqs[s];
      for (int32_t b = 0; b < max_blocks; ++b) {
        block_tables[s * max_blocks + b] = pages[s * max_blocks + b];
      }
      for (int32_t j = 0; j < fresh; ++j) {
        const int32_t t = cached + j;
        positions.push_back(t);
        slots.push_back(block_tables[s * max_blocks + t / bs] * bs + t % bs);
      }
      seq_starts.push_back(seq_starts.back() + fresh);
      context_lens.push_back(cached + fresh);
      max_q = std::max(max_q, fresh);
      max_ctx = std::max(max_ctx, cached + fresh);
    }
    layout.seq_starts = seq_starts.data();
    layout.context_lens = context_lens.data();
    layout.block_tables = block_tables.data();
    layout.positions = positions.data();
    layout.slot_mapping = slots.data();
    layout.num_seqs = static_cast<int32_t>(seqs.size());
    layout.num_tokens = seq_starts.back();
    layout.max_blocks_per_seq = max_blocks;
    layout.max_query_len = max_q;
    layout.max_context_len = max_ctx;
  }
};

// Token i of sequence s of a PagedBatch alone: a one-token sequence whose
// context ends at it.
struct LoneToken {
  int32_t starts[2] = {0, 1};
  int32_t ctx = 0;
  BatchLayout layout;

  LoneToken(const PagedBatch& b, int32_t s, int32_t i) : ctx(b.positions[i] + 1) {
    layout.seq_starts = starts;
    layout.context_lens = &ctx;
    layout.block_tables = b.block_tables.data() + static_cast<int64_t>(s) * b.max_blocks;
    layout.positions = &b.positions[i];
    layout.num_seqs = 1;
    layout.num_tokens = 1;
    layout.max_blocks_per_seq = b.max_blocks;
    layout.max_query_len = 1;
    layout.max_context_len = ctx;
  }
  LoneToken(const LoneToken&) = delete;  // layout points into it
  LoneToken& operator=(const LoneToken&) = delete;
};

// What the attention tests share: a PagedBatch of 6 query heads over 2 KV
// heads, random K and V on every page row (read or not) and random queries.
struct AttentionCase {
  static constexpr int32_t kHeads = 6, kKvHeads = 2;
  const int32_t bs, hd;
  PagedBatch b;
  const size_t q_n;
  const std::vector<float> kc, vc, q;
  const float scale;

  AttentionCase(int32_t block_size, int32_t head_dim, std::mt19937& rng)
      : bs(block_size),
        hd(head_dim),
        b(block_size, rng),
        q_n(static_cast<size_t>(b.layout.num_tokens) * kHeads * hd),
        kc(RandomVec(rng, PageElements(), -2.f, 2.f)),
        vc(RandomVec(rng, PageElements(), -2.f, 2.f)),
        q(RandomVec(rng, q_n, -2.f, 2.f)),
        scale(1.f / std::sqrt(static_cast<float>(hd))) {}
  AttentionCase(const AttentionCase&) = delete;  // b's layout points into b
  AttentionCase& operator=(const AttentionCase&) = delete;

  size_t PageElements() const { return static_cast<size_t>(b.num_blocks) * bs * kKvHeads * hd; }
  // Pages of dtype t holding kc and vc's values (narrowed into kn and vn
  // where t is 16-bit).
  PagedKv Pages(DType t, std::vector<uint16_t>& kn, std::vector<uint16_t>& vn) const {
    PagedKv kv{const_cast<float*>(kc.data()),
               const_cast<float*>(vc.data()),
               b.num_blocks,
               bs,
               kKvHeads,
               hd,
               t};
    if (t != DType::kF32) {
      kn = Narrow(ScalarKvNarrow(), kc, t);
      vn = Narrow(ScalarKvNarrow(), vc, t);
      kv.k = kn.data();
      kv.v = vn.data();
    }
    return kv;
  }
};

struct Shape {
  int32_t block_size, head_dim;
};

class KvDtypeTest : public ::testing::TestWithParam<Shape> {
 protected:
  std::unique_ptr<Backend> be_ = MakeCpuBackend(3);
  std::mt19937 rng_{99};
};

TEST_P(KvDtypeTest, RopeStoresRoundedRows) {
  const auto [bs, hd] = GetParam();
  const int32_t nh = 6, nkv = 2;
  PagedBatch b(bs, rng_);
  const int32_t nt = b.layout.num_tokens;
  const size_t page_n = static_cast<size_t>(b.num_blocks) * bs * nkv * hd;
  RopeParams rp;
  rp.rotary_dim = hd;
  std::vector<float> inv(hd / 2);
  RopeInvFreq(rp, inv.data());
  const std::vector<float> q0 = RandomVec(rng_, static_cast<size_t>(nt) * nh * hd, -3.f, 3.f);
  const std::vector<float> k0 = RandomVec(rng_, static_cast<size_t>(nt) * nkv * hd, -3.f, 3.f);
  const std::vector<float> v = RandomVec(rng_, k0.size(), -3.f, 3.f);

  std::vector<float> q32 = q0, k32 = k0, kc32(page_n, 0.f), vc32(page_n, 0.f);
  be_->RopeWriteKv(QkvRows::Dense(q32.data(), k32.data(), v.data(), nh, nkv, hd), b.layout, nh,
                   RopeSpec{inv.data(), hd},
                   PagedKv{kc32.data(), vc32.data(), b.num_blocks, bs, nkv, hd, DType::kF32});
  for (DType t : kNarrow) {
    constexpr uint16_t kSentinel = 0xabcd;
    std::vector<float> q = q0, k = k0;
    std::vector<uint16_t> kc(page_n, kSentinel), vc(page_n, kSentinel);
    be_->RopeWriteKv(QkvRows::Dense(q.data(), k.data(), v.data(), nh, nkv, hd), b.layout, nh,
                     RopeSpec{inv.data(), hd},
                     PagedKv{kc.data(), vc.data(), b.num_blocks, bs, nkv, hd, t});
    EXPECT_EQ(q, q32) << DTypeName(t);
    EXPECT_EQ(k, k32) << DTypeName(t);
    const std::vector<uint16_t> kc_want = Narrow(ScalarKvNarrow(), kc32, t);
    const std::vector<uint16_t> vc_want = Narrow(ScalarKvNarrow(), vc32, t);
    std::vector<bool> written(page_n / (nkv * hd), false);
    for (int32_t slot : b.slots) written[slot] = true;
    for (size_t i = 0; i < page_n; ++i) {
      const bool w = written[i / (nkv * hd)];
      ASSERT_EQ(kc[i], w ? kc_want[i] : kSentinel) << DTypeName(t) << " k element " << i;
      ASSERT_EQ(vc[i], w ? vc_want[i] : kSentinel) << DTypeName(t) << " v element " << i;
    }
  }
}

TEST_P(KvDtypeTest, AttentionReadsNarrowPagesAsTheirFp32Values) {
  const auto [bs, hd] = GetParam();
  const int32_t nh = AttentionCase::kHeads, nkv = AttentionCase::kKvHeads;
  const AttentionCase c(bs, hd, rng_);
  const PagedBatch& b = c.b;
  std::vector<float> exact(c.q_n);
  be_->PagedAttention(c.q.data(), int64_t{nh} * hd, b.layout,
                      PagedKv{const_cast<float*>(c.kc.data()), const_cast<float*>(c.vc.data()),
                              b.num_blocks, bs, nkv, hd, DType::kF32},
                      nh, c.scale, exact.data());
  for (DType t : kNarrow) {
    std::vector<uint16_t> kn = Narrow(ScalarKvNarrow(), c.kc, t),
                          vn = Narrow(ScalarKvNarrow(), c.vc, t);
    std::vector<float> kw = Widen(kn, t), vw = Widen(vn, t);
    std::vector<float> narrow(c.q_n, -7.f), wide(c.q_n, -7.f);
    be_->PagedAttention(c.q.data(), int64_t{nh} * hd, b.layout,
                        PagedKv{kn.data(), vn.data(), b.num_blocks, bs, nkv, hd, t}, nh, c.scale,
                        narrow.data());
    be_->PagedAttention(c.q.data(), int64_t{nh} * hd, b.layout,
                        PagedKv{kw.data(), vw.data(), b.num_blocks, bs, nkv, hd, DType::kF32}, nh,
                        c.scale, wide.data());
    // fp16 keeps 11 significant bits, bf16 8: the output moves by about that.
    const float tol = t == DType::kF16 ? 2e-3f : 2e-2f;
    for (size_t i = 0; i < c.q_n; ++i) {
      ASSERT_EQ(Bits(narrow[i]), Bits(wide[i])) << DTypeName(t) << " output " << i;
      ASSERT_NEAR(narrow[i], exact[i], tol) << DTypeName(t) << " output " << i;
    }
  }
}

// A prefill chunk's tokens are attended in tiles of several query rows
// (kernels/cpu/attention_rows.h); each row's output must have the bits the
// same token gets attended alone, as a decode would, for every page dtype.
TEST_P(KvDtypeTest, EachRowOfAChunkGetsTheBitsItGetsAlone) {
  const auto [bs, hd] = GetParam();
  const int32_t nh = AttentionCase::kHeads;
  const AttentionCase c(bs, hd, rng_);
  const PagedBatch& b = c.b;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> kn, vn;
    const PagedKv kv = c.Pages(t, kn, vn);
    std::vector<float> together(c.q_n);
    be_->PagedAttention(c.q.data(), int64_t{nh} * hd, b.layout, kv, nh, c.scale, together.data());
    for (int32_t s = 0; s < b.layout.num_seqs; ++s) {
      for (int32_t i = b.seq_starts[s]; i < b.seq_starts[s + 1]; ++i) {
        const LoneToken one(b, s, i);
        std::vector<float> alone(static_cast<size_t>(nh) * hd);
        be_->PagedAttention(c.q.data() + static_cast<int64_t>(i) * nh * hd, int64_t{nh} * hd,
                            one.layout, kv, nh, c.scale, alone.data());
        for (int32_t e = 0; e < nh * hd; ++e) {
          ASSERT_EQ(Bits(alone[e]), Bits(together[static_cast<int64_t>(i) * nh * hd + e]))
              << DTypeName(t) << " token " << i << " element " << e;
        }
      }
    }
  }
}

// Attention's rows on every path this CPU has past the portable one (AVX2;
// AVX-512, whose registers hold two keys' chains: attention_rows_avx512.h)
// and on pools of several sizes (which decide how many query heads of a KV
// group share a tile: attention.cc; a lone decode token takes its whole
// group on one thread and one head a tile on three) give every output the
// same bits.
TEST_P(KvDtypeTest, AttentionHasTheSameBitsOnEveryPathAndPool) {
  const cpu::CpuFeatures& f = cpu::HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c) {
    GTEST_SKIP() << "this CPU has no AVX2/FMA/F16C (" << f.Summary() << ")";
  }
  const auto [bs, hd] = GetParam();
  const int32_t nh = AttentionCase::kHeads;
  const AttentionCase c(bs, hd, rng_);
  const PagedBatch& b = c.b;
  std::vector<cpu::KernelCap> caps = {cpu::KernelCap::kAvx2};
  if (f.avx512f) {
    caps.push_back(cpu::KernelCap::kAll);
  } else {
    std::printf("[ SKIPPED  ] the AVX-512 rows: this CPU has no AVX-512F (%s)\n",
                f.Summary().c_str());
  }
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> kn, vn;
    const PagedKv kv = c.Pages(t, kn, vn);
    const LoneToken one(b, 0, 0);  // the first sequence's one decode token
    std::vector<float> first, first_one;
    for (int threads : {1, 3, 8}) {
      cpu::ThreadPool pool(threads);
      for (cpu::KernelCap cap : caps) {
        std::vector<float> out(c.q_n, -7.f), out_one(static_cast<size_t>(nh) * hd, -7.f);
        cpu::PagedAttention(c.q.data(), int64_t{nh} * hd, b.layout, kv, nh, c.scale, out.data(),
                            pool, cap);
        cpu::PagedAttention(c.q.data(), int64_t{nh} * hd, one.layout, kv, nh, c.scale,
                            out_one.data(), pool, cap);
        if (first.empty()) {
          first = out;
          first_one = out_one;
          continue;
        }
        for (size_t i = 0; i < c.q_n; ++i) {
          ASSERT_EQ(Bits(out[i]), Bits(first[i]))
              << DTypeName(t) << " threads " << threads << " cap " << static_cast<int>(cap)
              << " output " << i;
        }
        for (size_t i = 0; i < out_one.size(); ++i) {
          ASSERT_EQ(Bits(out_one[i]), Bits(first_one[i]))
              << DTypeName(t) << " threads " << threads << " cap " << static_cast<int>(cap)
              << " the lone token's output " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(PagesAndHeads, KvDtypeTest,
                         ::testing::Values(Shape{16, 64}, Shape{5, 12}, Shape{7, 128}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return "bs" + std::to_string(info.param.block_size) + "_hd" +
                                  std::to_string(info.param.head_dim);
                         });

TEST(KvDtypeBackendTest, CpuBackendReportsItsKvDtype) {
  EXPECT_EQ(MakeCpuBackend(1)->kv_dtype(), DType::kF32);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::unique_ptr<Backend> be = MakeCpuBackend(1, t);
    EXPECT_EQ(be->kv_dtype(), t);
    EXPECT_EQ(be->compute_dtype(), DType::kF32);
  }
}

}  // namespace
}  // namespace cohost::kernels
