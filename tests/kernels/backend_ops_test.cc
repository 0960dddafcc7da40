// One cross-backend suite: every op of kernels::Backend runs on each backend
// ("cpu", and "cuda" on device 0) and is compared with the naive reference of
// naive_ops.h (plain loops in double) on the same fresh random inputs; outputs
// are poisoned with NaN before each call. The cpu instance always runs; the
// cuda instance skips visibly where no GPU is found.
//
// Inputs are drawn as bf16-representable values, so every backend and the
// reference hold the same numbers and a backend's error is its own rounding.
// Tolerances (backend_ops_harness.h), per candidate compute dtype, u being the
// fp32 unit roundoff (6e-8):
//   fp32 (cpu): |got - want| <= 1e-5 + 1e-5 * |want| (~170 u) elementwise and
//       ||got - want|| / ||want|| <= 2e-6. A GEMM of inner size k has atol
//       max(1e-5, k * u): k roundings of partial sums that grow like sqrt(k)
//       make an error that grows like k * u. The reference is exact to ~1e-16,
//       so what is measured is the CPU backend's own rounding: over 40 seeds
//       its worst element used 25% of the GEMM bound (1.3e-5 at k = 1024,
//       0.22 k u) and 3% of the elementwise bound elsewhere (~3 u relative),
//       and its worst error norm was 2.5e-7 (attention). The bounds sit ~1000x
//       below bf16's: an error of 1e-4 (1 + |x|) in one element, which bf16
//       tolerances would pass, fails on the CPU (backend_ops_harness_test.cc).
//   bf16 (cuda): 2e-2 + 2e-2 * |want| and 1e-2 (one bf16 rounding is 4e-3
//       relative; a gemm of k = 1024 with |x| <= 1 gives |want| ~ 10).
//   Copies (embedding, gather rows, V pages, Gemm with k = 0) are exact on
//   every backend.
// A NaN never passes, except where an unwritten page row must stay poisoned.
// COHOST_TEST_SEED=<n> replays a failing draw (every test prints its seed).
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/statusor.h"
#include "backend_ops_harness.h"
#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "tests/support/skip_without_cuda.h"

namespace cohost::kernels::backend_ops {
namespace {

// The candidate a test parameter names. Only "cuda" may be missing: its tests
// then skip, or fail under COHOST_REQUIRE_CUDA (SkipWithoutCuda).
absl::StatusOr<std::unique_ptr<Backend>> MakeNamedBackend(const std::string& name) {
  if (name == "cpu") return MakeCpuBackend(3);  // 3 threads: the pool's split paths run
  if (name == "cuda") return MakeCudaBackend(0);
  return absl::InvalidArgumentError("unknown backend " + name);
}

class BackendOpsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Backend>> be = MakeNamedBackend(GetParam());
    ASSERT_TRUE(be.ok() || GetParam() == "cuda") << be.status();
    if (!be.ok()) return cohost::testing::SkipWithoutCuda(be.status());
    checks_.emplace(std::move(*be), SeedFromEnv());
  }

  std::optional<OpChecks> checks_;
};

TEST_P(BackendOpsTest, CapsAndCopies) { checks_->CapsAndCopies(); }
TEST_P(BackendOpsTest, AllocationFailureIsRecoverable) {
  checks_->AllocationFailureIsRecoverable();
}
TEST_P(BackendOpsTest, Embedding) { checks_->Embedding(); }
TEST_P(BackendOpsTest, GatherRows) { checks_->GatherRows(); }
TEST_P(BackendOpsTest, SampleRowsGreedy) { checks_->SampleRowsGreedy(); }
TEST_P(BackendOpsTest, SampleRows) { checks_->SampleRows(); }
TEST_P(BackendOpsTest, ApplyPenalties) { checks_->ApplyPenalties(); }
TEST_P(BackendOpsTest, MaskRows) { checks_->MaskRows(); }
TEST_P(BackendOpsTest, RowLogprobs) { checks_->RowLogprobs(); }
TEST_P(BackendOpsTest, RmsNorm) { checks_->RmsNorm(); }
TEST_P(BackendOpsTest, HeadRmsNorm) { checks_->HeadRmsNorm(); }
TEST_P(BackendOpsTest, Gemm) { checks_->Gemm(); }
TEST_P(BackendOpsTest, GemmToF32) { checks_->GemmToF32(); }
TEST_P(BackendOpsTest, Add) { checks_->Add(); }
TEST_P(BackendOpsTest, SiluMul) { checks_->SiluMul(); }
TEST_P(BackendOpsTest, MoeCombine) { checks_->MoeCombine(); }
TEST_P(BackendOpsTest, RopeWriteKv) { checks_->RopeWriteKv(); }
TEST_P(BackendOpsTest, EmptyShapes) { checks_->EmptyShapes(); }
TEST_P(BackendOpsTest, UnalignedViews) { checks_->UnalignedViews(); }

INSTANTIATE_TEST_SUITE_P(Backends, BackendOpsTest, ::testing::Values("cpu", "cuda"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

class PagedAttentionTest : public ::testing::TestWithParam<std::tuple<std::string, AttnCase>> {
 protected:
  void SetUp() override {
    const std::string& name = std::get<0>(GetParam());
    absl::StatusOr<std::unique_ptr<Backend>> be = MakeNamedBackend(name);
    ASSERT_TRUE(be.ok() || name == "cuda") << be.status();
    if (!be.ok()) return cohost::testing::SkipWithoutCuda(be.status());
    checks_.emplace(std::move(*be), SeedFromEnv());
  }

  std::optional<OpChecks> checks_;
};

TEST_P(PagedAttentionTest, MatchesReference) { checks_->PagedAttention(std::get<1>(GetParam())); }

INSTANTIATE_TEST_SUITE_P(
    Backends, PagedAttentionTest,
    ::testing::Combine(::testing::Values("cpu", "cuda"), ::testing::ValuesIn(AttentionCases())),
    [](const ::testing::TestParamInfo<std::tuple<std::string, AttnCase>>& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
    });

}  // namespace
}  // namespace cohost::kernels::backend_ops
