// The panel layout (cohost/kernels/panels.h): its bytes lie where the header
// says, every row comes back as stored, and every table's products and the
// CPU backend's Gemm and Embedding over panels give the row layout's results
// bit for bit: natively where the table has panel tiles, through the rows
// unpacked where it has not (the scalar and AVX2 tables).

#include "cohost/kernels/panels.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/quant.h"
#include "gtest/gtest.h"
#include "kernels/cpu/quant/quant_kernels.h"

namespace cohost::kernels::cpu {
namespace {

constexpr WeightFormat kPanelFormats[] = {
    WeightFormat::kQ8_0, WeightFormat::kQ4_0, WeightFormat::kQ4_1, WeightFormat::kQ5_0,
    WeightFormat::kQ5_1, WeightFormat::kQ4_K, WeightFormat::kQ5_K, WeightFormat::kQ6_K};
// Rows of three K-quant super-blocks (24 sub-blocks); the tiles' test takes
// 8, 9 and 17 sub-blocks (8, 16 and 24 for the K-quants: the AMX tile takes
// sums eight sub-blocks at a time, two at once: an odd remainder, more than
// one group).
constexpr int64_t kBlocks = 8;
constexpr int64_t kCols = 3 * kSuperBlock;

// Bytes of a block, of its fp16 fields, where they start, and of the rest
// (its codes' bytes, panels.h).
size_t BlockBytes(WeightFormat f) { return QuantRowBytes(f, QuantBlockValues(f)); }
size_t FieldBytes(WeightFormat f) {
  return f == WeightFormat::kQ4_1 || f == WeightFormat::kQ5_1 || f == WeightFormat::kQ4_K ||
                 f == WeightFormat::kQ5_K
             ? 4
             : 2;
}
size_t FieldAt(WeightFormat f) { return f == WeightFormat::kQ6_K ? offsetof(BlockQ6_K, d) : 0; }
size_t CodeBytes(WeightFormat f) { return BlockBytes(f) - FieldBytes(f); }
// Where code byte q of a block lies in the block.
size_t CodeAt(WeightFormat f, size_t q) { return q < FieldAt(f) ? q : q + FieldBytes(f); }

// `rows` rows of `cols` values in `f`, as stored: random codes (and
// K-quant scales), and every fp16 field a finite scale: a row's from one
// magnitude of a wide spread (tiny, large, negative) within a factor of two,
// so that no block's share of an output is lost in another's rounding.
std::vector<uint8_t> RandomMatrix(std::mt19937& rng, WeightFormat f, int64_t rows,
                                  int64_t cols = kCols) {
  const size_t row_bytes = QuantRowBytes(f, cols);
  std::vector<uint8_t> m(row_bytes * rows);
  for (uint8_t& b : m) b = static_cast<uint8_t>(rng());
  const float scales[] = {0.02f, 1.f, 6e-5f, 3e4f, -0.5f};
  for (size_t row = 0; row < static_cast<size_t>(rows); ++row) {
    const float magnitude = scales[rng() % 5];
    for (size_t at = row * row_bytes; at < (row + 1) * row_bytes; at += BlockBytes(f)) {
      for (size_t field = 0; field < FieldBytes(f) / 2; ++field) {
        const uint16_t h = F32ToF16(magnitude * (1 + static_cast<float>(rng() % 16) / 16));
        std::memcpy(m.data() + at + FieldAt(f) + 2 * field, &h, 2);
      }
    }
  }
  return m;
}

// `stored` (rows of `cols` values in `f`) as panels.
std::vector<uint8_t> Packed(WeightFormat f, const std::vector<uint8_t>& stored,
                            int64_t cols = kCols) {
  const auto rows = static_cast<int64_t>(stored.size() / QuantRowBytes(f, cols));
  std::vector<uint8_t> panels(stored.size());
  PackPanels(f, rows, cols, stored.data(), panels.data());
  return panels;
}

// m rows of activations of `cols` values, some rows tiny, some large.
std::vector<BlockQ8A> RandomActivations(std::mt19937& rng, int64_t m, int64_t cols = kCols) {
  const int64_t nb = cols / kQuantBlock;
  std::vector<BlockQ8A> a(m * nb);
  std::vector<float> x(cols);
  for (int64_t r = 0; r < m; ++r) {
    std::normal_distribution<float> n(0.f, r % 5 == 2 ? 1e-3f : r % 5 == 4 ? 3e4f : 1.f);
    for (float& v : x) v = n(rng);
    ScalarQuantKernels().quantize_q8a(x.data(), cols, a.data() + r * nb);
  }
  return a;
}

std::vector<const QuantKernels*> AllTables() {
  std::vector<const QuantKernels*> out = {&ScalarQuantKernels()};
  for (const QuantKernels* k : {Avx2QuantKernels(), Avx512VnniQuantKernels(), AmxQuantKernels()}) {
    if (k != nullptr) out.push_back(k);
  }
  return out;
}

TEST(PanelLayoutTest, OnlyWholePanelsOfTheFormatsWithPanelsFit) {
  for (const WeightFormat f : kPanelFormats) {
    EXPECT_TRUE(HasPanels(f)) << WeightFormatName(f);
    EXPECT_TRUE(FitsPanels(f, kPanelRows)) << WeightFormatName(f);
    EXPECT_TRUE(FitsPanels(f, 3 * kPanelRows)) << WeightFormatName(f);
    EXPECT_FALSE(FitsPanels(f, kPanelRows + 8)) << WeightFormatName(f);
    EXPECT_FALSE(FitsPanels(f, 8)) << WeightFormatName(f);
    EXPECT_FALSE(FitsPanels(f, 0)) << WeightFormatName(f);
  }
  for (const WeightFormat f : {WeightFormat::kDense, WeightFormat::kQ2_K, WeightFormat::kQ3_K,
                               WeightFormat::kF16, WeightFormat::kBF16}) {
    EXPECT_FALSE(HasPanels(f)) << WeightFormatName(f);
    EXPECT_FALSE(FitsPanels(f, kPanelRows)) << WeightFormatName(f);
  }
}

// The order panels.h states, checked byte by byte from the rows as stored:
// the kernels read a panel by it.
TEST(PanelLayoutTest, EveryByteLiesWhereTheHeaderSays) {
  std::mt19937 rng(1);
  for (const WeightFormat f : kPanelFormats) {
    const int64_t rows = 2 * kPanelRows;
    const std::vector<uint8_t> stored = RandomMatrix(rng, f, rows);
    const std::vector<uint8_t> panels = Packed(f, stored);
    const size_t row_bytes = QuantRowBytes(f, kCols), blocks = kCols / QuantBlockValues(f);
    const uint8_t add = f == WeightFormat::kQ8_0 ? 128 : 0;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* panel = panels.data() + r / kPanelRows * kPanelRows * row_bytes;
      const auto i = static_cast<size_t>(r % kPanelRows);
      for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* src = stored.data() + r * row_bytes + b * BlockBytes(f);
        for (size_t q = 0; q < CodeBytes(f); ++q) {
          const size_t chunk = b * CodeBytes(f) / 4 + q / 4;
          ASSERT_EQ(panel[chunk * 64 + 4 * i + q % 4],
                    static_cast<uint8_t>(src[CodeAt(f, q)] + add))
              << WeightFormatName(f) << " row " << r << " block " << b << " code " << q;
        }
        const uint8_t* factors = panel + kPanelRows * CodeBytes(f) * blocks;
        for (size_t field = 0; field < FieldBytes(f) / 2; ++field) {
          const uint8_t* at = factors + (b * FieldBytes(f) / 2 + field) * 2 * kPanelRows + 2 * i;
          ASSERT_EQ(std::memcmp(at, src + FieldAt(f) + 2 * field, 2), 0)
              << WeightFormatName(f) << " row " << r << " block " << b << " field " << field;
        }
      }
    }
  }
}

