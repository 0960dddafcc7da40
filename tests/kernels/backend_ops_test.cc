// One cross-backend suite: every op of kernels::Backend runs on the CPU
// reference and on the candidate (CUDA device 0) with the same fresh random
// inputs; outputs are poisoned with NaN before each call, read back through
// DownloadF32, and compared elementwise. Skips visibly where no GPU is found.
//
// Inputs are drawn as bf16-representable values, so both backends see the same
// numbers and the candidate's error is its own rounding (bf16 stores, fp32
// accumulation in another order). Tolerances, per candidate compute dtype:
//   bf16: |got - ref| <= 2e-2 + 2e-2 * |ref| elementwise (one bf16 rounding is
//         4e-3 relative; a gemm of k = 512 with |x| <= 1 gives |ref| ~ 8), and
//         ||got - ref|| / ||ref|| <= 1e-2 over the whole output;
//   fp32: 1e-5 + 1e-5 * |ref| and 1e-5.
// A NaN never passes, except where an unwritten page row must stay poisoned.
//
// COHOST_BACKEND_OPS_SELFTEST=1 makes the candidate a second CpuBackend, so
// the harness itself runs on machines without a GPU. COHOST_TEST_SEED=<n>
// replays a failing draw (the seed is printed by every test).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/rope.h"
#include "gtest/gtest.h"

namespace cohost::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The outputs of one op run, read back to host floats.
using Outputs = std::vector<std::vector<float>>;

struct Tolerance {
  double atol;
  double rtol;
  double rel_norm;  // bound on ||got - ref|| / ||ref||
};
constexpr Tolerance kBf16Tol{2e-2, 2e-2, 1e-2};
constexpr Tolerance kF32Tol{1e-5, 1e-5, 1e-5};

// Compares a candidate output with the reference. nan_equal: a NaN in both is
// a match (page rows that must stay unwritten); a NaN in one alone never is.
void ExpectClose(const std::vector<float>& ref, const std::vector<float>& got, const Tolerance& tol,
                 const std::string& what, bool nan_equal = false) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  size_t bad = 0;
  double err2 = 0, ref2 = 0;
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool rn = std::isnan(ref[i]), gn = std::isnan(got[i]);
    bool ok;
    if (rn || gn) {
      ok = nan_equal && rn && gn;
    } else {
      const double d = std::abs(static_cast<double>(got[i]) - ref[i]);
      ok = d <= tol.atol + tol.rtol * std::abs(ref[i]);
      err2 += d * d;
      ref2 += static_cast<double>(ref[i]) * ref[i];
    }
    if (!ok && ++bad <= 5) absl::StrAppend(&first, "\n  [", i, "] ref=", ref[i], " got=", got[i]);
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements differ" << first;
  if (ref2 > 0) {
    EXPECT_LE(std::sqrt(err2 / ref2), tol.rel_norm) << what << ": relative error norm";
  }
}

// One backend and the buffers a test made on it (freed before the backend).
struct Side {
  std::unique_ptr<Backend> be;
  std::vector<DeviceBuffer> bufs;

  void* Alloc(size_t bytes) {
    absl::StatusOr<DeviceBuffer> b = DeviceBuffer::Create(be.get(), bytes);
    if (!b.ok()) {
      ADD_FAILURE() << "Allocate(" << bytes << "): " << b.status();
      return nullptr;
    }
    bufs.push_back(std::move(*b));
    return bufs.back().data();
  }
  // Host floats converted to the compute dtype.
  void* Floats(const std::vector<float>& host) {
    void* p = Alloc(std::max<size_t>(host.size(), 1) * DTypeSize(be->compute_dtype()));
    if (p != nullptr && !host.empty()) {
      absl::Status s = be->UploadF32(p, host.data(), host.size());
      if (!s.ok()) ADD_FAILURE() << "UploadF32: " << s;
    }
    return p;
  }
  void* Poisoned(size_t n) { return Floats(std::vector<float>(n, kNaN)); }
  // Raw bytes: int32 metadata, and fp32 tables such as inv_freq.
  template <typename T>
  T* Raw(const std::vector<T>& host) {
    void* p = Alloc(std::max<size_t>(host.size(), 1) * sizeof(T));
    if (p != nullptr && !host.empty()) {
      absl::Status s = be->CopyToDevice(p, host.data(), host.size() * sizeof(T));
      if (!s.ok()) ADD_FAILURE() << "CopyToDevice: " << s;
    }
    return static_cast<T*>(p);
  }
  std::vector<float> Read(const void* p, size_t n) {
    std::vector<float> out(n, kNaN);
    absl::Status s = be->Synchronize();
    if (s.ok()) s = be->DownloadF32(out.data(), p, n);
    if (!s.ok()) ADD_FAILURE() << "after the op: " << s;
    return out;
  }
};

