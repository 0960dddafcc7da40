// The 512-bit tables' tiles over a panel (WeightLayout::kPanels16,
// cohost/kernels/panels.h): sixteen weight rows of Q8_0, Q4_0, Q4_1, Q5_0 or
// Q5_1 whose
// codes already lie as WideColumns gives them, a chunk's four bytes per
// row in each 32-bit lane. A block's codes are one to four loads (and the
// Q4 nibbles two masks) instead of sixteen row loads and two transposes,
// and its factors one fp16 conversion per field; so a decode step reads
// the panel as one stream, and the AMX table's tile multiplies pay no
// packing at sixteen activation rows (a sixteen-sequence decode step)
// either: a Q8_0 panel's codes are the multiplies' operand where they lie,
// a Q4 panel's are unmasked once per call. Every output is formed by
// WideAccumulate from the same exact integer sums as in the row layout's
// tiles: the same bits. Included by quant_avx2.cc after the AMX tile,
// inside the VNNI table's namespace; no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

// Bytes of a block's fp16 fields (the ones before its codes' bytes).
template <typename Block>
inline constexpr int64_t kFieldBytes = offsetof(Block, qs);
template <>
inline constexpr int64_t kFieldBytes<BlockQ5_0> = offsetof(BlockQ5_0, qh);
template <>
inline constexpr int64_t kFieldBytes<BlockQ5_1> = offsetof(BlockQ5_1, qh);

// Bytes of one block of a panel: its sixteen rows' codes, and their fp16
// factors.
template <typename Block>
inline constexpr int64_t kPanelCodeBytes = kPanelRows*(static_cast<int64_t>(sizeof(Block)) -
                                                       kFieldBytes<Block>);
template <typename Block>
inline constexpr int64_t kPanelFactorBytes = kPanelRows* kFieldBytes<Block>;

// Formats whose codes carry a fifth bit in qh.
template <typename Block>
inline constexpr bool kFifthBit =
    std::is_same_v<Block, BlockQ5_0> || std::is_same_v<Block, BlockQ5_1>;

// Per 32-bit lane, 0x10 in byte k where bit `first` + k of the lane's qh is
// set (k < 4): the four bits spread a byte apart by one multiply (x +
// x << 7 + x << 14 + x << 21 puts bit k at bit 8k, with no carries).
COHOST_TARGET inline __m512i FifthBitsWide(__m512i qh, int first) {
  const __m512i four =
      _mm512_and_si512(_mm512_srli_epi32(qh, static_cast<unsigned>(first)), _mm512_set1_epi32(0xf));
  const __m512i spread = _mm512_mullo_epi32(four, _mm512_set1_epi32(0x00204081));
  return _mm512_slli_epi32(_mm512_and_si512(spread, _mm512_set1_epi32(0x01010101)), 4);
}

// Block b's codes, from the panel's codes at `codes`, as WideColumns gives
// them.
template <typename Block>
COHOST_TARGET inline void PanelColumns(const uint8_t* codes, __m512i* t) {
  const uint8_t* p = codes;
  if constexpr (std::is_same_v<Block, BlockQ8_0>) {
    for (int d = 0; d < kTileCols; ++d) t[d] = _mm512_loadu_si512(p + ptrdiff_t{64} * d);
  } else {
    __m512i qh = _mm512_setzero_si512();
    if constexpr (kFifthBit<Block>) {
      qh = _mm512_loadu_si512(p);  // the qh chunk, then qs's
      p += 64;
    }
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < kTileCols / 2; ++c) {
      const __m512i x = _mm512_loadu_si512(p + ptrdiff_t{64} * c);
      t[c] = _mm512_and_si512(x, low);
      // (A shift of 32-bit lanes: AVX-512 F; the mask drops the bits that
      // crossed into a byte from its neighbour.)
      t[c + kTileCols / 2] = _mm512_and_si512(_mm512_srli_epi32(x, 4), low);
      if constexpr (kFifthBit<Block>) {
        t[c] = _mm512_or_si512(t[c], FifthBitsWide(qh, 4 * c));
        t[c + kTileCols / 2] =
            _mm512_or_si512(t[c + kTileCols / 2], FifthBitsWide(qh, kQuantBlock / 2 + 4 * c));
      }
    }
  }
}

// A block's factors from the panel's at `factors`: sixteen fp16 d, then
// (Q4_1, Q5_1) sixteen fp16 m.
template <typename Block>
COHOST_TARGET inline void PanelFactors(const uint8_t* factors, WideFactors<Block>& f) {
  f.scale[0] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(factors)));
  if constexpr (kHasMin<Block>) {
    f.min[0] = _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(factors + 2 * kPanelRows)));
  }
}

