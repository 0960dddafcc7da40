// The cross-backend harness can fail, and fails on the CPU: ExpectClose reports
// corrupt elements, NaNs and small errors spread everywhere, and every op check
// of OpChecks catches a CPU backend whose outputs were corrupted after the op by
// an amount the bf16 tolerance would let through.
#include "backend_ops_harness.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/support/forwarding_backend.h"

namespace cohost::kernels::backend_ops {
namespace {

std::vector<float> Ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.5f + static_cast<float>(i % 17) / 4;
  return v;
}

TEST(ExpectCloseTest, EqualOutputsPass) {
  const std::vector<float> want = Ramp(1000);
  ExpectClose(want, want, kExact, "identical");
  ExpectClose(want, want, kF32Tol, "identical");
  std::vector<float> poisoned(10, kNaN);
  ExpectClose(poisoned, poisoned, kExact, "both NaN", /*nan_equal=*/true);
}

TEST(ExpectCloseTest, ErrorWithinToleranceOfOneElementPasses) {
  const std::vector<float> want = Ramp(1000);
  std::vector<float> got = want;
  got[3] += static_cast<float>(0.5 * (kF32Tol.atol + kF32Tol.rtol * want[3]));
  ExpectClose(want, got, kF32Tol, "half the bound");
}

TEST(ExpectCloseTest, OneCorruptElementFails) {
  const std::vector<float> want = Ramp(1000);
  std::vector<float> got = want;
  got[500] += 1e-4f;  // 10x the fp32 bound, 200x below the bf16 one
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kF32Tol, "corrupt"),
                          "corrupt: 1 of 1000 elements differ");
  got[500] = want[500] * -1;
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kBf16Tol, "sign"), "[500] want=");
  // Copies are exact: one ulp is a failure.
  got[500] = std::nextafter(want[500], 100.f);
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kExact, "ulp"), "ulp: 1 of 1000 elements differ");
}

TEST(ExpectCloseTest, NaNOrInfinityWhereTheReferenceIsFiniteFails) {
  const std::vector<float> want = Ramp(100);
  for (float bad : {kNaN, std::numeric_limits<float>::infinity()}) {
    std::vector<float> got = want;
    got[7] = bad;
    EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kBf16Tol, "bad"), "1 of 100 elements differ");
    // nan_equal only excuses a NaN on both sides.
    EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kBf16Tol, "bad", /*nan_equal=*/true),
                            "1 of 100 elements differ");
  }
}

TEST(ExpectCloseTest, ReferenceNaNMatchesOnlyWhenAllowed) {
  std::vector<float> want = Ramp(100), got = want;
  want[9] = got[9] = kNaN;
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kF32Tol, "strict"), "1 of 100 elements differ");
  ExpectClose(want, got, kF32Tol, "rows left unwritten", /*nan_equal=*/true);
  // A page row that must stay poisoned but was written.
  got[9] = 0.f;
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kF32Tol, "stray write", /*nan_equal=*/true),
                          "stray write: 1 of 100 elements differ");
}

TEST(ExpectCloseTest, SmallErrorsEverywhereFailTheNorm) {
  // 1.5% on every element: inside the bf16 elementwise bound (2e-2 + 2e-2 |x|),
  // above its 1e-2 norm bound.
  const std::vector<float> want = Ramp(1000);
  std::vector<float> got = want;
  for (float& x : got) x *= 1.015f;
  EXPECT_NONFATAL_FAILURE(ExpectClose(want, got, kBf16Tol, "drift"),
                          "drift: 0 of 1000 elements differ");
}

TEST(ExpectCloseTest, SizeMismatchFails) {
  EXPECT_FATAL_FAILURE(ExpectClose(std::vector<float>(3), std::vector<float>(2), kF32Tol, "sizes"),
                       "sizes: output sizes differ");
}

TEST(ExpectCloseTest, ToleranceFollowsTheComputeDtype) {
  EXPECT_EQ(ToleranceFor(DType::kF32).atol, kF32Tol.atol);
  EXPECT_EQ(ToleranceFor(DType::kBF16).atol, kBf16Tol.atol);
  EXPECT_NONFATAL_FAILURE(ToleranceFor(DType::kF16), "no tolerance derived");
  // The fp32 GEMM bound grows with k, and never below the elementwise one.
  EXPECT_EQ(GemmTolerance(kF32Tol, 7).atol, kF32Tol.atol);
  EXPECT_NEAR(GemmTolerance(kF32Tol, 1024).atol, 1024 * kF32Roundoff, 1e-12);
  EXPECT_EQ(GemmTolerance(kBf16Tol, 1024).atol, kBf16Tol.atol);
}