bool SelfTest() {
  const char* v = std::getenv("COHOST_BACKEND_OPS_SELFTEST");
  return v != nullptr && std::string(v) == "1";
}

uint32_t Seed() {
  if (const char* v = std::getenv("COHOST_TEST_SEED"))
    return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  return std::random_device{}();
}

float RoundBf16(float x) { return Bf16ToF32(F32ToBf16(x)); }

// A host batch of sequences, each with `cached` tokens already in pages and
// `fresh` new tokens, pages drawn at random from a pool with unused extras.
struct SeqSpec {
  int32_t cached;
  int32_t fresh;
};

struct HostBatch {
  std::vector<int32_t> seq_starts, context_lens, block_tables, positions, slot_mapping;
  int32_t num_seqs = 0, num_tokens = 0, max_blocks_per_seq = 0, max_query_len = 0,
          max_context_len = 0, num_blocks = 0;
};

HostBatch MakeBatch(const std::vector<SeqSpec>& seqs, int32_t block_size, int32_t extra_blocks,
                    int32_t padding_tokens, std::mt19937& rng) {
  HostBatch b;
  b.num_seqs = static_cast<int32_t>(seqs.size());
  int32_t total_blocks = 0;
  for (const SeqSpec& s : seqs) {
    const int32_t ctx = s.cached + s.fresh;
    const int32_t blocks = (ctx + block_size - 1) / block_size;
    total_blocks += blocks;
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, blocks);
    b.max_query_len = std::max(b.max_query_len, s.fresh);
    b.max_context_len = std::max(b.max_context_len, ctx);
  }
  b.max_blocks_per_seq += 1;  // a spare column of -1: never read
  b.num_blocks = total_blocks + extra_blocks;
  std::vector<int32_t> pages(b.num_blocks);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  b.block_tables.assign(static_cast<size_t>(b.num_seqs) * b.max_blocks_per_seq, -1);
  b.seq_starts.push_back(0);
  size_t next_page = 0;
  for (int32_t i = 0; i < b.num_seqs; ++i) {
    const SeqSpec& s = seqs[i];
    const int32_t ctx = s.cached + s.fresh;
    int32_t* table = &b.block_tables[static_cast<size_t>(i) * b.max_blocks_per_seq];
    for (int32_t j = 0; j * block_size < ctx; ++j) table[j] = pages[next_page++];
    for (int32_t t = s.cached; t < ctx; ++t) {
      b.positions.push_back(t);
      b.slot_mapping.push_back(table[t / block_size] * block_size + t % block_size);
    }
    b.context_lens.push_back(ctx);
    b.seq_starts.push_back(b.seq_starts.back() + s.fresh);
  }
  for (int32_t i = 0; i < padding_tokens; ++i) {  // outside every run: not cached
    b.positions.push_back(0);
    b.slot_mapping.push_back(-1);
  }
  b.num_tokens = static_cast<int32_t>(b.positions.size());
  return b;
}

