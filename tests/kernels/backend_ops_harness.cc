// OpChecks: each op on the candidate backend against the naive reference, with
// NaN-poisoned outputs, bf16-representable random inputs and varied shapes
// (vector and scalar paths, GQA, paged prefixes, padding tokens).
#include "backend_ops_harness.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <random>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/rope.h"
#include "gtest/gtest.h"
#include "naive_ops.h"

namespace cohost::kernels::backend_ops {

Tolerance ToleranceFor(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return kF32Tol;
    case DType::kBF16:
      return kBf16Tol;
    default:
      ADD_FAILURE() << "no tolerance derived for compute dtype " << DTypeName(dtype);
      return kExact;
  }
}

Tolerance GemmTolerance(const Tolerance& tol, int32_t k, int roundoffs) {
  Tolerance t = tol;
  t.atol = std::max(t.atol, roundoffs * k * kF32Roundoff);
  return t;
}

void ExpectClose(const std::vector<float>& want, const std::vector<float>& got,
                 const Tolerance& tol, const std::string& what, bool nan_equal) {
  ASSERT_EQ(want.size(), got.size()) << what << ": output sizes differ";
  size_t bad = 0;
  double err2 = 0, want2 = 0;
  std::string first;
  for (size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = nan_equal && std::isnan(w) && std::isnan(g);
    } else {
      // An infinity on either side makes d inf or NaN: never within tolerance.
      const double d = std::abs(g - w);
      ok = d <= tol.atol + tol.rtol * std::abs(w);
      err2 += d * d;
      want2 += w * w;
    }
    if (!ok && ++bad <= 5) absl::StrAppend(&first, "\n  [", i, "] want=", w, " got=", g);
  }
  // One failure per output, so a test can count what the harness caught.
  // An all-zero reference has no relative norm; the elementwise bound covers it.
  const double rel_norm = want2 > 0 ? std::sqrt(err2 / want2) : 0.0;
  if (bad > 0 || !(rel_norm <= tol.rel_norm)) {
    ADD_FAILURE() << what << ": " << bad << " of " << want.size() << " elements differ"
                  << " (atol " << tol.atol << ", rtol " << tol.rtol << "); relative error norm "
                  << rel_norm << " (max " << tol.rel_norm << ")" << first;
  }
}

