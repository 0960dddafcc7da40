// cpu::HalfGemm, 16-bit weights against fp32 activations: every path gives
// the products of the stored values (the AMX tiles' and the AVX512-BF16 pair
// products' for bf16 weights of the activations rounded to bf16, the tiles'
// for f16 ones within 4e-5), the vectorized dots
// give the scalar ones' bits, and a row's outputs do not depend on its batch.
// Paths this CPU lacks skip visibly.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/quant.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/half_gemm_amx.h"
#include "kernels/cpu/half_gemm_bf16.h"
#include "kernels/cpu/quant/cpu_features.h"
#include "kernels/cpu/quant/quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

// Random 16-bit weights of format f, n rows of k.
std::vector<uint16_t> RandomHalfRows(std::mt19937& rng, WeightFormat f, int64_t n, int64_t k) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<uint16_t> w(static_cast<size_t>(n * k));
  for (uint16_t& v : w)
    v = f == WeightFormat::kF16 ? F32ToF16(normal(rng)) : F32ToBf16(normal(rng));
  return w;
}

// Checks c ([m, n], rows ldc apart) against the exact sums, in double, of the
// bias and the 16-bit weights w ([n, k], format f) times the activations a
// ([m, k]), rounded to bf16 where `rounded`: each output within bound x the
// sum of its products' magnitudes, plus `slack`, and the columns past n (to
// ldc) still -7. Returns the most, relative to that magnitude, by which
// rounding the activations moves an exact sum.
double ExpectProducts(const std::vector<float>& c, int64_t ldc, const std::vector<uint16_t>& w,
                      WeightFormat f, const std::vector<float>& a, const std::vector<float>& bias,
                      int64_t m, int64_t n, int64_t k, bool rounded, double bound, double slack,
                      const char* path) {
  double moved = 0;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double want = bias[j], exact = bias[j], mag = std::fabs(bias[j]);
      for (int64_t i = 0; i < k; ++i) {
        const uint16_t h = w[j * k + i];
        const double wv = f == WeightFormat::kF16 ? F16ToF32(h) : Bf16ToF32(h);
        const float x = a[r * k + i];
        want += wv * (rounded ? Bf16ToF32(F32ToBf16(x)) : x);
        exact += wv * x;
        mag += std::fabs(wv * x);
      }
      moved = std::max(moved, std::fabs(want - exact) / mag);
      const float got = c[r * ldc + j];
      if (!(std::fabs(got - want) <= bound * mag + slack)) {
        ADD_FAILURE() << WeightFormatName(f) << " " << path << ": m " << m << " row " << r
                      << " column " << j << ": " << got << ", want " << want << " within "
                      << bound * mag + slack;
        return moved;
      }
    }
    for (int64_t j = n; j < ldc; ++j) {
      if (c[r * ldc + j] != -7.f) {
        ADD_FAILURE() << WeightFormatName(f) << " " << path << ": past n, row " << r;
        return moved;
      }
    }
  }
  return moved;
}

// Rows of 16-bit floats (F16 or BF16 weights kept as stored) against fp32
// activations: the dot-product path (up to HalfGemmDotRows() rows) and the
// widen-and-sgemm one (more) both give the products of the widened values,
// to fp32 rounding, whichever path the backend picks and when asked for by
// name (a CPU with AMX-BF16 picks the tiles for bf16 weights, whose
// products are those of the activations rounded to bf16, and for f16 ones
// past the dot rows, within 4e-5 of the exact products; one with
// AVX512-BF16 and no tiles the pair products for bf16 weights, the same
// products as the tiles').
TEST(HalfGemmTest, SixteenBitRowsGiveTheProductsOfTheirValues) {
  std::mt19937 rng(13);
  const std::unique_ptr<Backend> be = MakeCpuBackend(2);
  cpu::ThreadPool pool(2);
  constexpr int32_t kN = 37, kWidth = 96;
  std::normal_distribution<float> normal(0.f, 1.f);
  const bool tiles = cpu::HalfGemmAmxAvailable();
  const bool pairs = cpu::HalfGemmBf16DotsAvailable();
  for (const WeightFormat f : {WeightFormat::kF16, WeightFormat::kBF16}) {
    const std::vector<uint16_t> w = RandomHalfRows(rng, f, kN, kWidth);
    std::vector<float> bias(kN);
    for (float& b : bias) b = normal(rng);
    for (const int32_t m : {1, 3, 4, 5, 17, cpu::HalfGemmDotRows() + 1}) {
      std::vector<float> a(static_cast<size_t>(m) * kWidth);
      for (float& v : a) v = normal(rng);
      std::vector<float> c(static_cast<size_t>(m) * kN, -7.f);
      be->Gemm(a.data(), WeightRef(w.data(), f), bias.data(), m, kN, kWidth, c.data());
      const bool in_tiles = tiles && (f == WeightFormat::kBF16 || m > cpu::HalfGemmDotRows());
      const bool rounded = f == WeightFormat::kBF16 && (tiles || pairs);
      // F16 prompt rows in the tiles: three bf16 products a sum (2.3e-5 of
      // each product at most, half_gemm_amx.h).
      ExpectProducts(c, kN, w, f, a, bias, m, kN, kWidth, rounded,
                     in_tiles && f == WeightFormat::kF16 ? 4e-5 : 1e-6, 1e-6, "chosen");
      const bool dots = m <= cpu::HalfGemmDotRows();
      cpu::HalfGemm(a.data(), WeightRef(w.data(), f), bias.data(), m, kN, kWidth, c.data(), kN,
                    pool, dots ? cpu::HalfGemmPath::kDots : cpu::HalfGemmPath::kSgemm);
      ExpectProducts(c, kN, w, f, a, bias, m, kN, kWidth, false, 1e-6, 1e-6,
                     dots ? "dots" : "sgemm");
    }
  }
}

