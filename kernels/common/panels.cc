// The panel layout's rearrangement, piece by piece (panels.h says the
// order).

#include "cohost/kernels/panels.h"

#include <cstring>

namespace cohost::kernels {
namespace {

// A block of a panel format: its fp16 fields (d; d and a min) at
// `field_at`, and its other bytes, the codes' (Q5: qh, qs; Q4_K: scales,
// qs; Q5_K: scales, qh, qs; Q6_K: ql, qh, scales), in four-byte chunks.
struct PanelBlock {
  size_t field_at;      // where the fp16 fields start in the block
  size_t factor_bytes;  // the fp16 fields
  size_t code_bytes;    // the rest
  uint8_t code_xor;     // added to each code byte in a panel (Q8_0: 128)
};

PanelBlock BlockOf(WeightFormat f) {
  switch (f) {
    case WeightFormat::kQ8_0:
      return {0, 2, sizeof(BlockQ8_0) - 2, 0x80};
    case WeightFormat::kQ4_0:
      return {0, 2, sizeof(BlockQ4_0) - 2, 0};
    case WeightFormat::kQ4_1:
      return {0, 4, sizeof(BlockQ4_1) - 4, 0};
    case WeightFormat::kQ5_0:
      return {0, 2, sizeof(BlockQ5_0) - 2, 0};
    case WeightFormat::kQ5_1:
      return {0, 4, sizeof(BlockQ5_1) - 4, 0};
    case WeightFormat::kQ4_K:
      return {0, 4, sizeof(BlockQ4_K) - 4, 0};
    case WeightFormat::kQ5_K:
      return {0, 4, sizeof(BlockQ5_K) - 4, 0};
    case WeightFormat::kQ6_K:
      return {offsetof(BlockQ6_K, d), 2, sizeof(BlockQ6_K) - 2, 0};
    default:
      return {0, 0, 0, 0};
  }
}

constexpr size_t kChunk = 4;           // code bytes per row per chunk
constexpr size_t kField = 2;           // bytes of an fp16 factor
constexpr size_t kPanel = kPanelRows;  // rows per panel, as a size

// Row i's block b (of nb a row), piece by piece: f(offset in the block,
// offset in the panel, bytes, whether they are codes).
template <typename Fn>
void ForEachPiece(const PanelBlock& pb, size_t nb, size_t b, size_t i, Fn f) {
  const size_t fields = pb.factor_bytes / kField, chunks = pb.code_bytes / kChunk;
  for (size_t field = 0; field < fields; ++field) {
    f(pb.field_at + field * kField,
      kPanel * pb.code_bytes * nb + ((b * fields + field) * kPanel + i) * kField, kField, false);
  }
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    const size_t at = chunk * kChunk;
    f(at < pb.field_at ? at : at + pb.factor_bytes, ((b * chunks + chunk) * kPanel + i) * kChunk,
      kChunk, true);
  }
}

// A piece (a field, or a chunk of codes: each byte plus `add` where
// `code`) from `from` to `to`.
void CopyPiece(const uint8_t* from, uint8_t* to, size_t n, bool code, uint8_t add) {
  if (!code || add == 0) {
    std::memcpy(to, from, n);
    return;
  }
  uint32_t w;
  std::memcpy(&w, from, kChunk);
  w ^= 0x01010101u * add;
  std::memcpy(to, &w, kChunk);
}

// Blocks of `f` in a row of `cols` values.
size_t BlocksPerRow(WeightFormat f, int64_t cols) {
  return static_cast<size_t>(cols / QuantBlockValues(f));
}

}  // namespace

bool HasPanels(WeightFormat f) { return BlockOf(f).code_bytes != 0; }

bool FitsPanels(WeightFormat f, int64_t rows) {
  return HasPanels(f) && rows > 0 && rows % kPanelRows == 0;
}

void PackPanels(WeightFormat f, int64_t rows, int64_t cols, const uint8_t* stored,
                uint8_t* panels) {
  const PanelBlock pb = BlockOf(f);
  const size_t nb = BlocksPerRow(f, cols);
  const size_t block = pb.factor_bytes + pb.code_bytes, row_bytes = nb * block;
  for (int64_t p = 0; p < rows / kPanelRows; ++p) {
    const uint8_t* from = stored + static_cast<size_t>(p) * kPanel * row_bytes;
    uint8_t* to = panels + static_cast<size_t>(p) * kPanel * row_bytes;
    for (size_t b = 0; b < nb; ++b) {
      for (size_t i = 0; i < kPanel; ++i) {
        const uint8_t* src = from + i * row_bytes + b * block;
        ForEachPiece(pb, nb, b, i, [&](size_t at, size_t in_panel, size_t n, bool code) {
          CopyPiece(src + at, to + in_panel, n, code, pb.code_xor);
        });
      }
    }
  }
}

void UnpackPanel(WeightFormat f, const uint8_t* panel, int64_t cols, uint8_t* rows) {
  const PanelBlock pb = BlockOf(f);
  const size_t nb = BlocksPerRow(f, cols);
  const size_t block = pb.factor_bytes + pb.code_bytes;
  for (size_t i = 0; i < kPanel; ++i) {
    for (size_t b = 0; b < nb; ++b) {
      uint8_t* dst = rows + (i * nb + b) * block;
      ForEachPiece(pb, nb, b, i, [&](size_t at, size_t in_panel, size_t n, bool code) {
        CopyPiece(panel + in_panel, dst + at, n, code, pb.code_xor);
      });
    }
  }
}

const uint8_t* StoredRow(WeightRef w, int64_t row, int64_t cols, uint8_t* scratch) {
  const size_t row_bytes = QuantRowBytes(w.format, cols);
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (w.layout == WeightLayout::kRows) return base + static_cast<size_t>(row) * row_bytes;
  const PanelBlock pb = BlockOf(w.format);
  const size_t nb = BlocksPerRow(w.format, cols);
  const size_t block = pb.factor_bytes + pb.code_bytes;
  const uint8_t* panel = base + static_cast<size_t>(row / kPanelRows) * kPanel * row_bytes;
  const auto i = static_cast<size_t>(row % kPanelRows);
  for (size_t b = 0; b < nb; ++b) {
    ForEachPiece(pb, nb, b, i, [&](size_t at, size_t in_panel, size_t n, bool code) {
      CopyPiece(panel + in_panel, scratch + b * block + at, n, code, pb.code_xor);
    });
  }
  return scratch;
}

}  // namespace cohost::kernels