// A panel is read as two streams (codes, factors), each a block at a time,
// which the hardware prefetchers follow late from the last level cache
// (the loads of the first AMX version stalled for half its time): fetch the
// next panel (a tile's next task on this thread) linearly, block b's share
// while block b is read. (Addresses as integers: past the matrix's end
// they are only hints.)
template <typename Block>
COHOST_TARGET inline void PrefetchNextPanel(const void* panel, int64_t nb, int64_t b) {
  constexpr int64_t kBlockBytes = kPanelCodeBytes<Block> + kPanelFactorBytes<Block>;
  const uintptr_t next = reinterpret_cast<uintptr_t>(panel) + nb * kBlockBytes;
  for (int64_t at = b * kBlockBytes; at < (b + 1) * kBlockBytes; at += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(next + at), _MM_HINT_T0);
  }
}

// A QuantTileFn of one panel at wv (rows: kPanelRows), any number of
// activation rows.
template <typename Block>
COHOST_TARGET void PanelTile(const void* wv, size_t /*row_bytes*/, int /*rows*/, const BlockQ8A* a,
                             int64_t m, int64_t nb, float* c, int64_t ldc) {
  static_assert(kSubBlocks<Block> == 1);
  const auto* codes = static_cast<const uint8_t*>(wv);
  const uint8_t* factors = codes + nb * kPanelCodeBytes<Block>;
  for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
    const int64_t rn = std::min(kTileRows, m - r0);
    __m512 acc[kTileRows];
    for (int64_t r = 0; r < rn; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      if (r0 == 0) PrefetchNextPanel<Block>(wv, nb, b);
      WideFactors<Block> f;
      PanelFactors<Block>(factors + b * kPanelFactorBytes<Block>, f);
      __m512i t[kTileCols];
      PanelColumns<Block>(codes + b * kPanelCodeBytes<Block>, t);
      WideRows<Block>(t, f, 0, a + r0 * nb + b, rn, nb, acc);
    }
    for (int64_t r = 0; r < rn; ++r) _mm512_storeu_ps(c + (r0 + r) * ldc, acc[r]);
  }
}

// The AMX table's QuantTileFn of one panel: sixteen activation rows at a
// time by tile multiplies, the rest by PanelTile.
template <typename Block>
COHOST_AMX_TARGET void AmxPanelTile(const void* wv, size_t row_bytes, int rows, const BlockQ8A* a,
                                    int64_t m, int64_t nb, float* c, int64_t ldc) {
  const int64_t whole = m / kAmxRows * kAmxRows;
  if (whole < m) {
    PanelTile<Block>(wv, row_bytes, rows, a + whole * nb, m - whole, nb, c + whole * ldc, ldc);
  }
  if (whole == 0) return;
  const auto* codes = static_cast<const uint8_t*>(wv);
  const uint8_t* panel_factors = codes + nb * kPanelCodeBytes<Block>;
  // The caller's thread owns these; they grow to the longest row seen.
  thread_local std::vector<WideFactors<Block>> factors;
  factors.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    PanelFactors<Block>(panel_factors + b * kPanelFactorBytes<Block>, factors[b]);
  }
  // The next panel (PrefetchNextPanel's), over the tile multiplies.
  const int64_t panel_bytes = nb * (kPanelCodeBytes<Block> + kPanelFactorBytes<Block>);
  const uintptr_t next = reinterpret_cast<uintptr_t>(wv) + panel_bytes;
  if constexpr (std::is_same_v<Block, BlockQ8_0>) {
    static_assert(kPanelCodeBytes<Block> == kSubBlockCodeBytes);
    AmxRows<Block>(codes, factors.data(), kPanelRows, a, whole, nb, c, ldc, next, panel_bytes);
  } else {
    thread_local std::vector<PackedSubBlock> unmasked;
    unmasked.resize(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b) {
      __m512i t[kTileCols];
      PanelColumns<Block>(codes + b * kPanelCodeBytes<Block>, t);
      for (int d = 0; d < kTileCols; ++d) _mm512_store_si512(unmasked[b].t + d, t[d]);
    }
    AmxRows<Block>(reinterpret_cast<const uint8_t*>(unmasked.data()), factors.data(), kPanelRows, a,
                   whole, nb, c, ldc, next, panel_bytes);
  }
}

// NOLINTEND(llvm-header-guard)