TEST(PanelLayoutTest, EveryRowComesBackAsStored) {
  std::mt19937 rng(2);
  for (const WeightFormat f : kPanelFormats) {
    const int64_t rows = 3 * kPanelRows;
    const std::vector<uint8_t> stored = RandomMatrix(rng, f, rows);
    const std::vector<uint8_t> panels = Packed(f, stored);
    EXPECT_NE(panels, stored) << WeightFormatName(f);
    const size_t row_bytes = QuantRowBytes(f, kCols);
    std::vector<uint8_t> scratch(row_bytes);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row =
          StoredRow(WeightRef(panels.data(), f, WeightLayout::kPanels16), r, kCols, scratch.data());
      ASSERT_EQ(std::memcmp(row, stored.data() + r * row_bytes, row_bytes), 0)
          << WeightFormatName(f) << " row " << r;
      // The row layout's rows are where they lie.
      EXPECT_EQ(StoredRow(WeightRef(stored.data(), f), r, kCols, scratch.data()),
                stored.data() + r * row_bytes);
    }
    std::vector<uint8_t> unpacked(kPanelRows * row_bytes);
    for (int64_t p = 0; p < rows / kPanelRows; ++p) {
      UnpackPanel(f, panels.data() + p * unpacked.size(), kCols, unpacked.data());
      ASSERT_EQ(std::memcmp(unpacked.data(), stored.data() + p * unpacked.size(), unpacked.size()),
                0)
          << WeightFormatName(f) << " panel " << p;
    }
  }
}