// The batch's metadata on one backend.
BatchLayout Upload(Side& side, const HostBatch& b) {
  BatchLayout l;
  l.seq_starts = side.Raw(b.seq_starts);
  l.context_lens = side.Raw(b.context_lens);
  l.block_tables = side.Raw(b.block_tables);
  l.positions = side.Raw(b.positions);
  l.slot_mapping = side.Raw(b.slot_mapping);
  l.num_seqs = b.num_seqs;
  l.num_tokens = b.num_tokens;
  l.max_blocks_per_seq = b.max_blocks_per_seq;
  l.max_query_len = b.max_query_len;
  l.max_context_len = b.max_context_len;
  return l;
}

class BackendOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = Seed();
    rng_.seed(seed_);
    std::cout << "COHOST_TEST_SEED=" << seed_ << "\n";
    ref_.be = MakeCpuBackend(2);
    if (SelfTest()) {
      cand_.be = MakeCpuBackend(1);
    } else {
      absl::StatusOr<std::unique_ptr<Backend>> cuda = MakeCudaBackend(0);
      if (!cuda.ok()) GTEST_SKIP() << "no CUDA device: " << cuda.status();
      cand_.be = std::move(*cuda);
    }
    tol_ = cand_.be->compute_dtype() == DType::kF32 ? kF32Tol : kBf16Tol;
  }

  // Uniform in [lo, hi), rounded to bf16 so both backends hold the same values.
  std::vector<float> Random(size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = RoundBf16(dist(rng_));
    return v;
  }

  // Runs op on both sides; op returns that side's outputs, read back.
  template <typename Op>
  void Compare(Op op, const std::vector<std::string>& names, const Tolerance& tol,
               bool nan_equal = false) {
    Outputs want = op(ref_);
    ASSERT_FALSE(HasFailure()) << "reference run failed";
    Outputs got = op(cand_);
    ASSERT_FALSE(HasFailure()) << "candidate run failed";
    ASSERT_EQ(want.size(), names.size());
    ASSERT_EQ(got.size(), names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      ExpectClose(want[i], got[i], tol, names[i], nan_equal);
      // The reference itself must be finite where the check is strict.
      if (!nan_equal) {
        EXPECT_TRUE(
            std::none_of(want[i].begin(), want[i].end(), [](float x) { return std::isnan(x); }))
            << names[i] << ": reference has NaN";
      }
    }
  }

  uint32_t seed_ = 0;
  std::mt19937 rng_;
  Side ref_, cand_;
  Tolerance tol_ = kF32Tol;
};

TEST_F(BackendOpsTest, CapsAndCopies) {
  BackendCaps caps = cand_.be->Caps();
  EXPECT_FALSE(caps.device_name.empty());
  EXPECT_GT(caps.total_memory, 0u);
  EXPECT_LE(caps.free_memory, caps.total_memory);
  if (cand_.be->kind() == BackendKind::kCuda) {
    EXPECT_EQ(caps.compute_dtype, DType::kBF16);
  }

  std::vector<int32_t> ints(1000);
  std::iota(ints.begin(), ints.end(), -17);
  int32_t* dev = cand_.Raw(ints);
  ASSERT_NE(dev, nullptr);
  std::vector<int32_t> back(ints.size());
  ASSERT_TRUE(cand_.be->CopyToHost(back.data(), dev, back.size() * sizeof(int32_t)).ok());
  EXPECT_EQ(back, ints);

  std::vector<float> x = Random(777, -100.f, 100.f);  // bf16-exact: round trip is exact
  void* px = cand_.Floats(x);
  EXPECT_EQ(cand_.Read(px, x.size()), x);
}

TEST_F(BackendOpsTest, Embedding) {
  for (int32_t hidden : {576, 100}) {  // vector and scalar paths
    const int32_t vocab = 1000, n = 9;
    std::vector<float> table = Random(static_cast<size_t>(vocab) * hidden);
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids) id = std::uniform_int_distribution<int32_t>(0, vocab - 1)(rng_);
    ids[1] = vocab - 1;
    ids[2] = ids[0];
    Compare(
        [&](Side& s) {
          void* out = s.Poisoned(static_cast<size_t>(n) * hidden);
          s.be->Embedding(s.Raw(ids), n, s.Floats(table), hidden, out);
          return Outputs{s.Read(out, static_cast<size_t>(n) * hidden)};
        },
        {absl::StrCat("embedding hidden=", hidden)}, tol_);
  }
}

