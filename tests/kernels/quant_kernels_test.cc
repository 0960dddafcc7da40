// The quantized dot products, every block format: every vectorized table
// against the scalar reference (the same activation bytes, exactly; the same
// integer sums, exactly, with unit scales where the whole result is an
// integer; within rounding of fp32 accumulation with random and extreme
// scales), and the scalar table against double arithmetic on the values the
// loader's dequantizer gives, itself checked against the gguf package; and
// the committed gguf-package blocks directly. Tables this CPU cannot run skip
// visibly.

#include "kernels/cpu/quant/quant_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/quant.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/quant/cpu_features.h"
#include "runtime/loader/dequant.h"
#include "tests/support/dequant_reference.h"

namespace cohost::kernels::cpu {
namespace {

constexpr int64_t kBlocks = 16;  // rows of 512 values: 16 blocks, 2 super-blocks
constexpr int64_t kK = kBlocks * kQuantBlock;

constexpr WeightFormat kFormats[] = {WeightFormat::kQ8_0, WeightFormat::kQ4_0, WeightFormat::kQ4_1,
                                     WeightFormat::kQ5_0, WeightFormat::kQ5_1, WeightFormat::kQ4_K,
                                     WeightFormat::kQ5_K, WeightFormat::kQ6_K, WeightFormat::kQ2_K,
                                     WeightFormat::kQ3_K};

// The vectorized tables, each checked against the scalar one in its own
// instance of VectorTableTest: a table this CPU cannot run (or that
// COHOST_CPU_KERNELS holds back) is skipped visibly, by name.
struct VectorTable {
  const char* name;
  const QuantKernels* (*get)();
};
constexpr VectorTable kVectorTables[] = {
    {"avx2", Avx2QuantKernels}, {"avx512vnni", Avx512VnniQuantKernels}, {"amx", AmxQuantKernels}};

std::vector<const QuantKernels*> AllTables() {
  std::vector<const QuantKernels*> out;
  for (const VectorTable& t : kVectorTables) {
    if (const QuantKernels* k = t.get()) out.push_back(k);
  }
  out.push_back(&ScalarQuantKernels());
  return out;
}

class VectorTableTest : public ::testing::TestWithParam<VectorTable> {
 protected:
  void SetUp() override {
    table_ = GetParam().get();
    if (table_ == nullptr) {
      GTEST_SKIP() << "this CPU cannot run the " << GetParam().name << " table ("
                   << HostCpuFeatures().Summary() << ")";
    }
  }
  const QuantKernels* table_ = nullptr;
};

std::vector<float> RandomRow(std::mt19937& rng, float scale, int64_t k = kK) {
  std::normal_distribution<float> n(0.f, scale);
  std::vector<float> x(k);
  for (float& v : x) v = n(rng);
  return x;
}

runtime::GgmlType GgmlTypeOf(WeightFormat f) {
  for (uint32_t id = 0; id < 64; ++id) {
    const runtime::GgmlTypeTraits* t = runtime::FindGgmlType(id);
    if (t != nullptr && std::string_view(t->name.data(), t->name.size()) == WeightFormatName(f)) {
      return t->type;
    }
  }
  ADD_FAILURE() << "no ggml type " << WeightFormatName(f);
  return runtime::GgmlType::kF32;
}

// One weight row of kK values in format `f`: random codes, and every fp16
// scale field set to `d` (the main scales) or `m` (mins: Q4_1, Q5_1; dmin
// of the K-quants).
struct Row {
  WeightFormat format;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // the loader's dequantization
};

template <typename Block>
void SetScales(std::vector<uint8_t>& bytes, float d, float m) {
  for (size_t at = 0; at < bytes.size(); at += sizeof(Block)) {
    Block b;
    std::memcpy(&b, bytes.data() + at, sizeof(Block));
    b.d = F32ToF16(d);
    if constexpr (requires { b.m; }) b.m = F32ToF16(m);
    if constexpr (requires { b.dmin; }) b.dmin = F32ToF16(m);
    std::memcpy(bytes.data() + at, &b, sizeof(Block));
  }
}

Row RandomWeights(std::mt19937& rng, WeightFormat f, float d, float m = 0) {
  Row r{f, std::vector<uint8_t>(QuantRowBytes(f, kK)), std::vector<float>(kK)};
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : r.bytes) b = static_cast<uint8_t>(byte(rng));
  switch (f) {
    case WeightFormat::kQ8_0:
      SetScales<BlockQ8_0>(r.bytes, d, m);
      break;
    case WeightFormat::kQ4_0:
      SetScales<BlockQ4_0>(r.bytes, d, m);
      break;
    case WeightFormat::kQ4_1:
      SetScales<BlockQ4_1>(r.bytes, d, m);
      break;
    case WeightFormat::kQ5_0:
      SetScales<BlockQ5_0>(r.bytes, d, m);
      break;
    case WeightFormat::kQ5_1:
      SetScales<BlockQ5_1>(r.bytes, d, m);
      break;
    case WeightFormat::kQ4_K:
      SetScales<BlockQ4_K>(r.bytes, d, m);
      break;
    case WeightFormat::kQ5_K:
      SetScales<BlockQ5_K>(r.bytes, d, m);
      break;
    case WeightFormat::kQ6_K:
      SetScales<BlockQ6_K>(r.bytes, d, m);
      break;
    case WeightFormat::kQ2_K:
      SetScales<BlockQ2_K>(r.bytes, d, m);
      break;
    case WeightFormat::kQ3_K:
      SetScales<BlockQ3_K>(r.bytes, d, m);
      break;
    case WeightFormat::kDense:
    case WeightFormat::kF16:
    case WeightFormat::kBF16:
      break;
  }
  EXPECT_TRUE(runtime::DequantizeToF32(GgmlTypeOf(f), r.bytes, kK, absl::MakeSpan(r.values)).ok());
  return r;
}

// sum w x in double over the dequantized weights and activations, and the sum
// of |terms| (the scale of any rounding).
std::pair<double, double> Reference(const std::vector<float>& w, const BlockQ8A* a) {
  double sum = 0, mag = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const BlockQ8A& b = a[i / kQuantBlock];
    const double t = static_cast<double>(w[i]) * b.d * b.qs[i % kQuantBlock];
    sum += t;
    mag += std::fabs(t);
  }
  return {sum, mag};
}