// How a FaultyBackend spoils the CPU backend's results.
enum class Fault {
  kPerturb,       // one output element moves by kPerturbation * (1 + |x|)
  kNaN,           // one output element becomes NaN
  kStrayWrite,    // RopeWriteKv also writes a page row no token maps to
  kNoCausalMask,  // PagedAttention lets every new token see its whole context
  kDenseQ,        // RopeWriteKv and PagedAttention ignore the strides (QkvRows)
};

void PrintTo(Fault f, std::ostream* os) {
  constexpr const char* kNames[] = {"Perturb", "NaN", "StrayWrite", "NoCausalMask", "DenseQ"};
  *os << kNames[static_cast<int>(f)];
}

// Inside the bf16 tolerance (2e-2 + 2e-2 |x|), 10x outside the fp32 one: a
// check that used bf16 tolerances on the CPU would miss it.
constexpr double kPerturbation = 1e-4;
static_assert(kPerturbation >= 10 * kF32Tol.atol && kPerturbation >= 10 * kF32Tol.rtol);
static_assert(kPerturbation < kBf16Tol.atol && kPerturbation < kBf16Tol.rtol);

// The CPU backend with one fault injected into each op's output. CPU memory is
// host memory, so outputs are spoiled in place after the op ran.
class FaultyBackend final : public cohost::testing::ForwardingBackend {
 public:
  FaultyBackend(std::unique_ptr<Backend> cpu, Fault fault)
      : ForwardingBackend(std::move(cpu)), fault_(fault) {}

  // How many results this backend spoiled: each must be reported.
  int faults() const { return faults_; }

  void Embedding(const int32_t* ids, int32_t n, WeightRef table, int32_t hidden,
                 void* out) override {
    inner().Embedding(ids, n, table, hidden, out);
    SpoilLast(out, int64_t{n} * hidden);
  }
  void RmsNorm(const void* x, void* residual, const void* weight, int32_t n, int32_t hidden,
               float eps, void* out) override {
    inner().RmsNorm(x, residual, weight, n, hidden, eps, out);
    SpoilLast(out, int64_t{n} * hidden);
  }
  // The last head's last value.
  void HeadRmsNorm(void* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                   const void* weight, float eps) override {
    inner().HeadRmsNorm(x, rows, row_stride, heads, head_dim, weight, eps);
    if (rows > 0) SpoilLast(x, (rows - 1) * row_stride + int64_t{heads} * head_dim);
  }
  void Gemm(const void* a, WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    inner().Gemm(a, w, bias, m, n, k, c);
    SpoilLast(c, int64_t{m} * n);
  }
  void Add(void* x, const void* y, int64_t n) override {
    inner().Add(x, y, n);
    SpoilLast(x, n);
  }
  void SiluMul(const void* gate_up, int32_t n, int32_t inter, void* out) override {
    inner().SiluMul(gate_up, n, inter, out);
    SpoilLast(out, int64_t{n} * inter);
  }
  void GatherRows(const void* x, const int32_t* rows, int32_t num_rows, int32_t width,
                  void* out) override {
    inner().GatherRows(x, rows, num_rows, width, out);
    SpoilLast(out, int64_t{num_rows} * width);
  }
  void MoeCombine(const void* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                  int32_t width, void* out) override {
    inner().MoeCombine(y, rows, weights, n, k, width, out);
    SpoilLast(out, int64_t{n} * width);
  }

