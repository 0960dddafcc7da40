// OpenBLAS's core: a generic one is replaced by what cpuid supports when
// the CPU backend is made, and its products stay right.

#include "kernels/cpu/openblas_core.h"

#include <cblas.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"

namespace cohost::kernels::cpu {
namespace {

// Read before main, so before any backend (which may set the variable).
const bool kCoreTypeFromEnvironment = std::getenv("OPENBLAS_CORETYPE") != nullptr;

CpuFeatures Avx2Only() {
  CpuFeatures f;
  f.avx2 = f.fma = f.f16c = true;
  return f;
}

CpuFeatures SkylakeLevel() {
  CpuFeatures f = Avx2Only();
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512cd = true;
  return f;
}

TEST(OpenBlasCoreTest, AGenericCoreIsRaisedToWhatTheCpuRuns) {
  EXPECT_EQ(BetterOpenBlasCore(SkylakeLevel(), "Prescott"), "SkylakeX");
  EXPECT_EQ(BetterOpenBlasCore(SkylakeLevel(), "Nehalem"), "SkylakeX");
  EXPECT_EQ(BetterOpenBlasCore(Avx2Only(), "Prescott"), "Haswell");
  CpuFeatures no_dq = SkylakeLevel();
  no_dq.avx512dq = false;
  EXPECT_EQ(BetterOpenBlasCore(no_dq, "Core2"), "Haswell");
}

TEST(OpenBlasCoreTest, AKnownCoreOrAnOldCpuIsLeftAlone) {
  EXPECT_EQ(BetterOpenBlasCore(SkylakeLevel(), "Haswell"), std::nullopt);
  EXPECT_EQ(BetterOpenBlasCore(SkylakeLevel(), "Zen"), std::nullopt);
  EXPECT_EQ(BetterOpenBlasCore(SkylakeLevel(), "SkylakeX"), std::nullopt);
  EXPECT_EQ(BetterOpenBlasCore(CpuFeatures{}, "Prescott"), std::nullopt);
}

// On this machine: once a CPU backend exists, OpenBLAS runs no generic core
// below what the CPU supports (unless the environment chose one), and its
// sgemm still computes the product.
TEST(OpenBlasCoreTest, TheBackendLeavesOpenBlasOnTheCpusCore) {
  const std::unique_ptr<Backend> be = MakeCpuBackend(1);
  const std::string core = openblas_get_corename();
  if (!kCoreTypeFromEnvironment) {
    EXPECT_EQ(BetterOpenBlasCore(HostCpuFeatures(), core), std::nullopt)
        << "OpenBLAS runs " << core << " on " << HostCpuFeatures().Summary();
  }
  EXPECT_EQ(SettleOpenBlasCore(), core);
  constexpr int kM = 5, kN = 33, kK = 70;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(-4, 4);
  std::vector<float> a(kM * kK), b(kK * kN), c(kM * kN, -1.f);
  for (float& x : a) x = static_cast<float>(small(rng));
  for (float& x : b) x = static_cast<float>(small(rng));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kM, kN, kK, 1.f, a.data(), kK, b.data(),
              kN, 0.f, c.data(), kN);
  for (int i = 0; i < kM; ++i) {
    for (int j = 0; j < kN; ++j) {
      float want = 0;  // small integers: exact in any order
      for (int k = 0; k < kK; ++k) want += a[i * kK + k] * b[k * kN + j];
      ASSERT_EQ(c[i * kN + j], want) << core << " row " << i << " column " << j;
    }
  }
}

}  // namespace
}  // namespace cohost::kernels::cpu