// A table's panel tile against the scalar table's tiles on the rows as
// stored: the same bits, for a decode step's few activation rows, a
// sixteen-sequence step, and batches past it (the AMX table's tile
// multiplies take sixteen at a time, the rest its VNNI panel tile).
TEST(PanelTileTest, EveryPanelTileEqualsTheScalarTableOnRowsBitForBit) {
  std::mt19937 rng(3);
  const QuantKernels& scalar = ScalarQuantKernels();
  bool ran = false;
  for (const QuantKernels* k : AllTables()) {
    for (const WeightFormat f : kPanelFormats) {
      if (k->PanelTile(f) == nullptr) continue;
      ran = true;
      EXPECT_EQ(k->PreferredLayout(f), WeightLayout::kPanels16) << k->name;
      const bool k_quant = QuantBlockValues(f) == kSuperBlock;
      for (const int64_t nb : k_quant
                                  ? std::vector<int64_t>{kBlocks, 2 * kBlocks, 3 * kBlocks}
                                  : std::vector<int64_t>{kBlocks, kBlocks + 1, 2 * kBlocks + 1}) {
        const int64_t cols = nb * kQuantBlock;
        const std::vector<uint8_t> stored = RandomMatrix(rng, f, kPanelRows, cols);
        const std::vector<uint8_t> panel = Packed(f, stored, cols);
        const size_t row_bytes = QuantRowBytes(f, cols);
        for (const int64_t m : {1, 2, 3, 4, 5, 15, 16, 17, 32, 35}) {
          const std::vector<BlockQ8A> a = RandomActivations(rng, m, cols);
          constexpr int64_t kLdc = kPanelRows + 3;
          std::vector<float> want(m * kLdc, -7.f), got(want.size(), -7.f);
          for (int j = 0; j < kPanelRows; j += scalar.tile_cols) {
            scalar.Tile(f)(stored.data() + j * row_bytes, row_bytes, scalar.tile_cols, a.data(), m,
                           nb, want.data() + j, kLdc);
          }
          k->PanelTile(f)(panel.data(), row_bytes, kPanelRows, a.data(), m, nb, got.data(), kLdc);
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], want[i]) << k->name << " " << WeightFormatName(f) << " blocks " << nb
                                       << " m " << m << " output " << i;
          }
        }
      }
    }
  }
  if (!ran) {
    GTEST_SKIP() << "no table on this CPU has panel tiles (they need AVX2); the backend "
                    "tests below cover panels through the rows unpacked";
  }
}

// The CPU backend over panels, whatever its table: Gemm (with a bias, rows
// of c wider than the part, and of every row or the first ones) and
// Embedding give what they give over the rows as stored, bit for bit.
TEST(PanelBackendTest, GemmAndEmbeddingOverPanelsEqualThemOverRows) {
  std::mt19937 rng(4);
  const std::unique_ptr<Backend> be = MakeCpuBackend(2);
  constexpr int32_t kN = 3 * kPanelRows;
  for (const WeightFormat f : kPanelFormats) {
    const std::vector<uint8_t> stored = RandomMatrix(rng, f, kN);
    const std::vector<uint8_t> panels = Packed(f, stored);
    std::vector<float> bias(kN);
    for (float& b : bias) b = static_cast<float>(rng() % 100) / 10;
    for (const int32_t m : {1, 5, 16, 37}) {
      std::vector<float> a(static_cast<size_t>(m) * kCols);
      std::normal_distribution<float> n;
      for (float& v : a) v = n(rng);
      // Every row, and the first rows alone (a product ending inside a
      // panel writes only its own columns).
      for (const int32_t n : {kN, kN - 8}) {
        constexpr int32_t kLdc = kN + 5;
        std::vector<float> want(static_cast<size_t>(m) * kLdc, -7.f), got(want.size(), -7.f);
        const GemmPart rows{WeightRef(stored.data(), f), bias.data(), n, want.data(), kLdc};
        const GemmPart panel{WeightRef(panels.data(), f, WeightLayout::kPanels16), bias.data(), n,
                             got.data(), kLdc};
        be->GroupedGemm(a.data(), &rows, 1, m, kCols);
        be->GroupedGemm(a.data(), &panel, 1, m, kCols);
        ASSERT_EQ(got, want) << WeightFormatName(f) << " m " << m << " n " << n;
      }
    }
    const std::vector<int32_t> ids = {0, 15, 16, 47, 31, 0, 20};
    const auto count = static_cast<int32_t>(ids.size());
    std::vector<float> want(ids.size() * kCols), got(want.size());
    be->Embedding(ids.data(), count, WeightRef(stored.data(), f), kCols, want.data());
    be->Embedding(ids.data(), count, WeightRef(panels.data(), f, WeightLayout::kPanels16), kCols,
                  got.data());
    EXPECT_EQ(got, want) << WeightFormatName(f);
  }
}

// The backend asks for panels exactly where its table has panel tiles.
TEST(PanelBackendTest, TheCpuBackendPrefersPanelsWhereItsTableReadsThem) {
  const std::unique_ptr<Backend> be = MakeCpuBackend(1);
  for (size_t i = 1; i < kWeightFormats; ++i) {
    const auto f = static_cast<WeightFormat>(i);
    EXPECT_EQ(be->PreferredLayout(f), SelectedQuantKernels().PanelTile(f) != nullptr
                                          ? WeightLayout::kPanels16
                                          : WeightLayout::kRows)
        << WeightFormatName(f);
    if (!HasPanels(f)) {
      EXPECT_EQ(be->PreferredLayout(f), WeightLayout::kRows);
    }
  }
}

}  // namespace
}  // namespace cohost::kernels::cpu