uint32_t SeedFromEnv() {
  if (const char* v = std::getenv("COHOST_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  return std::random_device{}();
}

void* Arena::Alloc(size_t bytes) {
  absl::StatusOr<DeviceBuffer> b = DeviceBuffer::Create(be.get(), std::max<size_t>(bytes, 1));
  if (!b.ok()) {
    ADD_FAILURE() << "Allocate(" << bytes << "): " << b.status();
    return nullptr;
  }
  bufs.push_back(std::move(*b));
  return bufs.back().data();
}

void* Arena::Floats(const std::vector<float>& host, size_t offset) {
  const size_t elem = DTypeSize(be->compute_dtype());
  char* base = static_cast<char*>(Alloc((host.size() + offset) * elem));
  if (base == nullptr) return nullptr;
  void* p = base + offset * elem;
  if (!host.empty()) {
    absl::Status s = be->UploadF32(p, host.data(), host.size());
    if (!s.ok()) ADD_FAILURE() << "UploadF32: " << s;
  }
  return p;
}

void* Arena::RawBytes(const void* host, size_t bytes) {
  void* p = Alloc(bytes);
  if (p != nullptr && bytes > 0) {
    absl::Status s = be->CopyToDevice(p, host, bytes);
    if (!s.ok()) ADD_FAILURE() << "CopyToDevice: " << s;
  }
  return p;
}

std::vector<float> Arena::Read(const void* p, size_t n) {
  std::vector<float> out(n, kNaN);
  absl::Status s = be->Synchronize();
  if (s.ok()) s = be->DownloadF32(out.data(), p, n);
  if (!s.ok()) ADD_FAILURE() << "after the op: " << s;
  return out;
}

BatchLayout HostBatch::Host() const {
  BatchLayout l;
  l.seq_starts = seq_starts.data();
  l.context_lens = context_lens.data();
  l.block_tables = block_tables.data();
  l.positions = positions.data();
  l.slot_mapping = slot_mapping.data();
  l.num_seqs = num_seqs;
  l.num_tokens = num_tokens;
  l.max_blocks_per_seq = max_blocks_per_seq;
  l.max_query_len = max_query_len;
  l.max_context_len = max_context_len;
  return l;
}

BatchLayout HostBatch::Upload(Arena& arena) const {
  BatchLayout l = Host();
  l.seq_starts = arena.Raw(seq_starts);
  l.context_lens = arena.Raw(context_lens);
  l.block_tables = arena.Raw(block_tables);
  l.positions = arena.Raw(positions);
  l.slot_mapping = arena.Raw(slot_mapping);
  return l;
}

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

void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }

std::vector<AttnCase> AttentionCases() {
  return {
      // Decode: one new token per sequence, contexts across page boundaries.
      {"decode_gqa3_hd64", 9, 3, 64, {{0, 1}, {16, 1}, {40, 1}, {299, 1}}},
      {"decode_gqa4_hd128", 8, 2, 128, {{15, 1}, {130, 1}, {700, 1}}},
      // Prefill chunks over a cached prefix, and from scratch.
      {"prefill_prefix_gqa3_hd64", 9, 3, 64, {{48, 40}}},
      {"prefill_scratch_gqa4_hd128", 8, 2, 128, {{0, 67}}},
      // Mixed varlen batch: decodes and chunks together, plus padding tokens.
      {"mixed_gqa3_hd64", 9, 3, 64, {{100, 1}, {5, 70}, {0, 3}, {33, 1}}, 2},
      {"mixed_gqa4_hd128", 32, 8, 128, {{17, 20}, {64, 1}, {0, 16}}},
      {"mha_hd64", 4, 4, 64, {{31, 2}, {0, 1}}},
      // Other page sizes: one token per page, and pages larger than a key tile.
      {"mixed_bs1_hd64", 4, 2, 64, {{20, 3}, {0, 2}}, 1, 1},
      {"mixed_bs48_hd128", 8, 4, 128, {{70, 9}, {100, 1}}, 0, 48},
      // Planning hints left 0: the kernels must not rely on them.
      {"mixed_no_hints_hd64", 9, 3, 64, {{40, 25}, {7, 1}}, 1, 16, /*zero_hints=*/true},
      // Long contexts of few sequences: on CUDA, split-K (several context
      // splits merged), a split's boundary inside a page, and splits past a
      // short row's causal end.
      {"decode_long_b1_gqa4_hd128", 32, 8, 128, {{4000, 1}}},
      {"decode_long_b3_gqa3_hd64", 9, 3, 64, {{1500, 1}, {2047, 1}, {3, 1}}, 1},
      {"prefill_long_prefix_gqa4_hd128", 8, 2, 128, {{2500, 7}}, 0, 48},
      // On CUDA's tensor cores (64 rows or more): many key tiles (hints left
      // 0: one split), pages larger than a key tile, a GQA group of 8.
      {"prefill_long_no_hints_gqa3_hd64", 9, 3, 64, {{2000, 30}}, 0, 16, /*zero_hints=*/true},
      {"prefill_long_bs48_gqa4_hd128", 8, 2, 128, {{700, 40}, {0, 17}}, 1, 48},
      {"prefill_gqa8_hd128", 32, 4, 128, {{100, 20}}},
      // Only padding tokens: every output row is zeros, nothing is read.
      {"padding_only_hd64", 4, 2, 64, {}, 3},
  };
}

OpChecks::OpChecks(std::unique_ptr<Backend> candidate, uint32_t seed) : seed_(seed), rng_(seed) {
  std::cout << "COHOST_TEST_SEED=" << seed_ << "\n";
  arena_.be = std::move(candidate);
  tol_ = ToleranceFor(arena_.be->compute_dtype());
}

std::vector<float> OpChecks::Random(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = Bf16ToF32(F32ToBf16(dist(rng_)));
  return v;
}

void OpChecks::Check(const std::string& what, const std::vector<float>& want,
                     const std::vector<float>& got, const Tolerance& tol, bool nan_equal) {
  const std::string tag = absl::StrCat(what, " [COHOST_TEST_SEED=", seed_, "]");
  if (!nan_equal && std::any_of(want.begin(), want.end(), [](float x) { return std::isnan(x); })) {
    ADD_FAILURE() << tag << ": the reference has NaN";
  }
  ExpectClose(want, got, tol, tag, nan_equal);
}

void OpChecks::CapsAndCopies() {
  BackendCaps caps = backend().Caps();
  EXPECT_FALSE(caps.device_name.empty());
  EXPECT_GT(caps.total_memory, 0u);
  EXPECT_LE(caps.free_memory, caps.total_memory);
  EXPECT_EQ(caps.compute_dtype,
            backend().kind() == BackendKind::kCuda ? DType::kBF16 : DType::kF32);

  std::vector<int32_t> ints(1000);
  std::iota(ints.begin(), ints.end(), -17);
  int32_t* dev = arena_.Raw(ints);
  ASSERT_NE(dev, nullptr);
  std::vector<int32_t> back(ints.size());
  ASSERT_TRUE(backend().CopyToHost(back.data(), dev, back.size() * sizeof(int32_t)).ok());
  EXPECT_EQ(back, ints);

  std::vector<float> x = Random(777, -100.f, 100.f);  // bf16-exact: the round trip is exact
  void* px = arena_.Floats(x);
  EXPECT_EQ(arena_.Read(px, x.size()), x);

  // Through staging memory (page-locked on CUDA), and device to device.
  absl::StatusOr<DeviceBuffer> staging = DeviceBuffer::CreateStaging(&backend(), 4000);
  ASSERT_TRUE(staging.ok()) << staging.status();
  std::copy(ints.rbegin(), ints.rend(), staging->as<int32_t>());
  int32_t* dev2 = static_cast<int32_t*>(arena_.Alloc(4000));
  ASSERT_TRUE(backend().CopyToDevice(dev2, staging->data(), 4000).ok());
  ASSERT_TRUE(backend().CopyToDevice(dev, dev2, 4000).ok());
  ASSERT_TRUE(backend().CopyToHost(back.data(), dev, 4000).ok());
  EXPECT_EQ(back, std::vector<int32_t>(ints.rbegin(), ints.rend()));
}

void OpChecks::AllocationFailureIsRecoverable() {
  absl::StatusOr<void*> huge = backend().Allocate(size_t{1} << 50);  // 1 PiB
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  // Out of memory is not sticky: the backend keeps working.
  std::vector<float> x = Random(64), y = Random(64);
  std::vector<float> want = x;
  naive::Add(want.data(), y.data(), 64);
  void* px = arena_.Floats(x);
  backend().Add(px, arena_.Floats(y), 64);
  Check("add after a failed allocation", want, arena_.Read(px, 64), tol_);
}

void OpChecks::Embedding() {
  for (int32_t hidden : {576, 100}) {  // vector and scalar paths
    const int32_t vocab = 1000, n = 9;
    const size_t total = static_cast<size_t>(n) * hidden;
    std::vector<float> table = Random(static_cast<size_t>(vocab) * hidden);
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids) id = std::uniform_int_distribution<int32_t>(0, vocab - 1)(rng_);
    ids[1] = vocab - 1;
    ids[2] = ids[0];
    std::vector<float> want(total);
    naive::Embedding(ids.data(), n, table.data(), hidden, want.data());
    void* out = arena_.Poisoned(total);
    backend().Embedding(arena_.Raw(ids), n, arena_.Floats(table), hidden, out);
    Check(absl::StrCat("embedding hidden=", hidden), want, arena_.Read(out, total), kExact);
  }
}

void OpChecks::GatherRows() {
  for (int32_t width : {576, 100}) {
    const int32_t n = 20;
    std::vector<float> x = Random(static_cast<size_t>(n) * width);
    std::vector<int32_t> rows = {19, 0, 5, 5, 12};
    const int32_t num_rows = static_cast<int32_t>(rows.size());
    const size_t total = static_cast<size_t>(num_rows) * width;
    std::vector<float> want(total);
    naive::GatherRows(x.data(), rows.data(), num_rows, width, want.data());
    void* out = arena_.Poisoned(total);
    backend().GatherRows(arena_.Floats(x), arena_.Raw(rows), num_rows, width, out);
    Check(absl::StrCat("gather rows width=", width), want, arena_.Read(out, total), kExact);
  }
}