TEST_F(BackendOpsTest, GatherRows) {
  const int32_t n = 20, width = 576;
  std::vector<float> x = Random(static_cast<size_t>(n) * width);
  std::vector<int32_t> rows = {19, 0, 5, 5, 12};
  const int32_t num_rows = static_cast<int32_t>(rows.size());
  Compare(
      [&](Side& s) {
        void* out = s.Poisoned(static_cast<size_t>(num_rows) * width);
        s.be->GatherRows(s.Floats(x), s.Raw(rows), num_rows, width, out);
        return Outputs{s.Read(out, static_cast<size_t>(num_rows) * width)};
      },
      {"gather rows"}, tol_);
}

TEST_F(BackendOpsTest, RmsNorm) {
  for (int32_t hidden : {576, 4096, 100}) {
    for (bool with_residual : {false, true}) {
      const int32_t n = 5;
      const size_t total = static_cast<size_t>(n) * hidden;
      std::vector<float> x = Random(total, -2.f, 2.f), res = Random(total, -2.f, 2.f);
      std::vector<float> w = Random(hidden, 0.5f, 1.5f);
      const std::string tag = absl::StrCat(" hidden=", hidden, with_residual ? " +residual" : "");
      Compare(
          [&](Side& s) {
            void* r = with_residual ? s.Floats(res) : nullptr;
            void* out = s.Poisoned(total);
            s.be->RmsNorm(s.Floats(x), r, s.Floats(w), n, hidden, 1e-5f, out);
            Outputs outs{s.Read(out, total)};
            outs.push_back(with_residual ? s.Read(r, total) : x);
            return outs;
          },
          {"rmsnorm out" + tag, "rmsnorm residual" + tag}, tol_);
    }
  }
}

TEST_F(BackendOpsTest, Gemm) {
  struct Shape {
    int32_t m, n, k;
    bool bias;
  };
  for (const Shape& sh :
       {Shape{1, 576, 576, false}, Shape{7, 1536, 512, false}, Shape{33, 49, 512, true},
        Shape{64, 192, 576, true}, Shape{5, 3, 7, true}, Shape{130, 256, 1024, false}}) {
    std::vector<float> a = Random(static_cast<size_t>(sh.m) * sh.k);
    std::vector<float> w = Random(static_cast<size_t>(sh.n) * sh.k);
    std::vector<float> bias = Random(sh.n);
    const size_t total = static_cast<size_t>(sh.m) * sh.n;
    Compare(
        [&](Side& s) {
          void* c = s.Poisoned(total);
          s.be->Gemm(s.Floats(a), s.Floats(w), sh.bias ? s.Floats(bias) : nullptr, sh.m, sh.n, sh.k,
                     c);
          return Outputs{s.Read(c, total)};
        },
        {absl::StrCat("gemm m=", sh.m, " n=", sh.n, " k=", sh.k, sh.bias ? " +bias" : "")}, tol_);
  }
}

TEST_F(BackendOpsTest, Add) {
  for (int64_t n : {int64_t{4096}, int64_t{1001}}) {
    std::vector<float> x = Random(n), y = Random(n);
    Compare(
        [&](Side& s) {
          void* px = s.Floats(x);
          s.be->Add(px, s.Floats(y), n);
          return Outputs{s.Read(px, n)};
        },
        {absl::StrCat("add n=", n)}, tol_);
  }
}

