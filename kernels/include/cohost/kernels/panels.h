// WeightLayout::kPanels16: rows of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K
// or Q6_K blocks rearranged, sixteen rows at a time, into the order the CPU's
// tiles read (512-bit ones the whole panel, AVX2 each half of eight rows),
// so that a product needs no transposes (the codes of sixteen rows' same
// four values lie together) and AMX tile multiplies can read a Q8_0
// panel's codes where they lie. A CPU backend asks for it
// (Backend::PreferredLayout) and the upload rearranges a matrix once
// (runtime/model/model.cc, PlacePart); CUDA never sees it.
//
// Only matrices of whole panels (rows a multiple of kPanelRows) are
// rearranged. A panel takes exactly the bytes of its sixteen rows, at the
// same place: rows 16p..16p+15 start at 16p * row_bytes in either layout,
// so a Gemm over the rows from a multiple of sixteen is one over whole
// panels. A panel of rows of nb blocks holds:
//   codes:   for each block b, for each four-byte chunk c of the block's
//            bytes other than its fp16 fields, in order (Q8_0, Q4: qs;
//            Q5: qh, qs; Q4_K: scales, qs; Q5_K: scales, qh, qs; Q6_K: ql,
//            qh, scales), 64 bytes: bytes 4i..4i+3 are row i's chunk c
//            (Q8_0: each byte plus 128, as unsigned bytes);
//   factors: for each block b, each fp16 field (d; Q4_1, Q5_1: d, m; Q4_K,
//            Q5_K: d, dmin) of rows 0..15 in order.
// A Q4_0/Q4_1/Q5 qs chunk's low nibbles are values 4c..4c+3 of its rows,
// its high nibbles values 16+4c..16+4c+3; a Q5 block's qh chunk holds each
// row's 32 fifth bits in its lane; a K-quant's chunks keep its bytes' bit
// fields (GGUF's), four bytes of a row at a time.
#pragma once

#include <cstdint>

#include "cohost/kernels/quant.h"

namespace cohost::kernels {

inline constexpr int64_t kPanelRows = 16;

// Whether `f` has a panel layout.
bool HasPanels(WeightFormat f);

// Whether a [rows, cols] matrix of `f` can be laid out in panels: a
// format that has them, and whole panels.
bool FitsPanels(WeightFormat f, int64_t rows);

// The [rows, cols] matrix of `f` at `stored` (row after row; FitsPanels)
// as panels, at `panels` (as many bytes, not overlapping it). Any whole
// panels of a matrix may be rearranged apart: rows 16p.. of the one are
// rows 16p.. of the other.
void PackPanels(WeightFormat f, int64_t rows, int64_t cols, const uint8_t* stored, uint8_t* panels);

// The sixteen rows of the panel at `panel` back as stored, row after row,
// into `rows` (16 * QuantRowBytes(f, cols) bytes, not overlapping it).
void UnpackPanel(WeightFormat f, const uint8_t* panel, int64_t cols, uint8_t* rows);

// Row `row` of the matrix `w` (rows of `cols` values) as the file stores
// it: a pointer into w's bytes, or, where w's layout moved them, to
// `scratch` (QuantRowBytes(w.format, cols) bytes), filled.
const uint8_t* StoredRow(WeightRef w, int64_t row, int64_t cols, uint8_t* scratch);

}  // namespace cohost::kernels
