// The panel layout's rearrangement, byte by byte (panels.h says the order).

#include "cohost/kernels/panels.h"

#include <cstring>

namespace cohost::kernels {
namespace {

// A block of a panel format: fp16 fields, then the codes' bytes (Q5: qh,
// then qs).
struct PanelBlock {
  size_t factor_bytes;  // the fp16 fields
  size_t code_bytes;    // the rest
  uint8_t code_xor;     // added to each code byte in a panel (Q8_0: 128)
};

PanelBlock BlockOf(WeightFormat f) {
  switch (f) {
    case WeightFormat::kQ8_0:
      return {offsetof(BlockQ8_0, qs), sizeof(BlockQ8_0::qs), 0x80};
    case WeightFormat::kQ4_0:
      return {offsetof(BlockQ4_0, qs), sizeof(BlockQ4_0::qs), 0};
    case WeightFormat::kQ4_1:
      return {offsetof(BlockQ4_1, qs), sizeof(BlockQ4_1::qs), 0};
    case WeightFormat::kQ5_0:
      return {offsetof(BlockQ5_0, qh), sizeof(BlockQ5_0) - offsetof(BlockQ5_0, qh), 0};
    case WeightFormat::kQ5_1:
      return {offsetof(BlockQ5_1, qh), sizeof(BlockQ5_1) - offsetof(BlockQ5_1, qh), 0};
    default:
      return {0, 0, 0};
  }
}

constexpr size_t kChunk = 4;           // code bytes per row per chunk
constexpr size_t kField = 2;           // bytes of an fp16 factor
constexpr size_t kPanel = kPanelRows;  // rows per panel, as a size

// Where row i's block b's fp16 field `field` and code chunk `chunk` lie in
// its panel (rows of nb blocks).
size_t FieldOffset(const PanelBlock& pb, size_t nb, size_t b, size_t i, size_t field) {
  return kPanel * pb.code_bytes * nb +
         ((b * (pb.factor_bytes / kField) + field) * kPanel + i) * kField;
}
size_t ChunkOffset(const PanelBlock& pb, size_t b, size_t i, size_t chunk) {
  return ((b * (pb.code_bytes / kChunk) + chunk) * kPanel + i) * kChunk;
}

// Row i's block b, piece by piece: f(offset in the block, offset in the
// panel, bytes, whether they are codes).
template <typename Fn>
void ForEachPiece(const PanelBlock& pb, size_t nb, size_t b, size_t i, Fn f) {
  for (size_t field = 0; field < pb.factor_bytes / kField; ++field) {
    f(field * kField, FieldOffset(pb, nb, b, i, field), kField, false);
  }
  for (size_t chunk = 0; chunk < pb.code_bytes / kChunk; ++chunk) {
    f(pb.factor_bytes + chunk * kChunk, ChunkOffset(pb, b, i, chunk), kChunk, true);
  }
}

// A piece (a field, or a chunk of codes: each plus `add` where `code`)
// from `from` to `to`.
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

// Every piece of a panel's rows: f(offset in the rows, offset in the panel,
// bytes, whether they are codes).
template <typename Fn>
void ForEachPanelPiece(const PanelBlock& pb, int64_t cols, Fn f) {
  const auto nb = static_cast<size_t>(cols / kQuantBlock);
  const size_t block = pb.factor_bytes + pb.code_bytes;
  for (size_t i = 0; i < kPanel; ++i) {
    for (size_t b = 0; b < nb; ++b) {
      ForEachPiece(pb, nb, b, i, [&](size_t at, size_t to, size_t n, bool code) {
        f((i * nb + b) * block + at, to, n, code);
      });
    }
  }
}

}  // namespace

bool HasPanels(WeightFormat f) { return BlockOf(f).code_bytes != 0; }

bool FitsPanels(WeightFormat f, int64_t rows) {
  return HasPanels(f) && rows > 0 && rows % kPanelRows == 0;
}

void PackPanels(WeightFormat f, int64_t rows, int64_t cols, const uint8_t* stored,
                uint8_t* panels) {
  // ForEachPanelPiece's order written out: a load's worth of weights passes
  // through here, a piece of two or four bytes at a time.
  const PanelBlock pb = BlockOf(f);
  const auto nb = static_cast<size_t>(cols / kQuantBlock);
  const size_t block = pb.factor_bytes + pb.code_bytes, row_bytes = nb * block;
  const size_t fields = pb.factor_bytes / kField, chunks = pb.code_bytes / kChunk;
  const uint32_t add = 0x01010101u * pb.code_xor;
  for (int64_t p = 0; p < rows / kPanelRows; ++p) {
    const uint8_t* from = stored + static_cast<size_t>(p) * kPanel * row_bytes;
    uint8_t* codes = panels + static_cast<size_t>(p) * kPanel * row_bytes;
    uint8_t* factors = codes + kPanel * pb.code_bytes * nb;
    for (size_t b = 0; b < nb; ++b) {
      for (size_t i = 0; i < kPanel; ++i) {
        const uint8_t* src = from + i * row_bytes + b * block;
        for (size_t field = 0; field < fields; ++field) {
          std::memcpy(factors + ((b * fields + field) * kPanel + i) * kField, src + field * kField,
                      kField);
        }
        for (size_t c = 0; c < chunks; ++c) {
          uint32_t w;
          std::memcpy(&w, src + pb.factor_bytes + c * kChunk, kChunk);
          w ^= add;
          std::memcpy(codes + ((b * chunks + c) * kPanel + i) * kChunk, &w, kChunk);
        }
      }
    }
  }
}

void UnpackPanel(WeightFormat f, const uint8_t* panel, int64_t cols, uint8_t* rows) {
  const PanelBlock pb = BlockOf(f);
  ForEachPanelPiece(pb, cols, [&](size_t to, size_t from, size_t n, bool code) {
    CopyPiece(panel + from, rows + to, n, code, pb.code_xor);
  });
}

const uint8_t* StoredRow(WeightRef w, int64_t row, int64_t cols, uint8_t* scratch) {
  const size_t row_bytes = QuantRowBytes(w.format, cols);
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (w.layout == WeightLayout::kRows) return base + static_cast<size_t>(row) * row_bytes;
  const PanelBlock pb = BlockOf(w.format);
  const auto nb = static_cast<size_t>(cols / kQuantBlock);
  const size_t block = pb.factor_bytes + pb.code_bytes;
  const uint8_t* panel = base + static_cast<size_t>(row / kPanelRows) * kPanel * row_bytes;
  const auto i = static_cast<size_t>(row % kPanelRows);
  for (size_t b = 0; b < nb; ++b) {
    ForEachPiece(pb, nb, b, i, [&](size_t at, size_t from, size_t n, bool code) {
      CopyPiece(panel + from, scratch + b * block + at, n, code, pb.code_xor);
    });
  }
  return scratch;
}

}  // namespace cohost::kernels