  void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                      const PenaltyTerm* terms, float* saved) override {
    inner().ApplyPenalties(x, rows, width, starts, terms, saved);
    SpoilLast(x, int64_t{rows} * width);
    // The last term in range, as the check names them (its row, then its
    // terms), since a skipped one's slot means nothing.
    for (int32_t i = rows > 0 ? starts[rows] - 1 : -1; saved != nullptr && i >= 0; --i) {
      if (terms[i].token >= 0 && terms[i].token < width) {
        Spoil(&saved[i]);
        break;
      }
    }
  }
  void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                     const PenaltyTerm* terms, const float* saved) override {
    inner().RestoreLogits(x, rows, width, starts, terms, saved);
    SpoilLast(x, int64_t{rows} * width);
  }

  // Row 0's chosen logprob (finite in every check).
  void RowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                   int32_t top_n, TokenLogprob* out) override {
    inner().RowLogprobs(x, rows, width, chosen, top_n, out);
    if (rows > 0) Spoil(&out[0].logprob);
  }

  void RopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                   const RopeSpec& rope, const PagedKv& kv) override {
    if (fault_ == Fault::kDenseQ) {
      const QkvRows dense =
          QkvRows::Dense(qkv.q, qkv.k, qkv.v, num_heads, kv.num_kv_heads, kv.head_dim);
      inner().RopeWriteKv(dense, batch, num_heads, rope, kv);
      faults_ += batch.num_tokens > 1 &&
                 (dense.q_stride != qkv.q_stride || dense.kv_stride != qkv.kv_stride);
      return;
    }
    inner().RopeWriteKv(qkv, batch, num_heads, rope, kv);
    if (batch.num_tokens == 0) return;
    float* pages = static_cast<float*>(kv.k);
    const int64_t row = int64_t{kv.num_kv_heads} * kv.head_dim;
    const int64_t page_n = int64_t{kv.num_blocks} * kv.block_size * row;
    if (fault_ == Fault::kStrayWrite) {
      // The first page element still poisoned is one no token maps to.
      for (int64_t i = 0; i < page_n; ++i) {
        if (std::isnan(pages[i])) {
          pages[i] = 0.f;
          ++faults_;
          return;
        }
      }
      return;
    }
    // The K row cached for the first token that has a slot.
    for (int32_t t = 0; t < batch.num_tokens; ++t) {
      if (batch.slot_mapping[t] >= 0) {
        Spoil(pages + int64_t{batch.slot_mapping[t]} * row);
        return;
      }
    }
  }

  void PagedAttention(const void* q, int64_t q_stride, const BatchLayout& batch, const PagedKv& kv,
                      int32_t num_heads, float scale, void* out) override {
    const int64_t dense = int64_t{num_heads} * kv.head_dim;
    if (fault_ == Fault::kDenseQ) {
      inner().PagedAttention(q, dense, batch, kv, num_heads, scale, out);
      // Token 0's q is where it would be; a wrong row matters from token 1
      // on, where it is inside a sequence's run.
      const int32_t run_end = batch.num_seqs > 0 ? batch.seq_starts[batch.num_seqs] : 0;
      faults_ += run_end > 1 && q_stride != dense;
      return;
    }
    if (fault_ != Fault::kNoCausalMask) {
      inner().PagedAttention(q, q_stride, batch, kv, num_heads, scale, out);
      if (batch.num_tokens > 0) Spoil(static_cast<float*>(out));
      return;
    }
    // Every new token placed at its sequence's last position sees the whole
    // context: a fault only where some token should have seen less.
    std::vector<int32_t> last(batch.positions, batch.positions + batch.num_tokens);
    bool masked = false;
    for (int32_t s = 0; s < batch.num_seqs; ++s) {
      for (int32_t i = batch.seq_starts[s]; i < batch.seq_starts[s + 1]; ++i) {
        masked |= last[i] + 1 < batch.context_lens[s];
        last[i] = batch.context_lens[s] - 1;
      }
    }
    BatchLayout unmasked = batch;
    unmasked.positions = last.data();
    inner().PagedAttention(q, q_stride, unmasked, kv, num_heads, scale, out);
    if (masked) ++faults_;
  }

 private:
  void SpoilLast(void* out, int64_t n) {
    if (n > 0) Spoil(static_cast<float*>(out) + n - 1);
  }
  void Spoil(float* x) {
    if (fault_ == Fault::kPerturb) {
      *x += static_cast<float>(kPerturbation * (1 + std::abs(*x)));
    } else if (fault_ == Fault::kNaN) {
      *x = kNaN;
    } else {
      return;  // faults of other ops
    }
    ++faults_;
  }

  Fault fault_;
  int faults_ = 0;
};

struct OpCheck {
  std::string name;
  std::function<void(OpChecks&)> run;
};

std::vector<OpCheck> AllOpChecks() {
  std::vector<OpCheck> checks = {
      {"AllocationFailureIsRecoverable", [](OpChecks& c) { c.AllocationFailureIsRecoverable(); }},
      {"Embedding", [](OpChecks& c) { c.Embedding(); }},
      {"GatherRows", [](OpChecks& c) { c.GatherRows(); }},
      {"RmsNorm", [](OpChecks& c) { c.RmsNorm(); }},
      {"HeadRmsNorm", [](OpChecks& c) { c.HeadRmsNorm(); }},
      {"Gemm", [](OpChecks& c) { c.Gemm(); }},
      {"Add", [](OpChecks& c) { c.Add(); }},
      {"SiluMul", [](OpChecks& c) { c.SiluMul(); }},
      {"MoeCombine", [](OpChecks& c) { c.MoeCombine(); }},
      {"RopeWriteKv", [](OpChecks& c) { c.RopeWriteKv(); }},
      {"RowLogprobs", [](OpChecks& c) { c.RowLogprobs(); }},
      {"ApplyPenalties", [](OpChecks& c) { c.ApplyPenalties(); }},
      {"EmptyShapes", [](OpChecks& c) { c.EmptyShapes(); }},
      {"UnalignedViews", [](OpChecks& c) { c.UnalignedViews(); }},
  };
  for (const AttnCase& a : AttentionCases()) {
    checks.push_back({"PagedAttention " + a.name, [a](OpChecks& c) { c.PagedAttention(a); }});
  }
  return checks;
}