namespace {

// One failure naming the first element of `got` whose bits differ from
// `want`'s (any NaN for NaN), at the indices `at` (all where empty).
void ExpectSameBits(const std::string& what, const std::vector<float>& want,
                    const std::vector<float>& got, const std::vector<size_t>& at, uint64_t seed) {
  int differ = 0;
  size_t first = 0, checked = 0;
  auto compare = [&](size_t i) {
    ++checked;
    const bool same = std::isnan(want[i])
                          ? std::isnan(got[i])
                          : std::bit_cast<uint32_t>(want[i]) == std::bit_cast<uint32_t>(got[i]);
    if (!same && differ++ == 0) first = i;
  };
  if (at.empty()) {
    for (size_t i = 0; i < want.size(); ++i) compare(i);
  } else {
    for (size_t i : at) compare(i);
  }
  if (differ > 0) {
    ADD_FAILURE() << what << ": " << differ << " of " << checked << " elements differ, first "
                  << first << " is " << got[first] << ", want " << want[first]
                  << " [COHOST_TEST_SEED=" << seed << "]";
  }
}

}  // namespace

void OpChecks::ApplyPenalties() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const int32_t rows = 4, width = 3000;
  const std::vector<float> x = [&] {
    std::vector<float> v = Random(static_cast<size_t>(rows) * width, -20.f, 20.f);
    // Row 0 names every kind of logit (below).
    const std::vector<float> special = {0.f, -0.f, kNaN, kInf, -kInf, 1e-38f, -3.5f, 7.25f};
    for (size_t i = 0; i < special.size(); ++i) v[i * 3] = special[i];
    return v;
  }();
  // Row 0: the special logits; row 1 none; rows 2 and 3 random tokens.
  std::vector<PenaltyTerm> terms;
  std::vector<int32_t> starts = {0};
  for (int32_t i = 0; i < 8; ++i)
    terms.push_back({i * 3, i % 2 ? 1.3f : 0.7f, i % 3 ? 0.5f : -1.25f});
  terms.push_back({-1, 2.f, 1.f});     // out of range: skipped
  terms.push_back({width, 2.f, 1.f});  // out of range: skipped
  starts.push_back(static_cast<int32_t>(terms.size()));
  starts.push_back(starts.back());
  for (int32_t r = 2; r < rows; ++r) {
    std::vector<int32_t> ids(width);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);
    for (int32_t i = 0; i < 700; ++i) {
      // Repetition 1 leaves the sign rule out: only the subtraction. Some
      // terms carry a logit bias, added first (it can flip the sign the
      // repetition rule reads).
      terms.push_back({ids[i], i % 4 == 0 ? 1.f : 1.f + static_cast<float>(i % 7) / 5.f,
                       static_cast<float>(i % 5) * 0.3f,
                       i % 3 == 0 ? static_cast<float>(i % 11) * 4.5f - 25.f : 0.f});
    }
    starts.push_back(static_cast<int32_t>(terms.size()));
  }
  // What the penalties give, and the logits they move (term by term, only
  // in range).
  std::vector<float> want = x, want_saved(terms.size(), 0.f);
  std::vector<size_t> in_range;
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t i = starts[r]; i < starts[r + 1]; ++i) {
      const PenaltyTerm& t = terms[i];
      if (t.token < 0 || t.token >= width) continue;
      float& l = want[static_cast<size_t>(r) * width + t.token];
      want_saved[i] = l;
      in_range.push_back(static_cast<size_t>(i));
      l += t.add;
      if (t.repetition != 1.f) l = l > 0.f ? l / t.repetition : l * t.repetition;
      l -= t.subtract;
    }
  }
  const int32_t* dev_starts = arena_.Raw(starts);
  const PenaltyTerm* dev_terms = arena_.Raw(terms);
  auto read = [&](const float* p, size_t n) {
    std::vector<float> got(n, -7.f);
    absl::Status s = backend().Synchronize();
    if (s.ok()) s = backend().CopyToHost(got.data(), p, n * sizeof(float));
    EXPECT_TRUE(s.ok()) << s;
    return got;
  };
  float* px = arena_.Raw(x);
  float* saved = arena_.Raw(std::vector<float>(terms.size(), kNaN));  // fp32 whatever the dtype
  backend().ApplyPenalties(px, rows, width, dev_starts, dev_terms, saved);
  ExpectSameBits("penalties", want, read(px, x.size()), {}, seed_);
  ExpectSameBits("penalties' saved logits", want_saved, read(saved, terms.size()), in_range, seed_);
  // RestoreLogits from the expected state (each op judged on its own): the
  // raw logits again, bit for bit.
  float* moved = arena_.Raw(want);
  backend().RestoreLogits(moved, rows, width, dev_starts, dev_terms, arena_.Raw(want_saved));
  ExpectSameBits("restored logits", x, read(moved, x.size()), {}, seed_);
}

void OpChecks::MaskRows() {
  for (const int32_t width : {49152, 1000, 65, 64, 63, 1}) {
    const int32_t rows = 5;
    const std::vector<float> x = Random(static_cast<size_t>(rows) * width, -20.f, 20.f);
    const std::vector<int32_t> mask_of = {-1, 0, 1, 0, -1};
    const size_t words = (static_cast<size_t>(width) + 63) / 64;
    std::vector<uint64_t> masks(2 * words);
    for (uint64_t& w : masks) w = (static_cast<uint64_t>(rng_()) << 32) ^ rng_();
    masks[words] = 0;  // mask 1 opens with a word of nothing allowed
    std::vector<float> want = x;
    for (int32_t r = 0; r < rows; ++r) {
      if (mask_of[r] < 0) continue;
      for (int32_t t = 0; t < width; ++t) {
        if (((masks[mask_of[r] * words + t / 64] >> (t % 64)) & 1) == 0) {
          want[static_cast<size_t>(r) * width + t] = -std::numeric_limits<float>::infinity();
        }
      }
    }
    float* px = arena_.Raw(x);
    backend().MaskRows(px, rows, width, arena_.Raw(mask_of), arena_.Raw(masks));
    std::vector<float> got(x.size(), -7.f);
    absl::Status s = backend().Synchronize();
    if (s.ok()) s = backend().CopyToHost(got.data(), px, got.size() * sizeof(float));
    ASSERT_TRUE(s.ok()) << s;
    ExpectSameBits(absl::StrCat("masked rows of ", width), want, got, {}, seed_);
  }
}