// Every dot kernel this CPU runs (the selected one, and the AVX2 one where
// the selected is 512-bit) gives the scalar kernel's bits, for any number of
// rows, whole passes of rows or not.
TEST(HalfGemmTest, TheVectorizedDotsEqualTheScalarOnesBitForBit) {
  if (!cpu::HalfGemmVectorized()) {
    GTEST_SKIP() << "this CPU lacks AVX2 + FMA + F16C (" << HostCpuFeatures().Summary() << ")";
  }
  std::printf("  the selected dot kernel: %s\n", cpu::HalfGemmDotsName());
  std::mt19937 rng(17);
  cpu::ThreadPool pool(2);
  constexpr int32_t kN = 21, kWidth = 160;
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const WeightFormat f : {WeightFormat::kF16, WeightFormat::kBF16}) {
    const std::vector<uint16_t> w = RandomHalfRows(rng, f, kN, kWidth);
    for (const int32_t m : {1, 2, 3, 4, 5, 17, 33}) {
      std::vector<float> a(static_cast<size_t>(m) * kWidth);
      for (float& v : a) v = normal(rng) * (m == 2 ? 1e-3f : 1.f);
      std::vector<float> scalar(static_cast<size_t>(m) * kN);
      cpu::HalfGemm(a.data(), WeightRef(w.data(), f), nullptr, m, kN, kWidth, scalar.data(), kN,
                    pool, cpu::HalfGemmPath::kScalarDots);
      for (const cpu::HalfGemmPath path :
           {cpu::HalfGemmPath::kDots, cpu::HalfGemmPath::kAvx2Dots}) {
        std::vector<float> vec(scalar.size());
        cpu::HalfGemm(a.data(), WeightRef(w.data(), f), nullptr, m, kN, kWidth, vec.data(), kN,
                      pool, path);
        EXPECT_EQ(vec, scalar) << WeightFormatName(f) << " m " << m << " path "
                               << static_cast<int>(path);
      }
    }
  }
}

// Up to HalfGemmDotRows() rows (a decode step's batch), a row's outputs are
// the bits it gets alone: a sequence's logits do not depend on its batch.
TEST(HalfGemmTest, UpToTheDotRowsARowsOutputsDoNotDependOnItsBatch) {
  std::mt19937 rng(19);
  cpu::ThreadPool pool(2);
  constexpr int32_t kN = 40, kWidth = 192;
  const int32_t m = cpu::HalfGemmDotRows();
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const WeightFormat f : {WeightFormat::kF16, WeightFormat::kBF16}) {
    const std::vector<uint16_t> w = RandomHalfRows(rng, f, kN, kWidth);
    std::vector<float> a(static_cast<size_t>(m) * kWidth);
    for (float& v : a) v = normal(rng);
    std::vector<float> batch(static_cast<size_t>(m) * kN);
    cpu::HalfGemm(a.data(), WeightRef(w.data(), f), nullptr, m, kN, kWidth, batch.data(), kN, pool);
    for (int32_t r = 0; r < m; ++r) {
      std::vector<float> alone(kN);
      cpu::HalfGemm(a.data() + static_cast<ptrdiff_t>(r) * kWidth, WeightRef(w.data(), f), nullptr,
                    1, kN, kWidth, alone.data(), kN, pool);
      EXPECT_EQ(std::vector<float>(batch.begin() + static_cast<ptrdiff_t>(r) * kN,
                                   batch.begin() + static_cast<ptrdiff_t>(r + 1) * kN),
                alone)
          << WeightFormatName(f) << " row " << r << " of " << m;
    }
  }
}