std::vector<BlockQ8A> Quantize(const QuantKernels& k, const std::vector<float>& x) {
  std::vector<BlockQ8A> a(x.size() / kQuantBlock);
  k.quantize_q8a(x.data(), static_cast<int64_t>(x.size()), a.data());
  return a;
}

// An activation block written by hand: its scale d, and the sums
// quantize_q8a would give its codes.
void SetSums(BlockQ8A& b, float d) {
  int32_t sum[2] = {0, 0};
  for (int i = 0; i < kQuantBlock; ++i) sum[i / 16] += b.qs[i];
  b.d = d;
  b.s = d * static_cast<float>(sum[0] + sum[1]);
  b.sum16[0] = static_cast<int16_t>(sum[0]);
  b.sum16[1] = static_cast<int16_t>(sum[1]);
}

// One weight row against one activation row: a tile of one.
float Dot(const QuantKernels& k, WeightFormat f, const void* w, const BlockQ8A* a, int64_t nb) {
  float out = 0;
  k.Tile(f)(w, QuantRowBytes(f, nb * kQuantBlock), 1, a, 1, nb, &out, 1);
  return out;
}

// Rows of kK values one after another, as a matrix holds them.
std::vector<uint8_t> Concatenated(const std::vector<Row>& rows) {
  std::vector<uint8_t> out;
  for (const Row& r : rows) out.insert(out.end(), r.bytes.begin(), r.bytes.end());
  return out;
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
  if (f.amx_int8 || f.amx_bf16) {
    EXPECT_TRUE(f.amx_tile);
  }
  const bool avx2_table = Avx2QuantKernels() != nullptr;
  EXPECT_EQ(avx2_table, f.avx2 && f.fma && f.f16c);
  const bool vnni_table = Avx512VnniQuantKernels() != nullptr;
  EXPECT_EQ(vnni_table, avx2_table && f.avx512f && f.avx512vl && f.avx512vnni);
  const bool amx_table = AmxQuantKernels() != nullptr;
  EXPECT_EQ(amx_table, vnni_table && f.amx_tile && f.amx_int8);
  const char* force = std::getenv("COHOST_CPU_KERNELS");
  const std::string forced = force != nullptr ? force : "";
  const bool no_amx = forced == "avx2" || forced == "avx512vnni";
  const char* want = forced == "scalar"               ? "scalar"
                     : amx_table && !no_amx           ? "amx"
                     : vnni_table && forced != "avx2" ? "avx512vnni"
                     : avx2_table                     ? "avx2"
                                                      : "scalar";
  EXPECT_STREQ(SelectedQuantKernels().name, want);
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
  EXPECT_EQ(a[0].sum16[0], 127 + 2 + 4 - 2);
  EXPECT_EQ(a[0].sum16[1], 0);
  std::vector<float> zeros(kQuantBlock, 0.f);
  a = Quantize(ScalarQuantKernels(), zeros);
  EXPECT_EQ(a[0].d, 0.f);
  EXPECT_EQ(a[0].s, 0.f);
}