void OpChecks::SampleRowsGreedy() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (int32_t width : {49152, 1000, 33, 1}) {
    const int32_t rows = 9;
    std::vector<float> x = Random(static_cast<size_t>(rows) * width, -30.f, 30.f);
    auto row = [&](int32_t r) { return x.begin() + static_cast<int64_t>(r) * width; };
    if (width > 2) {
      // Row 1: the maximum twice (the first wins); row 2: NaN beside it.
      row(1)[width - 1] = row(1)[width / 3] = 99.f;
      row(2)[width / 2] = 98.f;
      row(2)[0] = row(2)[width - 1] = kNaN;
      // Row 3: two +inf (the first wins) among -inf.
      std::fill(row(3), row(3) + width, -kInf);
      row(3)[width - 2] = row(3)[width - 1] = kInf;
    }
    if (width > 17) {
      // Row 6: the maximum twice, the first in a later lane of sixteen
      // (3 = 3 mod 16) than the second (17 = 1 mod 16).
      row(6)[3] = row(6)[17] = 97.f;
    }
    // Row 4: all -inf; row 5: all NaN (nothing above -inf: column 0).
    std::fill(row(4), row(4) + width, -kInf);
    std::fill(row(5), row(5) + width, kNaN);
    std::vector<int32_t> want(rows);
    for (int32_t r = 0; r < rows; ++r) {
      float best = -kInf;
      for (int32_t i = 0; i < width; ++i) {
        if (row(r)[i] > best) {
          best = row(r)[i];
          want[r] = i;
        }
      }
    }
    float* px = arena_.Raw(x);
    int32_t* out = arena_.Raw(std::vector<int32_t>(rows, -7));
    backend().SampleRows(px, rows, width, arena_.Raw(std::vector<SampleSpec>(rows)), out);
    std::vector<int32_t> got(rows, -1);
    absl::Status s = backend().CopyToHost(got.data(), out, rows * sizeof(int32_t));
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(got, want) << "greedy rows width=" << width << " [COHOST_TEST_SEED=" << seed_ << "]";
  }
}

void OpChecks::SampleRows() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  // A small vocabulary over many draws, and a real one (SmolLM2's) over a few.
  for (const auto& [vocab, num_rounds] : {std::pair{3000, 24}, std::pair{49152, 4}}) {
    // Copies: the clang behind clang-tidy cannot capture structured bindings.
    const int32_t width = vocab;
    const int rounds = num_rounds;
    // temperature, top_k, top_p, min_p: each filter alone, together, and off.
    const std::vector<SampleSpec> kinds = {
        {0.f, 0, 1.f, 0.f},    {1.f, 0, 1.f, 0.f},      {0.7f, 40, 1.f, 0.f},   {1.f, 0, 0.9f, 0.f},
        {1.3f, 0, 1.f, 0.05f}, {0.8f, 50, 0.8f, 0.02f}, {1.f, width, 1.f, 0.f}, {2.f, 1, 1.f, 0.f},
        {1.f, 0, 0.01f, 0.f},  {1.f, 0, 1.f, 0.f},      {1.f, 0, 1.f, 0.f},     {1.f, 5, 0.5f, 0.f},
        {1.f, 50, 0.9f, 0.f}};
    const int32_t rows = static_cast<int32_t>(kinds.size());
    // bf16-rounded logits: many ties, at every cut.
    std::vector<float> x = Random(static_cast<size_t>(rows) * width, -6.f, 6.f);
    auto row = [&](int32_t r) { return x.begin() + static_cast<int64_t>(r) * width; };
    for (int32_t i = 0; i < width; i += 7) row(3)[i] = kNaN;  // NaN never drawn
    std::fill(row(9), row(9) + width, -kInf);                 // nothing finite: 0
    row(10)[17] = row(10)[2500] = kInf;                       // the +inf share the mass
    row(11)[0] = kNaN;
    // Ten finite logits under top_k 50: the 50th largest weight is 0.
    std::fill(row(12), row(12) + width, -kInf);
    for (int32_t i = 0; i < 10; ++i) row(12)[i * (width / 10)] = static_cast<float>(i % 4);
    const float* px = arena_.Raw(x);
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    int draws = 0, differ = 0;
    for (int round = 0; round < rounds; ++round) {
      std::vector<SampleSpec> specs = kinds;
      for (SampleSpec& s : specs) s.uniform = std::min(uniform(rng_), 0.99999994f);
      int32_t* out = arena_.Raw(std::vector<int32_t>(rows, -7));
      backend().SampleRows(px, rows, width, arena_.Raw(specs), out);
      std::vector<int32_t> got(rows, -1);
      absl::Status s = backend().CopyToHost(got.data(), out, rows * sizeof(int32_t));
      ASSERT_TRUE(s.ok()) << s;
      for (int32_t r = 0; r < rows; ++r) {
        const int32_t want = naive::SampleRow(&*row(r), width, specs[r]);
        ++draws;
        if (got[r] == want) continue;
        ++differ;
        // Exact where no sum decides: the argmax, the +inf pair, nothing finite.
        EXPECT_NE(specs[r].temperature, 0.f) << "greedy row " << r;
        EXPECT_TRUE(r != 9 && r != 10) << "row " << r << " got " << got[r] << " want " << want;
        std::cout << "width " << width << " row " << r << " u=" << specs[r].uniform << " got "
                  << got[r] << " want " << want << "\n";
      }
    }
    // A mismatch needs a cut or a draw within rounding of a boundary. The CPU
    // computes the weights with the same expf as the reference: none. CUDA's
    // expf may differ by an ulp or two, which moves every boundary by ~1e-7 of
    // the mass: rarely, a draw lands between. A wrong rule differs in dozens.
    const int allowed = backend().kind() == BackendKind::kCpu ? 0 : 3;
    EXPECT_LE(differ, allowed) << differ << " of " << draws << " draws differ at width " << width
                               << " [COHOST_TEST_SEED=" << seed_ << "]";
  }
}