// The paths that round the activations to bf16, each skipped visibly where
// this CPU cannot run it: the AMX tiles (bf16 and f16 weights) and the
// AVX512-BF16 pair products (bf16 weights).
class HalfGemmRoundedTest : public ::testing::TestWithParam<cpu::HalfGemmPath> {
 protected:
  void SetUp() override {
    if (Amx() ? !cpu::HalfGemmAmxAvailable() : !cpu::HalfGemmBf16DotsAvailable()) {
      GTEST_SKIP() << "this CPU lacks " << (Amx() ? "AMX-BF16" : "AVX512-BF16")
                   << ", or COHOST_CPU_KERNELS holds it back (" << cpu::HostCpuFeatures().Summary()
                   << ")";
    }
  }
  bool Amx() const { return GetParam() == cpu::HalfGemmPath::kAmx; }
  // The weight formats the path takes.
  std::vector<WeightFormat> Formats() const {
    if (Amx()) return {WeightFormat::kBF16, WeightFormat::kF16};
    return {WeightFormat::kBF16};
  }
  // Whether kAuto gives it bf16 weights at any number of rows.
  bool Chosen() const { return Amx() || !cpu::HalfGemmAmxAvailable(); }
};

INSTANTIATE_TEST_SUITE_P(Paths, HalfGemmRoundedTest,
                         ::testing::Values(cpu::HalfGemmPath::kAmx, cpu::HalfGemmPath::kBf16Dots),
                         [](const ::testing::TestParamInfo<cpu::HalfGemmPath>& info) {
                           return info.param == cpu::HalfGemmPath::kAmx ? "AmxTiles" : "Bf16Pairs";
                         });

// For any number of rows and columns (whole tiles or blocks or not), with
// the bias, into rows ldc apart, leaving the columns past n alone:
// - bf16 weights: the products of the activations rounded to bf16, to fp32
//   rounding. The bound is far tighter than what rounding the activations
//   moves a sum, so skipping the rounding (or rounding another way) fails it.
// - f16 weights (the tiles): each split exactly into two bf16 values, each
//   activation into two within 2^-17 of it, three products a sum: within
//   4e-5 of the exact sums (2.3e-5 a product at most, and fp32's sums).
//   Rounding weights or activations to bf16 alone errs by up to 2^-8 of a
//   product, and leaving out either cross product by as much: both fail.
TEST_P(HalfGemmRoundedTest, TheProductsAreThosePromised) {
  std::mt19937 rng(23);
  cpu::ThreadPool pool(2);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int64_t kWidth = 160;
  for (const WeightFormat f : Formats()) {
    const bool bf16 = f == WeightFormat::kBF16;
    for (const int64_t n : {3, 16, 37, 64, 85}) {
      const std::vector<uint16_t> w = RandomHalfRows(rng, f, n, kWidth);
      std::vector<float> bias(static_cast<size_t>(n));
      for (float& b : bias) b = normal(rng);
      for (const int32_t m : {1, 2, 3, 15, 16, 17, 33, 48, 70}) {
        std::vector<float> a(static_cast<size_t>(m * kWidth));
        for (float& v : a) v = normal(rng);
        const int64_t ldc = n + 3;
        std::vector<float> c(static_cast<size_t>(m * ldc), -7.f);
        cpu::HalfGemm(a.data(), WeightRef(w.data(), f), bias.data(), m, static_cast<int32_t>(n),
                      kWidth, c.data(), static_cast<int32_t>(ldc), pool, GetParam());
        const double moved = ExpectProducts(c, ldc, w, f, a, bias, m, n, kWidth, bf16,
                                            bf16 ? 1e-6 : 4e-5, 0, Amx() ? "tiles" : "pairs");
        if (bf16) {
          EXPECT_GT(moved, 1e-5) << "n " << n << " m " << m << ": the bound tells rounding apart";
        }
      }
    }
  }
}