TEST_P(VectorTableTest, QuantizesActivationsToTheScalarTablesBytes) {
  std::mt19937 rng(1);
  const QuantKernels* k = table_;
  for (const float scale : {1.f, 1e-30f, 1e30f, 3e-3f}) {
    std::vector<float> x = RandomRow(rng, scale);
    std::fill(x.begin(), x.begin() + kQuantBlock, 0.f);  // an all-zero block
    for (int i = 0; i < kQuantBlock; ++i) x[kQuantBlock + i] = 0.5f * static_cast<float>(i - 16);
    const std::vector<BlockQ8A> want = Quantize(ScalarQuantKernels(), x);
    const std::vector<BlockQ8A> got = Quantize(*k, x);
    for (int64_t b = 0; b < kBlocks; ++b) {
      EXPECT_EQ(got[b].d, want[b].d) << k->name << " block " << b << " scale " << scale;
      EXPECT_EQ(got[b].s, want[b].s) << k->name << " block " << b << " scale " << scale;
      EXPECT_EQ(got[b].sum16[0], want[b].sum16[0]) << k->name << " block " << b;
      EXPECT_EQ(got[b].sum16[1], want[b].sum16[1]) << k->name << " block " << b;
      EXPECT_EQ(std::memcmp(got[b].qs, want[b].qs, kQuantBlock), 0)
          << k->name << " block " << b << " scale " << scale;
    }
  }
}

// Values the scalar table takes as 0 (NaN, an infinity and so anything times
// its zero inverse scale, a block so small its inverse scale overflows) are
// 0 in every table, with the same sums: the vector tables wrote the
// conversion's INT_MIN, saturated to -128, and sums off by 2^31.
TEST_P(VectorTableTest, NonFiniteAndTinyBlocksQuantizeAsInTheScalarTable) {
  std::mt19937 rng(5);
  std::vector<float> x = RandomRow(rng, 1.f);
  x[3] = std::numeric_limits<float>::quiet_NaN();                // a NaN in block 0
  x[kQuantBlock - 1] = std::numeric_limits<float>::quiet_NaN();  // and at its end
  x[kQuantBlock + 8] = std::numeric_limits<float>::infinity();   // an infinity in block 1
  for (int i = 0; i < kQuantBlock; ++i) x[2 * kQuantBlock + i] = i % 2 ? 1e-37f : -2e-38f;
  const auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  const std::vector<BlockQ8A> want = Quantize(ScalarQuantKernels(), x);
  const QuantKernels* k = table_;
  const std::vector<BlockQ8A> got = Quantize(*k, x);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(bits(got[b].d), bits(want[b].d)) << k->name << " block " << b;
    EXPECT_EQ(bits(got[b].s), bits(want[b].s)) << k->name << " block " << b;
    EXPECT_EQ(got[b].sum16[0], want[b].sum16[0]) << k->name << " block " << b;
    EXPECT_EQ(got[b].sum16[1], want[b].sum16[1]) << k->name << " block " << b;
    EXPECT_EQ(std::memcmp(got[b].qs, want[b].qs, kQuantBlock), 0) << k->name << " block " << b;
  }
}