void OpChecks::RowLogprobs() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (const auto& [vocab, top_count] :
       {std::pair{49152, kMaxTopLogprobs}, std::pair{3000, 5}, std::pair{3000, 0},
        std::pair{kMaxTopLogprobs, kMaxTopLogprobs}, std::pair{7, 7}}) {
    const int32_t width = vocab;
    const int32_t top = top_count;
    const int32_t rows = 7;
    // bf16-rounded logits: many ties, in the top and at its cut.
    std::vector<float> x = Random(static_cast<size_t>(rows) * width, -12.f, 12.f);
    auto row = [&](int32_t r) { return x.begin() + static_cast<int64_t>(r) * width; };
    std::vector<int32_t> chosen(rows);
    for (int32_t r = 0; r < rows; ++r) chosen[r] = static_cast<int32_t>(rng_() % width);
    // Row 1: NaN and -inf among the logits, one of them chosen; a tie at the top.
    for (int32_t i = 0; i < width; i += 3) row(1)[i] = i % 2 ? kNaN : -kInf;
    row(1)[width - 1] = row(1)[1] = 20.f;
    chosen[1] = 0;
    std::fill(row(2), row(2) + width, -kInf);  // nothing finite: all -inf
    row(3)[width / 2] = kInf;                  // +inf: all -inf too
    std::fill(row(4), row(4) + width, 0.5f);   // one tie: the lowest ids
    for (int32_t i = 0; i < width; ++i) row(5)[i] = static_cast<float>(i % 4);
    const float* px = arena_.Raw(x);
    std::vector<TokenLogprob> poison(static_cast<size_t>(rows) * (1 + top), {-7, -7.f});
    TokenLogprob* out = arena_.Raw(poison);
    backend().RowLogprobs(px, rows, width, arena_.Raw(chosen), top, out);
    std::vector<TokenLogprob> got(poison.size());
    absl::Status s = backend().Synchronize();
    if (s.ok()) s = backend().CopyToHost(got.data(), out, got.size() * sizeof(TokenLogprob));
    ASSERT_TRUE(s.ok()) << s;
    // Ids exactly; logprobs within the float sum of the normalizer (the CUDA
    // kernel's) and one rounding of x - lse: ~2e-6 of |x| at most, where a
    // FaultyBackend's perturbation (1e-4) and any wrong rule are far outside.
    int differ = 0;
    std::string first;
    for (int32_t r = 0; r < rows; ++r) {
      const std::vector<TokenLogprob> want = naive::RowLogprobs(&*row(r), width, chosen[r], top);
      for (int32_t i = 0; i <= top; ++i) {
        const TokenLogprob& g = got[static_cast<size_t>(r) * (1 + top) + i];
        const TokenLogprob& w = want[i];
        const bool same =
            g.id == w.id && (std::isinf(w.logprob) ? g.logprob == w.logprob
                                                   : std::abs(g.logprob - w.logprob) <=
                                                         2e-5 + 2e-6 * std::abs(w.logprob));
        if (!same && differ++ == 0) {
          first = absl::StrCat("row ", r, " entry ", i, ": got {", g.id, ", ", g.logprob,
                               "}, want {", w.id, ", ", w.logprob, "}");
        }
      }
    }
    EXPECT_EQ(differ, 0) << "logprobs width=" << width << " top=" << top << ": " << differ
                         << " elements differ, first " << first << " [COHOST_TEST_SEED=" << seed_
                         << "]";
  }
}

void OpChecks::RmsNorm() {
  for (int32_t hidden : {576, 4096, 100}) {
    for (bool with_residual : {false, true}) {
      const int32_t n = 5;
      const size_t total = static_cast<size_t>(n) * hidden;
      std::vector<float> x = Random(total, -2.f, 2.f), res = Random(total, -2.f, 2.f);
      std::vector<float> w = Random(hidden, 0.5f, 1.5f);
      const std::string tag = absl::StrCat(" hidden=", hidden, with_residual ? " +residual" : "");
      std::vector<float> want(total), want_res = res;
      naive::RmsNorm(x.data(), with_residual ? want_res.data() : nullptr, w.data(), n, hidden,
                     1e-5f, want.data());
      void* r = with_residual ? arena_.Floats(res) : nullptr;
      void* out = arena_.Poisoned(total);
      backend().RmsNorm(arena_.Floats(x), r, arena_.Floats(w), n, hidden, 1e-5f, out);
      Check("rmsnorm out" + tag, want, arena_.Read(out, total), tol_);
      if (with_residual) Check("rmsnorm residual" + tag, want_res, arena_.Read(r, total), tol_);
    }
  }
}

void OpChecks::HeadRmsNorm() {
  // Rows padded to a stride that is not a multiple of 8, or a head_dim that
  // is not: the CUDA kernel's scalar path.
  struct Shape {
    int32_t head_dim, pad;
  };
  for (const Shape& sh : {Shape{128, 0}, Shape{64, 4}, Shape{6, 1}}) {
    const int32_t rows = 7, heads = 5, head_dim = sh.head_dim;
    const int64_t stride = int64_t{heads + 3} * head_dim + sh.pad;
    const size_t total = static_cast<size_t>(rows) * stride;
    std::vector<float> x = Random(total, -3.f, 3.f), w = Random(head_dim, 0.5f, 1.5f);
    std::vector<float> want = x;
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t h = 0; h < heads; ++h) {
        const int64_t at = r * stride + int64_t{h} * head_dim;
        naive::RmsNorm(x.data() + at, nullptr, w.data(), 1, head_dim, 1e-6f, want.data() + at);
      }
    }
    void* dx = arena_.Floats(x);
    backend().HeadRmsNorm(dx, rows, stride, heads, head_dim, arena_.Floats(w), 1e-6f);
    Check(absl::StrCat("head rmsnorm head_dim=", head_dim, " stride=", stride), want,
          arena_.Read(dx, total), tol_);
  }
}