// kAuto gives the tiles bf16 weights at any number of rows and f16 ones
// past the dot rows, or, on a CPU without them, the pair products bf16
// weights at any number of rows; a row's outputs are then the bits it gets
// in any other such batch (and for bf16, alone).
TEST_P(HalfGemmRoundedTest, TheyTakeTheirRowsAndARowsOutputsDoNotDependOnItsBatch) {
  std::mt19937 rng(29);
  cpu::ThreadPool pool(2);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int32_t kN = 48, kWidth = 96;
  const int32_t m = cpu::HalfGemmDotRows() + 7;
  for (const WeightFormat f : Formats()) {
    SCOPED_TRACE(WeightFormatName(f));
    const std::vector<uint16_t> w = RandomHalfRows(rng, f, kN, kWidth);
    const WeightRef ref(w.data(), f);
    std::vector<float> a(static_cast<size_t>(m) * kWidth);
    for (float& v : a) v = normal(rng);
    std::vector<float> path(static_cast<size_t>(m) * kN), chosen(path.size());
    cpu::HalfGemm(a.data(), ref, nullptr, m, kN, kWidth, path.data(), kN, pool, GetParam());
    cpu::HalfGemm(a.data(), ref, nullptr, m, kN, kWidth, chosen.data(), kN, pool);
    if (Chosen()) {
      EXPECT_EQ(chosen, path);
    }
    // The same rows from row 9 of a longer batch, among other rows.
    constexpr int32_t kBefore = 9, kAfter = 20;
    std::vector<float> longer(static_cast<size_t>(kBefore + m + kAfter) * kWidth);
    for (float& v : longer) v = normal(rng);
    std::copy(a.begin(), a.end(), longer.begin() + static_cast<ptrdiff_t>(kBefore) * kWidth);
    std::vector<float> other(static_cast<size_t>(kBefore + m + kAfter) * kN);
    cpu::HalfGemm(longer.data(), ref, nullptr, kBefore + m + kAfter, kN, kWidth, other.data(), kN,
                  pool, GetParam());
    for (int32_t r = 0; r < m; ++r) {
      for (int32_t j = 0; j < kN; ++j) {
        ASSERT_EQ(other[static_cast<size_t>(r + kBefore) * kN + j],
                  path[static_cast<size_t>(r) * kN + j])
            << "row " << r << " column " << j;
      }
      if (f == WeightFormat::kF16) continue;  // one row alone takes the dots
      std::vector<float> alone(kN);
      cpu::HalfGemm(a.data() + static_cast<ptrdiff_t>(r) * kWidth, ref, nullptr, 1, kN, kWidth,
                    alone.data(), kN, pool, Chosen() ? cpu::HalfGemmPath::kAuto : GetParam());
      ASSERT_EQ(alone, std::vector<float>(path.begin() + static_cast<ptrdiff_t>(r) * kN,
                                          path.begin() + static_cast<ptrdiff_t>(r + 1) * kN))
          << "row " << r << " alone";
    }
  }
}

// A NaN or infinite activation spoils its own row's outputs, no other's.
TEST_P(HalfGemmRoundedTest, ANonFiniteActivationStaysInItsRow) {
  std::mt19937 rng(31);
  cpu::ThreadPool pool(2);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int32_t kN = 32, kWidth = 64, kM = 40;
  std::vector<float> a(static_cast<size_t>(kM) * kWidth);
  for (float& v : a) v = normal(rng);
  a[static_cast<size_t>(3) * kWidth + 5] = std::numeric_limits<float>::quiet_NaN();
  a[static_cast<size_t>(20) * kWidth + 63] = std::numeric_limits<float>::infinity();
  for (const WeightFormat f : Formats()) {
    SCOPED_TRACE(WeightFormatName(f));
    const std::vector<uint16_t> w = RandomHalfRows(rng, f, kN, kWidth);
    std::vector<float> c(static_cast<size_t>(kM) * kN);
    cpu::HalfGemm(a.data(), WeightRef(w.data(), f), nullptr, kM, kN, kWidth, c.data(), kN, pool,
                  GetParam());
    for (int32_t r = 0; r < kM; ++r) {
      for (int32_t j = 0; j < kN; ++j) {
        const float v = c[static_cast<size_t>(r) * kN + j];
        if (r == 3 || r == 20) {
          EXPECT_FALSE(std::isfinite(v)) << "row " << r << " column " << j;
        } else {
          ASSERT_TRUE(std::isfinite(v)) << "row " << r << " column " << j;
        }
      }
    }
  }
}

