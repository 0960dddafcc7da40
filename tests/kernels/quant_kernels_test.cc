// The quantized dot products: every vectorized table against the scalar
// reference (the same activation bytes, exactly; the same integer sums,
// exactly, with unit scales where the whole result is an integer; within
// rounding of fp32 accumulation with random and extreme scales), and the
// scalar table against fp32 arithmetic on the dequantized values. Tables this
// CPU cannot run skip visibly.

#include "kernels/cpu/quant/quant_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/dtype.h"
#include "cohost/kernels/quant.h"
#include "gtest/gtest.h"
#include "kernels/cpu/quant/cpu_features.h"

namespace cohost::kernels::cpu {
namespace {

constexpr int64_t kBlocks = 16;  // rows of 512 values
constexpr int64_t kK = kBlocks * kQuantBlock;

// The tables to check against the scalar one on this CPU.
std::vector<const QuantKernels*> Vectorized() {
  std::vector<const QuantKernels*> out;
  if (const QuantKernels* avx2 = Avx2QuantKernels()) out.push_back(avx2);
  return out;
}

#define SKIP_WITHOUT_VECTOR_TABLES()                                                          \
  if (Vectorized().empty()) {                                                                 \
    GTEST_SKIP() << "this CPU has no vectorized quant table (" << HostCpuFeatures().Summary() \
                 << ")";                                                                      \
  }

std::vector<float> RandomRow(std::mt19937& rng, float scale) {
  std::normal_distribution<float> n(0.f, scale);
  std::vector<float> x(kK);
  for (float& v : x) v = n(rng);
  return x;
}

// Weights with random codes and a scale of `d` (an fp16 value).
template <typename Block>
std::vector<Block> RandomWeights(std::mt19937& rng, float d, float m = 0) {
  std::vector<Block> w(kBlocks);
  std::uniform_int_distribution<int> byte(0, 255);
  for (Block& b : w) {
    for (auto& q : b.qs) q = static_cast<std::remove_reference_t<decltype(q)>>(byte(rng));
    b.d = F32ToF16(d);
    if constexpr (std::is_same_v<Block, BlockQ4_1>) b.m = F32ToF16(m);
  }
  return w;
}

// The value i of block b, dequantized.
float Value(const BlockQ8_0& b, int i) { return F16ToF32(b.d) * b.qs[i]; }
float Value(const BlockQ4_0& b, int i) {
  const int q = i < 16 ? (b.qs[i] & 0xf) : (b.qs[i - 16] >> 4);
  return F16ToF32(b.d) * static_cast<float>(q - 8);
}
float Value(const BlockQ4_1& b, int i) {
  const int q = i < 16 ? (b.qs[i] & 0xf) : (b.qs[i - 16] >> 4);
  return F16ToF32(b.d) * static_cast<float>(q) + F16ToF32(b.m);
}

// sum w x in double over the dequantized weights and activations, and the sum
// of |terms| (the scale of any rounding).
template <typename Block>
std::pair<double, double> Reference(const std::vector<Block>& w, const std::vector<BlockQ8A>& a) {
  double sum = 0, mag = 0;
  for (int64_t b = 0; b < kBlocks; ++b) {
    for (int i = 0; i < kQuantBlock; ++i) {
      const double t = static_cast<double>(Value(w[b], i)) * a[b].d * a[b].qs[i];
      sum += t;
      mag += std::fabs(t);
    }
  }
  return {sum, mag};
}

std::vector<BlockQ8A> Quantize(const QuantKernels& k, const std::vector<float>& x) {
  std::vector<BlockQ8A> a(x.size() / kQuantBlock);
  k.quantize_q8a(x.data(), static_cast<int64_t>(x.size()), a.data());
  return a;
}

TEST(CpuFeaturesTest, NamesTheCpuAndWhatItHas) {
  const CpuFeatures& f = HostCpuFeatures();
  EXPECT_FALSE(f.Summary().empty());
  // Implications the hardware guarantees; a detection bug breaks them.
  if (f.avx512vnni || f.avx512bw) {
    EXPECT_TRUE(f.avx512f);
  }
  if (f.avx512f) {
    EXPECT_TRUE(f.avx2);
  }
  const bool avx2_table = Avx2QuantKernels() != nullptr;
  EXPECT_EQ(avx2_table, f.avx2 && f.fma && f.f16c);
  const char* force = std::getenv("COHOST_CPU_KERNELS");
  const bool forced_scalar = force != nullptr && std::string(force) == "scalar";
  EXPECT_STREQ(SelectedQuantKernels().name, avx2_table && !forced_scalar ? "avx2" : "scalar");
}

TEST(QuantizeQ8ATest, ScalarRoundsToNearestWithTheBlocksScale) {
  std::vector<float> x(kQuantBlock, 0.f);
  x[0] = 127.f;  // d = 1
  x[1] = 2.5f;   // a tie: to even
  x[2] = 3.5f;
  x[3] = -2.5f;
  x[4] = 0.49f;
  std::vector<BlockQ8A> a = Quantize(ScalarQuantKernels(), x);
  EXPECT_EQ(a[0].d, 1.f);
  EXPECT_EQ(a[0].qs[0], 127);
  EXPECT_EQ(a[0].qs[1], 2);
  EXPECT_EQ(a[0].qs[2], 4);
  EXPECT_EQ(a[0].qs[3], -2);
  EXPECT_EQ(a[0].qs[4], 0);
  EXPECT_EQ(a[0].s, 127.f + 2 + 4 - 2);
  std::vector<float> zeros(kQuantBlock, 0.f);
  a = Quantize(ScalarQuantKernels(), zeros);
  EXPECT_EQ(a[0].d, 0.f);
  EXPECT_EQ(a[0].s, 0.f);
}

TEST(QuantizeQ8ATest, EveryTableWritesTheSameBytes) {
  SKIP_WITHOUT_VECTOR_TABLES();
  std::mt19937 rng(1);
  for (const QuantKernels* k : Vectorized()) {
    for (const float scale : {1.f, 1e-30f, 1e30f, 3e-3f}) {
      std::vector<float> x = RandomRow(rng, scale);
      std::fill(x.begin(), x.begin() + kQuantBlock, 0.f);  // an all-zero block
      for (int i = 0; i < kQuantBlock; ++i) x[kQuantBlock + i] = 0.5f * static_cast<float>(i - 16);
      const std::vector<BlockQ8A> want = Quantize(ScalarQuantKernels(), x);
      const std::vector<BlockQ8A> got = Quantize(*k, x);
      for (int64_t b = 0; b < kBlocks; ++b) {
        EXPECT_EQ(got[b].d, want[b].d) << k->name << " block " << b << " scale " << scale;
        EXPECT_EQ(got[b].s, want[b].s) << k->name << " block " << b << " scale " << scale;
        EXPECT_EQ(std::memcmp(got[b].qs, want[b].qs, kQuantBlock), 0)
            << k->name << " block " << b << " scale " << scale;
      }
    }
  }
}

// Unit scales make every term an integer and every sum exact in fp32.
TEST(QuantDotTest, WithUnitScalesEveryTableGivesTheExactIntegerSum) {
  std::mt19937 rng(2);
  std::vector<const QuantKernels*> tables = Vectorized();
  tables.push_back(&ScalarQuantKernels());
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<BlockQ8A> a(kBlocks);
    std::uniform_int_distribution<int> q(-127, 127);
    for (BlockQ8A& b : a) {
      int sum = 0;
      for (int8_t& v : b.qs) sum += v = static_cast<int8_t>(q(rng));
      b.d = 1.f;
      b.s = static_cast<float>(sum);
    }
    auto q8 = RandomWeights<BlockQ8_0>(rng, 1.f);
    auto q40 = RandomWeights<BlockQ4_0>(rng, 1.f);
    auto q41 = RandomWeights<BlockQ4_1>(rng, 1.f, 3.f);
    for (const QuantKernels* k : tables) {
      EXPECT_EQ(k->dot_q8_0(q8.data(), a.data(), kBlocks), Reference(q8, a).first) << k->name;
      EXPECT_EQ(k->dot_q4_0(q40.data(), a.data(), kBlocks), Reference(q40, a).first) << k->name;
      EXPECT_EQ(k->dot_q4_1(q41.data(), a.data(), kBlocks), Reference(q41, a).first) << k->name;
    }
  }
}

TEST(QuantDotTest, WeightsAtMinus128StayExact) {
  std::vector<BlockQ8_0> w(kBlocks);
  std::vector<BlockQ8A> a(kBlocks);
  for (int64_t b = 0; b < kBlocks; ++b) {
    w[b].d = F32ToF16(1.f);
    std::fill(std::begin(w[b].qs), std::end(w[b].qs), int8_t{-128});
    std::fill(std::begin(a[b].qs), std::end(a[b].qs), int8_t{-127});
    a[b].d = 1.f;
  }
  const float want = 128.f * 127.f * kQuantBlock * kBlocks;
  EXPECT_EQ(ScalarQuantKernels().dot_q8_0(w.data(), a.data(), kBlocks), want);
  for (const QuantKernels* k : Vectorized()) {
    EXPECT_EQ(k->dot_q8_0(w.data(), a.data(), kBlocks), want) << k->name;
  }
}

// Random and extreme scales: the vectorized tables sum in another order, so
// they agree with the scalar one to fp32 rounding of the terms' magnitude,
// and the scalar one agrees with double arithmetic on the dequantized values.
TEST(QuantDotTest, RandomAndExtremeScalesAgreeToRounding) {
  std::mt19937 rng(3);
  const QuantKernels& scalar = ScalarQuantKernels();
  for (const float wd : {0.01f, 60000.f, 6e-5f, 1.f}) {
    for (const float xs : {1.f, 1e-20f, 1e20f}) {
      const std::vector<BlockQ8A> a = Quantize(scalar, RandomRow(rng, xs));
      auto q8 = RandomWeights<BlockQ8_0>(rng, wd);
      auto q40 = RandomWeights<BlockQ4_0>(rng, wd);
      auto q41 = RandomWeights<BlockQ4_1>(rng, wd, -wd * 0.5f);  // both within fp16
      const auto check = [&](const char* what, float got, std::pair<double, double> ref) {
        const double tol = 1e-5 * ref.second + 1e-30;
        EXPECT_NEAR(got, ref.first, tol) << what << " wd " << wd << " xs " << xs;
      };
      check("scalar q8_0", scalar.dot_q8_0(q8.data(), a.data(), kBlocks), Reference(q8, a));
      check("scalar q4_0", scalar.dot_q4_0(q40.data(), a.data(), kBlocks), Reference(q40, a));
      check("scalar q4_1", scalar.dot_q4_1(q41.data(), a.data(), kBlocks), Reference(q41, a));
      for (const QuantKernels* k : Vectorized()) {
        check(k->name, k->dot_q8_0(q8.data(), a.data(), kBlocks), Reference(q8, a));
        check(k->name, k->dot_q4_0(q40.data(), a.data(), kBlocks), Reference(q40, a));
        check(k->name, k->dot_q4_1(q41.data(), a.data(), kBlocks), Reference(q41, a));
      }
    }
  }
}

// The four-row kernels give each row exactly what the single-row kernel of
// the same table gives it.
TEST(QuantDotTest, FourRowsAtOnceEqualEachRowAlone) {
  std::mt19937 rng(5);
  std::vector<const QuantKernels*> tables = Vectorized();
  tables.push_back(&ScalarQuantKernels());
  for (const QuantKernels* k : tables) {
    std::vector<BlockQ8A> a;
    for (int r = 0; r < 4; ++r) {
      const std::vector<BlockQ8A> row = Quantize(*k, RandomRow(rng, r == 2 ? 1e-3f : 1.f));
      a.insert(a.end(), row.begin(), row.end());
    }
    auto q8 = RandomWeights<BlockQ8_0>(rng, 0.02f);
    auto q40 = RandomWeights<BlockQ4_0>(rng, 0.03f);
    auto q41 = RandomWeights<BlockQ4_1>(rng, 0.01f, -0.05f);
    float four[4];
    k->dot4_q8_0(q8.data(), a.data(), kBlocks, kBlocks, four);
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(four[r], k->dot_q8_0(q8.data(), a.data() + r * kBlocks, kBlocks)) << k->name << r;
    }
    k->dot4_q4_0(q40.data(), a.data(), kBlocks, kBlocks, four);
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(four[r], k->dot_q4_0(q40.data(), a.data() + r * kBlocks, kBlocks)) << k->name << r;
    }
    k->dot4_q4_1(q41.data(), a.data(), kBlocks, kBlocks, four);
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(four[r], k->dot_q4_1(q41.data(), a.data() + r * kBlocks, kBlocks)) << k->name << r;
    }
  }
}

// The activations' quantization error is what the int8 path costs: against
// the unquantized activations, within half a step of each block's scale.
TEST(QuantDotTest, TheActivationsQuantizationErrorIsBounded) {
  std::mt19937 rng(4);
  const QuantKernels& k = SelectedQuantKernels();
  const std::vector<float> x = RandomRow(rng, 1.f);
  const std::vector<BlockQ8A> a = Quantize(k, x);
  auto w = RandomWeights<BlockQ4_1>(rng, 0.02f, -0.1f);
  double exact = 0, bound = 0;
  for (int64_t b = 0; b < kBlocks; ++b) {
    for (int i = 0; i < kQuantBlock; ++i) {
      exact += static_cast<double>(Value(w[b], i)) * x[b * kQuantBlock + i];
      bound += std::fabs(Value(w[b], i)) * a[b].d / 2;
    }
  }
  EXPECT_NEAR(k.dot_q4_1(w.data(), a.data(), kBlocks), exact, bound * 1.001 + 1e-6);
}

}  // namespace
}  // namespace cohost::kernels::cpu