void OpChecks::Gemm() {
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
    std::vector<float> want(total);
    naive::Gemm(a.data(), w.data(), sh.bias ? bias.data() : nullptr, sh.m, sh.n, sh.k, want.data());
    void* c = arena_.Poisoned(total);
    backend().Gemm(arena_.Floats(a), arena_.Floats(w), sh.bias ? arena_.Floats(bias) : nullptr,
                   sh.m, sh.n, sh.k, c);
    Check(absl::StrCat("gemm m=", sh.m, " n=", sh.n, " k=", sh.k, sh.bias ? " +bias" : ""), want,
          arena_.Read(c, total), GemmTolerance(tol_, sh.k));
  }
}

void OpChecks::GemmToF32() {
  // The inputs are bf16-representable, so the only error left is the fp32
  // accumulation's: an output rounded to bf16 (4e-3 relative) fails here.
  const bool tensor_cores = backend().compute_dtype() == DType::kBF16;
  for (auto [m, n, k] : {std::tuple{1, 576, 576}, {3, 49152, 64}, {9, 1000, 512}}) {
    std::vector<float> a = Random(static_cast<size_t>(m) * k);
    std::vector<float> w = Random(static_cast<size_t>(n) * k);
    const size_t total = static_cast<size_t>(m) * n;
    std::vector<float> want(total);
    naive::Gemm(a.data(), w.data(), nullptr, m, n, k, want.data());
    std::vector<float> poison(total, kNaN);
    float* c = arena_.Raw(poison);
    backend().GemmToF32(arena_.Floats(a), arena_.Floats(w), m, n, k, c);
    std::vector<float> got(total, kNaN);
    absl::Status s = backend().CopyToHost(got.data(), c, total * sizeof(float));
    if (!s.ok()) ADD_FAILURE() << "after GemmToF32: " << s;
    const Tolerance tol = tensor_cores ? GemmTolerance(kTensorCoreF32Tol, k, /*roundoffs=*/4)
                                       : GemmTolerance(kF32Tol, k);
    Check(absl::StrCat("gemm_to_f32 m=", m, " n=", n, " k=", k), want, got, tol);
  }
}

void OpChecks::Add() {
  for (int64_t n : {int64_t{4096}, int64_t{1001}}) {
    std::vector<float> x = Random(n), y = Random(n);
    std::vector<float> want = x;
    naive::Add(want.data(), y.data(), n);
    void* px = arena_.Floats(x);
    backend().Add(px, arena_.Floats(y), n);
    Check(absl::StrCat("add n=", n), want, arena_.Read(px, n), tol_);
  }
}

void OpChecks::SiluMul() {
  for (int32_t inter : {1536, 37}) {
    const int32_t n = 5;
    std::vector<float> gate_up = Random(static_cast<size_t>(n) * 2 * inter, -4.f, 4.f);
    const size_t total = static_cast<size_t>(n) * inter;
    std::vector<float> want(total);
    naive::SiluMul(gate_up.data(), n, inter, want.data());
    void* out = arena_.Poisoned(total);
    backend().SiluMul(arena_.Floats(gate_up), n, inter, out);
    Check(absl::StrCat("silu_mul inter=", inter), want, arena_.Read(out, total), tol_);
  }
}

void OpChecks::MoeCombine() {
  // width: the vector path and the scalar one; k: one expert a token, and
  // Qwen3-MoE's eight.
  for (const auto& [width, k] : {std::pair{576, 8}, {100, 1}, {64, 2}}) {
    const int32_t n = 6, y_rows = n * k + 3;
    const std::vector<float> y = Random(static_cast<size_t>(y_rows) * width);
    std::vector<int32_t> rows(static_cast<size_t>(n) * k);
    std::vector<float> weights(rows.size());
    for (size_t p = 0; p < rows.size(); ++p) {
      rows[p] = std::uniform_int_distribution<int32_t>(0, y_rows - 1)(rng_);
      weights[p] = std::uniform_real_distribution<float>(0.f, 1.f)(rng_);
    }
    rows[0] = y_rows - 1;  // the last row, and one row twice
    rows.back() = rows[0];
    weights[1 % weights.size()] = 0.f;
    const size_t total = static_cast<size_t>(n) * width;
    std::vector<float> want(total);
    naive::MoeCombine(y.data(), rows.data(), weights.data(), n, k, width, want.data());
    void* out = arena_.Poisoned(total);
    backend().MoeCombine(arena_.Floats(y), arena_.Raw(rows), arena_.Raw(weights), n, k, width, out);
    Check(absl::StrCat("moe_combine width=", width, " k=", k), want, arena_.Read(out, total), tol_);
  }
}

namespace {

// Whole heads of head_dim values with the rotary part reordered as
// llama.cpp's converter stores a Llama's q and k rows: dims i and
// i + rotary_dim / 2 go to 2i and 2i + 1 (RopePairs::kAdjacent's order).
std::vector<float> ToAdjacentPairs(const std::vector<float>& x, int32_t head_dim,
                                   int32_t rotary_dim) {
  std::vector<float> out = x;
  const size_t half = static_cast<size_t>(rotary_dim) / 2;
  for (size_t h = 0; h + head_dim <= x.size(); h += head_dim) {
    for (size_t i = 0; i < half; ++i) {
      out[h + 2 * i] = x[h + i];
      out[h + 2 * i + 1] = x[h + i + half];
    }
  }
  return out;
}

// `tokens` rows [parts[0] | parts[1] | ...], from row-major parts of the
// given widths: the QKV product's layout (QkvRows).
std::vector<float> JoinRows(const std::vector<const std::vector<float>*>& parts,
                            const std::vector<size_t>& widths, size_t tokens) {
  std::vector<float> out;
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t p = 0; p < parts.size(); ++p) {
      const auto first = parts[p]->begin() + static_cast<ptrdiff_t>(t * widths[p]);
      out.insert(out.end(), first, first + static_cast<ptrdiff_t>(widths[p]));
    }
  }
  return out;
}

// Columns [first, first + n) of every row of `rows`, `width` wide.
std::vector<float> RowColumns(const std::vector<float>& rows, size_t width, size_t first,
                              size_t n) {
  std::vector<float> out;
  for (size_t r = 0; r < rows.size() / width; ++r) {
    const auto at = rows.begin() + static_cast<ptrdiff_t>(r * width + first);
    out.insert(out.end(), at, at + static_cast<ptrdiff_t>(n));
  }
  return out;
}

}  // namespace