// Unit scales (and small activations for the K-quants, whose integer
// scales multiply) make every term an integer and every partial sum exact in
// fp32.
TEST(QuantDotTest, WithUnitScalesEveryTableGivesTheExactIntegerSum) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 20; ++trial) {
    for (const WeightFormat f : kFormats) {
      const int range = QuantBlockValues(f) == kSuperBlock ? 7 : 127;
      std::vector<BlockQ8A> a(kBlocks);
      std::uniform_int_distribution<int> q(-range, range);
      for (BlockQ8A& b : a) {
        for (int8_t& v : b.qs) v = static_cast<int8_t>(q(rng));
        SetSums(b, 1.f);
      }
      const Row w = RandomWeights(rng, f, 1.f, 3.f);
      const double want = Reference(w.values, a.data()).first;
      for (const QuantKernels* k : AllTables()) {
        EXPECT_EQ(Dot(*k, f, w.bytes.data(), a.data(), kBlocks), want)
            << k->name << " " << WeightFormatName(f);
      }
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
    SetSums(a[b], 1.f);
  }
  const float want = 128.f * 127.f * kQuantBlock * kBlocks;
  for (const QuantKernels* k : AllTables()) {
    EXPECT_EQ(Dot(*k, WeightFormat::kQ8_0, w.data(), a.data(), kBlocks), want) << k->name;
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
      for (const WeightFormat f : kFormats) {
        // The K-quants' mins are dmin times six-bit integers: kept within fp16.
        const float m = QuantBlockValues(f) == kSuperBlock ? wd / 64 : -wd * 0.5f;
        const Row w = RandomWeights(rng, f, wd, m);
        const std::pair<double, double> ref = Reference(w.values, a.data());
        const double tol = 1e-5 * ref.second + 1e-30;
        for (const QuantKernels* k : AllTables()) {
          EXPECT_NEAR(Dot(*k, f, w.bytes.data(), a.data(), kBlocks), ref.first, tol)
              << k->name << " " << WeightFormatName(f) << " wd " << wd << " xs " << xs;
        }
      }
    }
  }
}

// The blocks the gguf package dequantized (tests/data/dequant_reference.json)
// against random activations: the kernels read the file's layout as llama.cpp
// does, independently of the loader's dequantizer.
TEST(QuantDotTest, EveryTableAgreesWithTheGgufPackagesValues) {
  std::mt19937 rng(6);
  const std::vector<::cohost::testing::DequantCase> cases =
      ::cohost::testing::LoadDequantReference();
  ASSERT_FALSE(cases.empty());
  for (const ::cohost::testing::DequantCase& c : cases) {
    const auto* f = std::find_if(std::begin(kFormats), std::end(kFormats),
                                 [&](WeightFormat f) { return WeightFormatName(f) == c.type; });
    ASSERT_NE(f, std::end(kFormats)) << c.type << ": no kernel";
    const auto k = static_cast<int64_t>(c.values.size());
    const std::vector<BlockQ8A> a = Quantize(ScalarQuantKernels(), RandomRow(rng, 1.f, k));
    const std::pair<double, double> ref = Reference(c.values, a.data());
    for (const QuantKernels* t : AllTables()) {
      EXPECT_NEAR(Dot(*t, *f, c.bytes.data(), a.data(), k / kQuantBlock), ref.first,
                  1e-5 * ref.second)
          << t->name << " " << c.type;
    }
  }
}

// An embedding row looked up from a table kept in its blocks: exactly the
// gguf package's values (so exactly the loader's reference path's).
TEST(QuantDotTest, DequantizeRowGivesTheGgufPackagesValuesExactly) {
  for (const ::cohost::testing::DequantCase& c : ::cohost::testing::LoadDequantReference()) {
    const auto* f = std::find_if(std::begin(kFormats), std::end(kFormats),
                                 [&](WeightFormat f) { return WeightFormatName(f) == c.type; });
    ASSERT_NE(f, std::end(kFormats)) << c.type << ": no kernel";
    std::vector<float> out(c.values.size());
    DequantizeRow(*f, c.bytes.data(), static_cast<int64_t>(out.size()), out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], c.values[i]) << c.type << " " << i;
  }
}