// Against weights that pick one activation each (an identity), each
// activation comes back as the path rounds it: for bf16 weights F32ToBf16's
// bf16 (ties to even, past the largest bf16 infinite, NaN kept), but
// subnormals, which both the tile unit and the pair products flush to zero;
// for f16 weights (the tiles) within 2^-17 of the activation, and NaN where
// it is infinite or past bf16's largest (0 x inf among the split products).
// Each row holds one such value among zeros.
TEST_P(HalfGemmRoundedTest, AgainstAnIdentityEachActivationComesBackAsRounded) {
  constexpr uint32_t kBits[] = {
      0x3f808000,  // 1 + 2^-8: a tie, to even (down)
      0x3f818000,  // a tie, to even (up)
      0x3f808001,  // just past a tie
      0xbf7fffff,  // rounds up into the next binade
      0x7f7fffff,  // the largest float: past bf16's largest
      0xff7fffff,  //
      0x7f800000,  // infinities
      0xff800000,  //
      0x7fc00001,  // NaNs, quiet and signalling
      0x7f800001,  //
      0x00400000,  // a subnormal
      0x80000000,  // -0
      0x00800000,  // the smallest normal float
      0x3e99999a,  // 0.3
      0xc0490fdb,  // -pi
      0x0da24260,  // 1e-30
  };
  constexpr int32_t kN = 32, kWidth = 32, kM = 40;
  std::vector<float> a(static_cast<size_t>(kM) * kWidth, 0.f);
  std::vector<float> value(kM);
  for (int32_t r = 0; r < kM; ++r) {
    const uint32_t bits = kBits[r % std::size(kBits)];
    std::memcpy(&value[r], &bits, sizeof bits);
    a[static_cast<size_t>(r) * kWidth + r % kWidth] = value[r];
  }
  cpu::ThreadPool pool(2);
  for (const WeightFormat f : Formats()) {
    SCOPED_TRACE(WeightFormatName(f));
    std::vector<uint16_t> w(static_cast<size_t>(kN) * kWidth, 0);
    for (int32_t j = 0; j < kN; ++j)
      w[static_cast<size_t>(j) * kWidth + j] =
          f == WeightFormat::kF16 ? F32ToF16(1.f) : F32ToBf16(1.f);
    std::vector<float> c(static_cast<size_t>(kM) * kN);
    cpu::HalfGemm(a.data(), WeightRef(w.data(), f), nullptr, kM, kN, kWidth, c.data(), kN, pool,
                  GetParam());
    for (int32_t r = 0; r < kM; ++r) {
      const float x = value[r], got = c[static_cast<size_t>(r) * kN + r % kWidth];
      uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      SCOPED_TRACE(::testing::Message() << "row " << r << ", bits 0x" << std::hex << bits);
      const float bf = Bf16ToF32(F32ToBf16(x));
      if (std::isnan(x) || (std::isinf(bf) && f == WeightFormat::kF16)) {
        EXPECT_TRUE(std::isnan(got));
      } else if (std::isinf(bf)) {
        EXPECT_EQ(got, bf);
      } else if (std::fpclassify(bf) == FP_SUBNORMAL) {
        EXPECT_EQ(got, 0.f);
      } else if (f == WeightFormat::kBF16) {
        EXPECT_EQ(got, bf);
      } else {
        EXPECT_NEAR(got, x, std::ldexp(std::fabs(x), -17));
      }
      if (!std::isfinite(bf)) continue;  // 0 x inf: the row's other outputs are NaN
      for (int32_t j = 0; j < kN; ++j) {
        if (j != r % kWidth) {
          EXPECT_EQ(c[static_cast<size_t>(r) * kN + j], 0.f) << "column " << j;
        }
      }
    }
  }
}