struct Outcome {
  int faults = 0;  // results spoiled
  std::vector<std::string> failures;
};

// Runs one check on a FaultyBackend and collects what it reported instead of
// failing this test.
Outcome RunFaulty(const OpCheck& check, Fault fault) {
  auto faulty = std::make_unique<FaultyBackend>(MakeCpuBackend(1), fault);
  FaultyBackend* backend = faulty.get();
  Outcome outcome;
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    OpChecks checks(std::move(faulty), SeedFromEnv());
    check.run(checks);
    outcome.faults = backend->faults();
  }
  for (int i = 0; i < results.size(); ++i) {
    const ::testing::TestPartResult& r = results.GetTestPartResult(i);
    outcome.failures.push_back(absl::StrCat(r.nonfatally_failed() ? "" : "(fatal) ", r.message()));
  }
  return outcome;
}

// Every spoiled result is reported once, as a mismatch, and nothing else is.
void ExpectEachFaultCaught(const std::string& name, const Outcome& o) {
  EXPECT_EQ(o.failures.size(), static_cast<size_t>(o.faults))
      << name << ": " << o.faults << " results spoiled, " << o.failures.size() << " reported";
  for (const std::string& f : o.failures) {
    EXPECT_THAT(f, ::testing::HasSubstr("elements differ")) << name;
    EXPECT_EQ(f.rfind("(fatal)", 0), std::string::npos) << name << ": " << f;
  }
}

class OpCheckFaultTest : public ::testing::TestWithParam<Fault> {};

TEST_P(OpCheckFaultTest, EveryOpCheckCatchesASpoiledResult) {
  for (const OpCheck& check : AllOpChecks()) {
    const Outcome o = RunFaulty(check, GetParam());
    // Each check spoils at least one result, or it would prove nothing.
    EXPECT_GT(o.faults, 0) << check.name;
    ExpectEachFaultCaught(check.name, o);
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, OpCheckFaultTest, ::testing::Values(Fault::kPerturb, Fault::kNaN),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return ::testing::PrintToString(info.param);
                         });

TEST(FaultyBackendTest, RopeWritingAnUnmappedPageRowIsCaught) {
  const Outcome o =
      RunFaulty({"RopeWriteKv", [](OpChecks& c) { c.RopeWriteKv(); }}, Fault::kStrayWrite);
  EXPECT_GT(o.faults, 0);
  ExpectEachFaultCaught("RopeWriteKv", o);
}

TEST(FaultyBackendTest, AttentionWithoutTheCausalMaskIsCaught) {
  int faults = 0, chunked_cases = 0;
  for (const AttnCase& a : AttentionCases()) {
    const Outcome o =
        RunFaulty({a.name, [a](OpChecks& c) { c.PagedAttention(a); }}, Fault::kNoCausalMask);
    faults += o.faults;
    ExpectEachFaultCaught(a.name, o);
    // The mask matters where a sequence has more than one new token.
    chunked_cases +=
        std::any_of(a.seqs.begin(), a.seqs.end(), [](const SeqSpec& s) { return s.fresh > 1; });
  }
  // Each case runs twice: q dense, and in the QKV product's rows.
  EXPECT_EQ(faults, 2 * chunked_cases);
  EXPECT_GT(chunked_cases, 0);
}

// A kernel that takes q, k, v as dense tensors whatever their strides passes
// every dense call and fails every call on the QKV product's rows.
TEST(FaultyBackendTest, IgnoringTheQkvStridesIsCaught) {
  std::vector<OpCheck> checks = {{"RopeWriteKv", [](OpChecks& c) { c.RopeWriteKv(); }}};
  for (const AttnCase& a : AttentionCases()) {
    checks.push_back({a.name, [a](OpChecks& c) { c.PagedAttention(a); }});
  }
  int faults = 0;
  for (const OpCheck& check : checks) {
    const Outcome o = RunFaulty(check, Fault::kDenseQ);
    faults += o.faults;
    // Caught where it matters (a second token), silent where it cannot.
    EXPECT_GE(o.failures.size(), static_cast<size_t>(o.faults)) << check.name;
    EXPECT_EQ(o.failures.empty(), o.faults == 0) << check.name;
    for (const std::string& f : o.failures) {
      EXPECT_THAT(f, ::testing::HasSubstr("fused rows")) << check.name;
    }
  }
  EXPECT_GT(faults, static_cast<int>(checks.size()) / 2);
}

}  // namespace
}  // namespace cohost::kernels::backend_ops