// The scalar table's tile over up to kMaxTileCols rows, eight at a time.
void ScalarTiles(WeightFormat f, const uint8_t* w, size_t row_bytes, int cols, const BlockQ8A* a,
                 int64_t m, float* c, int64_t ldc) {
  const QuantKernels& scalar = ScalarQuantKernels();
  for (int j = 0; j < cols; j += scalar.tile_cols) {
    scalar.Tile(f)(w + j * row_bytes, row_bytes, std::min(scalar.tile_cols, cols - j), a, m,
                   kBlocks, c + j, ldc);
  }
}

// Every table reaches the same exact integer sums and scales them in the
// same order (quant_kernels.h): the same bits as the scalar reference, for
// every format, with random and extreme scales, whole and partial tiles of
// every width a table takes, a decode step's few activation rows and batches
// of more than one chunk of them (the AMX table's tile multiplies take
// sixteen at a time, the rest its wide tile).
TEST_P(VectorTableTest, TilesEqualTheScalarTableBitForBit) {
  std::mt19937 rng(7);
  const QuantKernels& scalar = ScalarQuantKernels();
  constexpr int64_t kM = 2 * kTileRows + 3;
  std::vector<BlockQ8A> a;
  for (int64_t r = 0; r < kM; ++r) {
    const float xs = r % 5 == 2 ? 1e-3f : r % 5 == 4 ? 3e4f : 1.f;
    const std::vector<BlockQ8A> row = Quantize(scalar, RandomRow(rng, xs));
    a.insert(a.end(), row.begin(), row.end());
  }
  for (const WeightFormat f : kFormats) {
    for (const float d : {0.02f, 1.f, 6e-5f, 30000.f}) {
      std::vector<Row> rows;
      for (int i = 0; i < kMaxTileCols; ++i) {
        rows.push_back(RandomWeights(rng, f, d * (1 + 0.0625f * i), -d));
      }
      const std::vector<uint8_t> w = Concatenated(rows);
      const size_t row_bytes = rows[0].bytes.size();
      const QuantKernels* k = table_;
      for (const int cols : {k->tile_cols, 3, k->tile_cols - 1}) {
        for (const int64_t m : {kM, int64_t{2}}) {
          std::vector<float> want(kM * kMaxTileCols, -1.f), got(want.size(), -1.f);
          ScalarTiles(f, w.data(), row_bytes, cols, a.data(), m, want.data(), kMaxTileCols);
          k->Tile(f)(w.data(), row_bytes, cols, a.data(), m, kBlocks, got.data(), kMaxTileCols);
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], want[i]) << k->name << " " << WeightFormatName(f) << " d " << d
                                       << " cols " << cols << " m " << m << " output " << i;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tables, VectorTableTest, ::testing::ValuesIn(kVectorTables),
                         [](const ::testing::TestParamInfo<VectorTable>& info) {
                           return std::string(info.param.name);
                         });

// An output does not depend on the rest of its tile: a tile's weight rows
// against many activation rows give each pair what the pair alone gives
// (a sequence's logits do not depend on what else is in its batch), and a
// partial tile writes only its own columns.
TEST(QuantTileTest, ATileGivesEachPairWhatThePairAloneGives) {
  std::mt19937 rng(5);
  constexpr int64_t kM = 2 * kTileRows + 1;
  constexpr int64_t kLdc = kMaxTileCols + 2;
  for (const QuantKernels* k : AllTables()) {
    std::vector<BlockQ8A> a;
    for (int64_t r = 0; r < kM; ++r) {
      const std::vector<BlockQ8A> row = Quantize(*k, RandomRow(rng, r == 2 ? 1e-3f : 1.f));
      a.insert(a.end(), row.begin(), row.end());
    }
    for (const WeightFormat f : kFormats) {
      std::vector<Row> rows;
      for (int i = 0; i < k->tile_cols; ++i) rows.push_back(RandomWeights(rng, f, 0.02f, -0.05f));
      const std::vector<uint8_t> w = Concatenated(rows);
      for (const int cols : {k->tile_cols, k->tile_cols - 3, 1}) {
        std::vector<float> c(kM * kLdc, -7.f);
        k->Tile(f)(w.data(), rows[0].bytes.size(), cols, a.data(), kM, kBlocks, c.data(), kLdc);
        for (int64_t r = 0; r < kM; ++r) {
          for (int i = 0; i < kLdc; ++i) {
            const float want =
                i < cols ? Dot(*k, f, rows[i].bytes.data(), a.data() + r * kBlocks, kBlocks) : -7.f;
            ASSERT_EQ(c[r * kLdc + i], want) << k->name << " " << WeightFormatName(f) << " cols "
                                             << cols << " row " << r << " column " << i;
          }
        }
      }
    }
  }
}

// A matrix split by rows (q, k and v of a Q4_K_M file: each part its own
// format): GroupedGemm gives every part what Gemm gives it alone, bit for bit,
// though the activations are quantized once and the parts share the pool;
// and every row of a batch gets what it gets alone.
TEST(QuantGemmTest, GroupedPartsEachGetWhatTheirOwnGemmGives) {
  std::mt19937 rng(11);
  const std::unique_ptr<Backend> be = MakeCpuBackend(2);
  const WeightFormat formats[] = {WeightFormat::kQ4_0, WeightFormat::kQ6_K, WeightFormat::kQ8_0};
  const int32_t widths[] = {20, 3, 33};  // not whole 16-column tasks
  std::vector<std::vector<uint8_t>> weights;
  std::vector<std::vector<float>> biases;
  for (int p = 0; p < 3; ++p) {
    std::vector<Row> rows;
    for (int i = 0; i < widths[p]; ++i)
      rows.push_back(RandomWeights(rng, formats[p], 0.02f, -0.05f));
    weights.push_back(Concatenated(rows));
    biases.push_back(RandomRow(rng, 1.f));
  }
  // 37 rows: the AMX table's tile registers take 32 of them.
  for (const int32_t m : {1, 5, 17, 37}) {
    std::vector<float> a;
    for (int32_t r = 0; r < m; ++r) {
      const std::vector<float> row = RandomRow(rng, 1.f);
      a.insert(a.end(), row.begin(), row.end());
    }
    std::vector<std::vector<float>> grouped(3), alone(3);
    std::vector<GemmPart> parts;
    for (int p = 0; p < 3; ++p) {
      grouped[p].assign(static_cast<size_t>(m) * widths[p], -7.f);
      alone[p].assign(grouped[p].size(), -7.f);
      // The middle part without a bias.
      const float* bias = p == 1 ? nullptr : biases[p].data();
      parts.push_back(
          {WeightRef(weights[p].data(), formats[p]), bias, widths[p], grouped[p].data()});
      be->Gemm(a.data(), WeightRef(weights[p].data(), formats[p]), bias, m, widths[p], kK,
               alone[p].data());
    }
    be->GroupedGemm(a.data(), parts.data(), 3, m, kK);
    for (int p = 0; p < 3; ++p) {
      EXPECT_EQ(grouped[p], alone[p]) << WeightFormatName(formats[p]) << " m " << m;
      // A row's products do not depend on the rest of its batch.
      std::vector<float> single(widths[p]);
      for (int32_t r = 0; r < m; ++r) {
        be->Gemm(a.data() + static_cast<size_t>(r) * kK, WeightRef(weights[p].data(), formats[p]),
                 parts[p].bias, 1, widths[p], kK, single.data());
        ASSERT_TRUE(std::equal(single.begin(), single.end(), alone[p].begin() + r * widths[p]))
            << WeightFormatName(formats[p]) << " m " << m << " row " << r;
      }
    }
    // The same parts filling the columns of one [m, 56] output (ldc).
    constexpr int32_t kLdc = 20 + 3 + 33;
    std::vector<float> joined(static_cast<size_t>(m) * kLdc, -7.f);
    for (int p = 0, col = 0; p < 3; col += widths[p++]) {
      parts[p].c = joined.data() + col;
      parts[p].ldc = kLdc;
    }
    be->GroupedGemm(a.data(), parts.data(), 3, m, kK);
    for (int32_t r = 0; r < m; ++r) {
      for (int p = 0, col = 0; p < 3; col += widths[p++]) {
        for (int32_t j = 0; j < widths[p]; ++j) {
          ASSERT_EQ(joined[r * kLdc + col + j], alone[p][r * widths[p] + j])
              << WeightFormatName(formats[p]) << " m " << m << " row " << r;
        }
      }
    }
    // Each part over its own range of a's rows (a mixture of experts'
    // products), one of them empty: each range's rows as they came alone.
    for (int p = 0; p < 3; ++p) {
      parts[p].first_row = p == 1 ? m : std::min(p, m);
      parts[p].rows = p == 1 ? 0 : std::max(0, m - 1 - p);
      parts[p].ldc = 0;
      grouped[p].assign(static_cast<size_t>(parts[p].rows + 1) * widths[p], -7.f);
      parts[p].c = grouped[p].data();
    }
    be->GroupedGemm(a.data(), parts.data(), 3, m, kK);
    for (int p = 0; p < 3; ++p) {
      const auto first = alone[p].begin() + parts[p].first_row * widths[p];
      const size_t n = static_cast<size_t>(parts[p].rows) * widths[p];
      EXPECT_TRUE(std::equal(grouped[p].begin(), grouped[p].begin() + n, first))
          << WeightFormatName(formats[p]) << " m " << m << ", rows from " << parts[p].first_row;
      EXPECT_TRUE(std::all_of(grouped[p].begin() + n, grouped[p].end(), [](float x) {
        return x == -7.f;
      })) << "nothing past the range";
    }
  }
}

// Row ranges where the parts' formats differ (a Q8_0 part and an F16 one, as
// a checkpoint whose experts load in different formats): the block part
// with the others' rows quantized apart, the F16 one through HalfGemm; each
// range's products, into its columns of one output (ldc), are its rows'
// products alone.
TEST(QuantGemmTest, RowRangesOfMixedFormatsGiveEachRangesRowsAlone) {
  std::mt19937 rng(5);
  const std::unique_ptr<Backend> be = MakeCpuBackend(2);
  constexpr int32_t kN = 24, kM = 9, kRows = 5;
  std::vector<Row> rows;
  for (int i = 0; i < kN; ++i) rows.push_back(RandomWeights(rng, WeightFormat::kQ8_0, 0.02f));
  const std::vector<uint8_t> q8 = Concatenated(rows);
  std::vector<uint16_t> f16(static_cast<size_t>(kN) * kK);
  std::uniform_real_distribution<float> w(-0.1f, 0.1f);
  for (uint16_t& x : f16) x = F32ToF16(w(rng));
  std::vector<float> a;
  for (int32_t r = 0; r < kM; ++r) {
    const std::vector<float> row = RandomRow(rng, 1.f);
    a.insert(a.end(), row.begin(), row.end());
  }
  const WeightRef refs[] = {WeightRef(q8.data(), WeightFormat::kQ8_0),
                            WeightRef(f16.data(), WeightFormat::kF16)};
  const int32_t first[] = {2, 4};
  std::vector<float> out(static_cast<size_t>(kRows) * 2 * kN, -7.f);
  const GemmPart parts[] = {{refs[0], nullptr, kN, out.data(), 2 * kN, first[0], kRows},
                            {refs[1], nullptr, kN, out.data() + kN, 2 * kN, first[1], kRows}};
  be->GroupedGemm(a.data(), parts, 2, kM, kK);
  for (int p = 0; p < 2; ++p) {
    std::vector<float> alone(static_cast<size_t>(kRows) * kN);
    be->Gemm(a.data() + static_cast<size_t>(first[p]) * kK, refs[p], nullptr, kRows, kN, kK,
             alone.data());
    for (int32_t r = 0; r < kRows; ++r) {
      for (int32_t j = 0; j < kN; ++j) {
        ASSERT_EQ(out[r * 2 * kN + p * kN + j], alone[r * kN + j])
            << WeightFormatName(refs[p].format) << " row " << r << " column " << j;
      }
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
  for (const WeightFormat f : kFormats) {
    const Row w = RandomWeights(rng, f, 0.02f, -0.1f);
    double exact = 0, bound = 0;
    for (int64_t i = 0; i < kK; ++i) {
      exact += static_cast<double>(w.values[i]) * x[i];
      bound += std::fabs(w.values[i]) * a[i / kQuantBlock].d / 2;
    }
    EXPECT_NEAR(Dot(k, f, w.bytes.data(), a.data(), kBlocks), exact, bound * 1.001 + 1e-6)
        << WeightFormatName(f);
  }
}

}  // namespace
}  // namespace cohost::kernels::cpu