// The pair products give, bit for bit, the sums half_gemm_bf16.h states: each
// lane adds, per 32 values of k, the product of its odd pair and then that
// of its even pair (vdpbf16ps as the ISA defines it: each addition rounded
// to fp32; a product of two bf16 values is exact), the sixteen lanes are
// halved four times, and the bias comes last. Any other order, or a missed
// rounding of the activations, changes some bits.
TEST(HalfGemmTest, TheBf16PairsAreTheirStatedSumsBitForBit) {
  if (!cpu::HalfGemmBf16DotsAvailable()) {
    GTEST_SKIP() << "this CPU lacks AVX512-BF16, or COHOST_CPU_KERNELS holds it back ("
                 << cpu::HostCpuFeatures().Summary() << ")";
  }
  std::mt19937 rng(37);
  cpu::ThreadPool pool(2);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int32_t kN = 37, kWidth = 160;
  const std::vector<uint16_t> w = RandomHalfRows(rng, WeightFormat::kBF16, kN, kWidth);
  std::vector<float> bias(kN);
  for (float& b : bias) b = normal(rng);
  // 513 and 517: a second pass of rounded rows (512 a pass), of one row
  // (the one-row kernel) and of five.
  for (const int32_t m : {1, 6, 17, 513, 517}) {
    std::vector<float> a(static_cast<size_t>(m) * kWidth);
    for (float& v : a) v = normal(rng);
    std::vector<float> c(static_cast<size_t>(m) * kN);
    cpu::HalfGemm(a.data(), WeightRef(w.data(), WeightFormat::kBF16), bias.data(), m, kN, kWidth,
                  c.data(), kN, pool, cpu::HalfGemmPath::kBf16Dots);
    for (int32_t r = 0; r < m; ++r) {
      for (int32_t j = 0; j < kN; ++j) {
        const uint16_t* wj = w.data() + static_cast<ptrdiff_t>(j) * kWidth;
        const float* x = a.data() + static_cast<ptrdiff_t>(r) * kWidth;
        const auto product = [&](int64_t i) {
          return Bf16ToF32(wj[i]) * Bf16ToF32(F32ToBf16(x[i]));
        };
        float acc[16] = {};
        for (int64_t i = 0; i < kWidth; i += 32) {
          for (int l = 0; l < 16; ++l) {
            acc[l] += product(i + 2 * l + 1);
            acc[l] += product(i + 2 * l);
          }
        }
        for (int half = 8; half >= 1; half /= 2) {
          for (int l = 0; l < half; ++l) acc[l] += acc[l + half];
        }
        ASSERT_EQ(c[static_cast<size_t>(r) * kN + j], acc[0] + bias[j])
            << "m " << m << " row " << r << " column " << j;
      }
    }
  }
}

// The quantized tables' AMX tile loads other tile shapes on the same pool
// threads: calls of both, alternated, give what each gives alone.
TEST(HalfGemmTest, CallsBesideTheQuantizedTablesTilesGiveTheSameOutputs) {
  if (!cpu::HalfGemmAmxAvailable()) {
    GTEST_SKIP() << "this CPU lacks AMX-BF16, or COHOST_CPU_KERNELS holds it back ("
                 << cpu::HostCpuFeatures().Summary() << ")";
  }
  std::printf("  the quantized table: %s\n", SelectedQuantKernels().name);
  std::mt19937 rng(41);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> code(-127, 127);
  const std::unique_ptr<Backend> be = MakeCpuBackend(2);
  constexpr int32_t kN = 48, kWidth = 128, kM = 48;  // 48 rows: the AMX rows of both
  std::vector<float> a(static_cast<size_t>(kM) * kWidth);
  for (float& v : a) v = normal(rng);
  std::vector<BlockQ8_0> q8(static_cast<size_t>(kN) * kWidth / kQuantBlock);
  for (BlockQ8_0& b : q8) {
    b.d = F32ToF16(0.01f);
    for (int8_t& v : b.qs) v = static_cast<int8_t>(code(rng));
  }
  const std::vector<uint16_t> bf = RandomHalfRows(rng, WeightFormat::kBF16, kN, kWidth);
  const std::vector<uint16_t> f16 = RandomHalfRows(rng, WeightFormat::kF16, kN, kWidth);
  const WeightRef weights[] = {WeightRef(q8.data(), WeightFormat::kQ8_0),
                               WeightRef(bf.data(), WeightFormat::kBF16),
                               WeightRef(f16.data(), WeightFormat::kF16)};
  std::vector<std::vector<float>> first;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < std::size(weights); ++i) {
      std::vector<float> c(static_cast<size_t>(kM) * kN);
      be->Gemm(a.data(), weights[i], nullptr, kM, kN, kWidth, c.data());
      if (round == 0) {
        first.push_back(c);
      } else {
        EXPECT_EQ(c, first[i]) << "round " << round << ", " << WeightFormatName(weights[i].format);
      }
    }
  }
}

}  // namespace
}  // namespace cohost::kernels::cpu