// Rotate-half against the reference; adjacent pairs on q and k reordered as
// a Llama GGUF stores them give the reference's result in that order. q, k
// and v come as three tensors, and as the one QKV product's rows.
void OpChecks::RopeWriteKv() {
  struct Case {
    int32_t num_heads, num_kv_heads, head_dim, rotary_dim;
    float llama3_factor;
  };
  for (const Case& c :
       {Case{9, 3, 64, 64, 0.f}, Case{8, 2, 128, 128, 8.f}, Case{4, 4, 64, 32, 0.f}}) {
    for (const RopePairs pairs : {RopePairs::kHalves, RopePairs::kAdjacent}) {
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

      // Page rows no token maps to stay NaN in the reference and must stay
      // NaN on the candidate.
      std::vector<float> want_q = q, want_k = k, want_kp(page_n, kNaN), want_vp(page_n, kNaN);
      naive::RopeWriteKv(
          want_q.data(), want_k.data(), v.data(), b.Host(), c.num_heads, inv_freq.data(),
          c.rotary_dim,
          PagedKv{want_kp.data(), want_vp.data(), b.num_blocks, bs, c.num_kv_heads, c.head_dim});
      if (pairs == RopePairs::kAdjacent) {
        for (std::vector<float>* x : {&q, &k, &want_q, &want_k, &want_kp}) {
          *x = ToAdjacentPairs(*x, c.head_dim, c.rotary_dim);
        }
      }

      const size_t q_w = static_cast<size_t>(c.num_heads) * c.head_dim;
      const size_t kv_w = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
      const size_t tokens = static_cast<size_t>(b.num_tokens);
      for (const bool fused : {false, true}) {
        PagedKv kv{arena_.Poisoned(page_n),
                   arena_.Poisoned(page_n),
                   b.num_blocks,
                   bs,
                   c.num_kv_heads,
                   c.head_dim,
                   arena_.be->compute_dtype()};
        QkvRows qkv;
        const size_t width = q_w + 2 * kv_w;
        if (fused) {
          void* rows = arena_.Floats(JoinRows({&q, &k, &v}, {q_w, kv_w, kv_w}, tokens));
          qkv = {rows, arena_.At(rows, q_w), arena_.At(rows, q_w + kv_w),
                 static_cast<int64_t>(width), static_cast<int64_t>(width)};
        } else {
          qkv = QkvRows::Dense(arena_.Floats(q), arena_.Floats(k), arena_.Floats(v), c.num_heads,
                               c.num_kv_heads, c.head_dim);
        }
        backend().RopeWriteKv(qkv, b.Upload(arena_), c.num_heads,
                              RopeSpec{arena_.Raw(inv_freq), c.rotary_dim, pairs}, kv);
        const std::string tag = absl::StrCat(
            " heads=", c.num_heads, "/", c.num_kv_heads, " hd=", c.head_dim, " rot=", c.rotary_dim,
            pairs == RopePairs::kAdjacent ? " adjacent" : "", fused ? " fused rows" : "");
        if (fused) {
          const std::vector<float> rows = arena_.Read(qkv.q, tokens * width);
          Check("rope q" + tag, want_q, RowColumns(rows, width, 0, q_w), tol_);
          Check("rope k" + tag, want_k, RowColumns(rows, width, q_w, kv_w), tol_);
          Check("rope leaves v" + tag, arena_.Read(arena_.Floats(v), kv_n),
                RowColumns(rows, width, q_w + kv_w, kv_w), kExact);
        } else {
          Check("rope q" + tag, want_q, arena_.Read(qkv.q, q_n), tol_);
          Check("rope k" + tag, want_k, arena_.Read(qkv.k, kv_n), tol_);
        }
        Check("k pages" + tag, want_kp, arena_.Read(kv.k, page_n), tol_, /*nan_equal=*/true);
        Check("v pages" + tag, want_vp, arena_.Read(kv.v, page_n), kExact, /*nan_equal=*/true);
      }
    }
  }
}

void OpChecks::PagedAttention(const AttnCase& c) {
  const int32_t bs = c.block_size;
  HostBatch b = MakeBatch(c.seqs, bs, /*extra_blocks=*/5, c.padding_tokens, rng_);
  if (c.zero_hints) b.max_query_len = b.max_context_len = 0;
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

  std::vector<float> want(q_n);
  naive::PagedAttention(
      q.data(), b.Host(),
      PagedKv{k_pages.data(), v_pages.data(), b.num_blocks, bs, c.num_kv_heads, c.head_dim},
      c.num_heads, scale, want.data());

  PagedKv kv{arena_.Floats(k_pages),
             arena_.Floats(v_pages),
             b.num_blocks,
             bs,
             c.num_kv_heads,
             c.head_dim,
             arena_.be->compute_dtype()};
  // q as the QKV product leaves it: each token's row holds its k and v after
  // its q heads (NaN here: a kernel that reads past q fails).
  const size_t q_w = static_cast<size_t>(c.num_heads) * c.head_dim;
  const std::vector<float> kv_cols(static_cast<size_t>(b.num_tokens) * 2 * row, kNaN);
  for (const bool fused : {false, true}) {
    void* out = arena_.Poisoned(q_n);
    void* pq = fused ? arena_.Floats(JoinRows({&q, &kv_cols}, {q_w, 2 * row},
                                              static_cast<size_t>(b.num_tokens)))
                     : arena_.Floats(q);
    const int64_t stride = static_cast<int64_t>(fused ? q_w + 2 * row : q_w);
    backend().PagedAttention(pq, stride, b.Upload(arena_), kv, c.num_heads, scale, out);
    Check("attention " + c.name + (fused ? " (fused rows)" : ""), want, arena_.Read(out, q_n),
          tol_);
  }
}