TEST_F(BackendOpsTest, SiluMul) {
  for (int32_t inter : {1536, 37}) {
    const int32_t n = 5;
    std::vector<float> gate_up = Random(static_cast<size_t>(n) * 2 * inter, -4.f, 4.f);
    const size_t total = static_cast<size_t>(n) * inter;
    Compare(
        [&](Side& s) {
          void* out = s.Poisoned(total);
          s.be->SiluMul(s.Floats(gate_up), n, inter, out);
          return Outputs{s.Read(out, total)};
        },
        {absl::StrCat("silu_mul inter=", inter)}, tol_);
  }
}

TEST_F(BackendOpsTest, RopeWriteKv) {
  struct Case {
    int32_t num_heads, num_kv_heads, head_dim, rotary_dim;
    float llama3_factor;
  };
  for (const Case& c :
       {Case{9, 3, 64, 64, 0.f}, Case{8, 2, 128, 128, 8.f}, Case{4, 4, 64, 32, 0.f}}) {
    const int32_t bs = 16;
    // Positions up to ~5000 so that angles need range reduction.
    HostBatch b = MakeBatch({{0, 5}, {4990, 3}, {37, 1}}, bs, 3, 2, rng_);
    const size_t q_n = static_cast<size_t>(b.num_tokens) * c.num_heads * c.head_dim;
    const size_t kv_n = static_cast<size_t>(b.num_tokens) * c.num_kv_heads * c.head_dim;
    const size_t page_n = static_cast<size_t>(b.num_blocks) * bs * c.num_kv_heads * c.head_dim;
    std::vector<float> q = Random(q_n, -2.f, 2.f), k = Random(kv_n, -2.f, 2.f), v = Random(kv_n);
    RopeParams rp;
    rp.rotary_dim = c.rotary_dim;
    rp.theta = 100000.f;
    rp.llama3_factor = c.llama3_factor;
    std::vector<float> inv_freq(c.rotary_dim / 2);
    RopeInvFreq(rp, inv_freq.data());
    const std::string tag = absl::StrCat(" heads=", c.num_heads, "/", c.num_kv_heads,
                                         " hd=", c.head_dim, " rot=", c.rotary_dim);
    Compare(
        [&](Side& s) {
          void* pq = s.Floats(q);
          void* pk = s.Floats(k);
          PagedKv kv{s.Poisoned(page_n), s.Poisoned(page_n), b.num_blocks, bs,
                     c.num_kv_heads,     c.head_dim};
          s.be->RopeWriteKv(pq, pk, s.Floats(v), Upload(s, b), c.num_heads, s.Raw(inv_freq),
                            c.rotary_dim, kv);
          return Outputs{s.Read(pq, q_n), s.Read(pk, kv_n), s.Read(kv.k, page_n),
                         s.Read(kv.v, page_n)};
        },
        // nan_equal: page rows the reference left poisoned (padding tokens,
        // unused slots) must stay poisoned on the candidate, and no others.
        {"rope q" + tag, "rope k" + tag, "k pages" + tag, "v pages" + tag}, tol_,
        /*nan_equal=*/true);
  }
}

struct AttnCase {
  std::string name;
  int32_t num_heads, num_kv_heads, head_dim;
  std::vector<SeqSpec> seqs;
  int32_t padding_tokens = 0;
};

void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }

class PagedAttentionTest : public BackendOpsTest, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(PagedAttentionTest, MatchesReference) {
  const AttnCase& c = GetParam();
  const int32_t bs = 16;
  HostBatch b = MakeBatch(c.seqs, bs, /*extra_blocks=*/5, c.padding_tokens, rng_);
  const size_t row = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  // Pages hold random K/V at every cached position and NaN everywhere else
  // (unused pages, rows past context_len): a kernel that reads them fails.
  std::vector<float> k_pages(static_cast<size_t>(b.num_blocks) * bs * row, kNaN);
  std::vector<float> v_pages = k_pages;
  for (int32_t s = 0; s < b.num_seqs; ++s) {
    for (int32_t t = 0; t < b.context_lens[s]; ++t) {
      const int64_t slot =
          static_cast<int64_t>(b.block_tables[s * b.max_blocks_per_seq + t / bs]) * bs + t % bs;
      std::vector<float> kr = Random(row, -1.f, 1.f), vr = Random(row);
      std::copy(kr.begin(), kr.end(), k_pages.begin() + slot * row);
      std::copy(vr.begin(), vr.end(), v_pages.begin() + slot * row);
    }
  }
  // Larger q makes the softmax peaked, so a wrong mask or page shows.
  const size_t q_n = static_cast<size_t>(b.num_tokens) * c.num_heads * c.head_dim;
  std::vector<float> q = Random(q_n, -3.f, 3.f);
  const float scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  Compare(
      [&](Side& s) {
        PagedKv kv{s.Floats(k_pages), s.Floats(v_pages), b.num_blocks, bs,
                   c.num_kv_heads,    c.head_dim};
        void* out = s.Poisoned(q_n);
        s.be->PagedAttention(s.Floats(q), Upload(s, b), kv, c.num_heads, scale, out);
        return Outputs{s.Read(out, q_n)};
      },
      {"attention " + c.name}, tol_);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PagedAttentionTest,
    ::testing::Values(
        // Decode: one new token per sequence, contexts across page boundaries.
        AttnCase{"decode_gqa3_hd64", 9, 3, 64, {{0, 1}, {16, 1}, {40, 1}, {299, 1}}},
        AttnCase{"decode_gqa4_hd128", 8, 2, 128, {{15, 1}, {130, 1}, {700, 1}}},
        // Prefill chunks over a cached prefix, and from scratch.
        AttnCase{"prefill_prefix_gqa3_hd64", 9, 3, 64, {{48, 40}}},
        AttnCase{"prefill_scratch_gqa4_hd128", 8, 2, 128, {{0, 67}}},
        // Mixed varlen batch: decodes and chunks together, plus padding tokens.
        AttnCase{"mixed_gqa3_hd64", 9, 3, 64, {{100, 1}, {5, 70}, {0, 3}, {33, 1}}, 2},
        AttnCase{"mixed_gqa4_hd128", 32, 8, 128, {{17, 20}, {64, 1}, {0, 16}}},
        AttnCase{"mha_hd64", 4, 4, 64, {{31, 2}, {0, 1}}}),
    [](const ::testing::TestParamInfo<AttnCase>& info) { return info.param.name; });

TEST_F(BackendOpsTest, UnsupportedHeadDimFailsLoudly) {
  if (cand_.be->kind() != BackendKind::kCuda) GTEST_SKIP() << "CUDA-only dispatch check";
  HostBatch b = MakeBatch({{3, 1}}, 16, 0, 0, rng_);
  const int32_t hd = 96;
  const size_t page_n = static_cast<size_t>(b.num_blocks) * 16 * hd;
  PagedKv kv{cand_.Poisoned(page_n), cand_.Poisoned(page_n), b.num_blocks, 16, 1, hd};
  void* q = cand_.Floats(Random(hd));
  void* out = cand_.Poisoned(hd);
  ASSERT_FALSE(HasFailure());
  cand_.be->PagedAttention(q, Upload(cand_, b), kv, 1, 0.1f, out);
  absl::Status s = cand_.be->Synchronize();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
}

TEST_F(BackendOpsTest, AllocationFailureIsRecoverable) {
  if (cand_.be->kind() != BackendKind::kCuda) GTEST_SKIP() << "CUDA-only: host overcommit varies";
  absl::StatusOr<void*> huge = cand_.be->Allocate(size_t{1} << 50);  // 1 PiB
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  // Out of memory is not sticky: the backend keeps working.
  std::vector<float> x = Random(64), y = Random(64);
  void* px = cand_.Floats(x);
  cand_.be->Add(px, cand_.Floats(y), 64);
  std::vector<float> got = cand_.Read(px, 64);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], x[i] + y[i], 1e-2) << i;
}

}  // namespace
}  // namespace cohost::kernels