void OpChecks::EmptyShapes() {
  const size_t n = 64;
  const std::vector<float> poison(n, kNaN);
  const std::vector<float> x = Random(n);
  const std::vector<int32_t> zeros(n, 0);
  auto untouched = [&](const std::string& what, void* p) {
    Check(what + " of size 0 writes nothing", poison, arena_.Read(p, n), kExact,
          /*nan_equal=*/true);
  };
  void* out = arena_.Poisoned(n);
  backend().Embedding(arena_.Raw(zeros), 0, arena_.Floats(x), 8, out);
  untouched("embedding", out);
  backend().GatherRows(arena_.Floats(x), arena_.Raw(zeros), 0, 8, out);
  untouched("gather rows", out);
  backend().RmsNorm(arena_.Floats(x), nullptr, arena_.Floats(x), 0, 8, 1e-5f, out);
  untouched("rmsnorm", out);
  backend().Gemm(arena_.Floats(x), arena_.Floats(x), nullptr, 0, 8, 8, out);
  untouched("gemm m", out);
  backend().Gemm(arena_.Floats(x), arena_.Floats(x), nullptr, 8, 0, 8, out);
  untouched("gemm n", out);
  backend().Add(out, arena_.Floats(x), 0);
  untouched("add", out);
  backend().SiluMul(arena_.Floats(x), 0, 8, out);
  untouched("silu_mul", out);

  // One page of one row of one kv head of head_dim n: a shape every backend runs.
  HostBatch b = MakeBatch({}, 1, 1, 0, rng_);
  BatchLayout layout = b.Upload(arena_);
  const std::vector<float> inv_freq(4, 0.5f);
  void* q = arena_.Poisoned(n);
  void* k = arena_.Poisoned(n);
  PagedKv kv{arena_.Poisoned(n),      arena_.Poisoned(n),        1, 1, 1,
             static_cast<int32_t>(n), arena_.be->compute_dtype()};
  backend().RopeWriteKv(QkvRows::Dense(q, k, arena_.Floats(x), 1, 1, static_cast<int32_t>(n)),
                        layout, 1, RopeSpec{arena_.Raw(inv_freq), 8}, kv);
  untouched("rope q", q);
  untouched("rope k", k);
  untouched("rope k pages", kv.k);
  untouched("rope v pages", kv.v);
  backend().PagedAttention(arena_.Floats(x), static_cast<int64_t>(n), layout, kv, 1, 0.5f, out);
  untouched("attention", out);

  // k = 0 is an empty sum: c = bias, or zeros.
  const int32_t m = 3, cols = 8;
  std::vector<float> bias = Random(cols), want(m * cols);
  for (bool with_bias : {false, true}) {
    naive::Gemm(x.data(), x.data(), with_bias ? bias.data() : nullptr, m, cols, 0, want.data());
    void* c = arena_.Poisoned(m * cols);
    backend().Gemm(arena_.Floats(x), arena_.Floats(x), with_bias ? arena_.Floats(bias) : nullptr, m,
                   cols, 0, c);
    Check(absl::StrCat("gemm k=0", with_bias ? " +bias" : ""), want, arena_.Read(c, m * cols),
          kExact);
  }
}

void OpChecks::UnalignedViews() {
  // Widths are multiples of 8, so only the pointers' alignment keeps the CUDA
  // kernels off their vector path.
  const int32_t rows = 3, width = 64;
  const size_t total = static_cast<size_t>(rows) * width;
  {
    std::vector<float> x = Random(total);
    std::vector<int32_t> ids = {2, 0, 2};
    std::vector<float> want(total);
    naive::GatherRows(x.data(), ids.data(), rows, width, want.data());
    void* out = arena_.Poisoned(total, 1);
    backend().GatherRows(arena_.Floats(x, 1), arena_.Raw(ids), rows, width, out);
    Check("unaligned gather rows", want, arena_.Read(out, total), kExact);
    out = arena_.Poisoned(total, 1);
    backend().Embedding(arena_.Raw(ids), rows, arena_.Floats(x, 1), width, out);
    Check("unaligned embedding", want, arena_.Read(out, total), kExact);
  }
  {
    std::vector<float> x = Random(total, -2.f, 2.f), res = Random(total, -2.f, 2.f);
    std::vector<float> w = Random(width, 0.5f, 1.5f);
    std::vector<float> want(total), want_res = res;
    naive::RmsNorm(x.data(), want_res.data(), w.data(), rows, width, 1e-5f, want.data());
    void* r = arena_.Floats(res, 1);
    void* out = arena_.Poisoned(total, 1);
    backend().RmsNorm(arena_.Floats(x, 1), r, arena_.Floats(w, 1), rows, width, 1e-5f, out);
    Check("unaligned rmsnorm out", want, arena_.Read(out, total), tol_);
    Check("unaligned rmsnorm residual", want_res, arena_.Read(r, total), tol_);
  }
  {
    std::vector<float> x = Random(total), y = Random(total);
    std::vector<float> want = x;
    naive::Add(want.data(), y.data(), total);
    void* px = arena_.Floats(x, 1);
    backend().Add(px, arena_.Floats(y, 1), total);
    Check("unaligned add", want, arena_.Read(px, total), tol_);
  }
  {
    std::vector<float> gate_up = Random(2 * total, -4.f, 4.f);
    std::vector<float> want(total);
    naive::SiluMul(gate_up.data(), rows, width, want.data());
    void* out = arena_.Poisoned(total, 1);
    backend().SiluMul(arena_.Floats(gate_up, 1), rows, width, out);
    Check("unaligned silu_mul", want, arena_.Read(out, total), tol_);
  }
  {
    // The bias alone is offset: c stays aligned for the GEMM library, and the
    // bias pass takes its scalar path.
    const int32_t k = 32;
    std::vector<float> a = Random(static_cast<size_t>(rows) * k);
    std::vector<float> w = Random(static_cast<size_t>(width) * k), bias = Random(width);
    std::vector<float> want(total);
    naive::Gemm(a.data(), w.data(), bias.data(), rows, width, k, want.data());
    void* c = arena_.Poisoned(total);
    backend().Gemm(arena_.Floats(a), arena_.Floats(w), arena_.Floats(bias, 1), rows, width, k, c);
    Check("gemm +unaligned bias", want, arena_.Read(c, total), GemmTolerance(tol_, k));
  }
}

}  // namespace cohost::kernels::backend_ops
