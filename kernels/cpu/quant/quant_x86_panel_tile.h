// The 512-bit tables' tiles over a panel (WeightLayout::kPanels16,
// cohost/kernels/panels.h): sixteen weight rows of Q8_0, Q4_0, Q4_1, Q5_0,
// Q5_1, Q4_K, Q5_K or Q6_K whose codes' bytes already lie in the order WideColumns
// gives, a chunk's four bytes per row in each 32-bit lane. A sub-block's
// codes are a few loads and masks (Q5: and its fifth bits, Q6_K: two bit
// planes) instead of sixteen row loads and two transposes, and its factors
// one fp16 conversion per field (the K-quants' scales unpacked for sixteen
// rows at once); so a decode step reads the panel as one stream, and the
// AMX table's tile multiplies pay no packing at sixteen activation rows (a
// sixteen-sequence decode step) either: a Q8_0 panel's codes are the
// multiplies' operand where they lie, the others' are unmasked once per
// call. Every output is formed by WideAccumulate from the same exact
// integer sums and factors as in the row layout's tiles: the same bits.
// Included by quant_avx2.cc after the AMX tile, inside the VNNI table's
// namespace; no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

// Chunk `c` of a block's codes in a panel (64 bytes: four bytes a row).
COHOST_TARGET inline __m512i Chunk(const uint8_t* codes, int c) {
  return _mm512_loadu_si512(codes + ptrdiff_t{64} * c);
}

// Each byte of x shifted right by `shift` and masked to `mask` (shifts of
// 32-bit lanes, AVX-512 F; the mask drops the bits that crossed into a
// byte from its neighbour).
COHOST_TARGET inline __m512i ByteField(__m512i x, unsigned shift, int mask) {
  return _mm512_and_si512(_mm512_srli_epi32(x, shift), _mm512_set1_epi8(static_cast<char>(mask)));
}

// Per 32-bit lane, 0x10 in byte k where bit `first` + k of the lane's qh is
// set (k < 4): the four bits spread a byte apart by one multiply (x +
// x << 7 + x << 14 + x << 21 puts bit k at bit 8k, with no carries).
COHOST_TARGET inline __m512i FifthBitsWide(__m512i qh, int first) {
  const __m512i four =
      _mm512_and_si512(_mm512_srli_epi32(qh, static_cast<unsigned>(first)), _mm512_set1_epi32(0xf));
  const __m512i spread = _mm512_mullo_epi32(four, _mm512_set1_epi32(0x00204081));
  return _mm512_slli_epi32(_mm512_and_si512(spread, _mm512_set1_epi32(0x01010101)), 4);
}

// Sub-block J of a block, from the block's codes in the panel, as
// WideColumns gives it (panels.h: each chunk's byte order is the block's).
template <typename Block, int J>
COHOST_TARGET inline void PanelColumns(const uint8_t* codes, __m512i* t) {
  if constexpr (std::is_same_v<Block, BlockQ8_0>) {
    for (int d = 0; d < kTileCols; ++d) t[d] = Chunk(codes, d);
  } else if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>) {
    // Three chunks of scales, (Q5_K: eight of qh,) then qs: sub-blocks 2i
    // and 2i + 1 are the low and high nibbles of qs chunks 8i..8i+7, and
    // Q5_K's fifth bit of sub-block j is bit j of each qh byte.
    constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
    constexpr int kQs = kQ5 ? 11 : 3;
    for (int d = 0; d < kTileCols; ++d) {
      t[d] = ByteField(Chunk(codes, kQs + 8 * (J / 2) + d), 4 * (J % 2), 0x0f);
      if constexpr (kQ5) {
        t[d] = _mm512_or_si512(t[d], _mm512_slli_epi32(ByteField(Chunk(codes, 3 + d), J, 1), 4));
      }
    }
  } else if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    // ql (32 chunks), qh (16), scales (4): Load<J>'s bit fields, chunk by
    // chunk.
    constexpr int kHalf = J / 4, kQuarter = J % 4;
    constexpr int kLow = (64 * kHalf + 32 * (kQuarter & 1)) / 4, kHigh = (128 + 32 * kHalf) / 4;
    for (int d = 0; d < kTileCols; ++d) {
      const __m512i low = ByteField(Chunk(codes, kLow + d), 4 * (kQuarter >> 1), 0x0f);
      const __m512i high = ByteField(Chunk(codes, kHigh + d), 2 * kQuarter, 3);
      t[d] = _mm512_or_si512(low, _mm512_slli_epi32(high, 4));
    }
  } else {
    // Q4 and Q5: (Q5: the qh chunk, then) four qs chunks, values 4c.. in
    // the low nibbles, 16 + 4c.. in the high ones.
    const int first = kFifthBit<Block> ? 1 : 0;
    __m512i qh = _mm512_setzero_si512();
    if constexpr (kFifthBit<Block>) qh = Chunk(codes, 0);
    for (int c = 0; c < kTileCols / 2; ++c) {
      const __m512i x = Chunk(codes, first + c);
      t[c] = ByteField(x, 0, 0x0f);
      t[c + kTileCols / 2] = ByteField(x, 4, 0x0f);
      if constexpr (kFifthBit<Block>) {
        t[c] = _mm512_or_si512(t[c], FifthBitsWide(qh, 4 * c));
        t[c + kTileCols / 2] =
            _mm512_or_si512(t[c + kTileCols / 2], FifthBitsWide(qh, kQuantBlock / 2 + 4 * c));
      }
    }
  }
}

// Sixteen fp16 values at p as fp32 lanes.
COHOST_TARGET inline __m512 Fp16Wide(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// -x, by its sign bit (AVX-512 F has no vxorps on zmm).
COHOST_TARGET inline __m512 FlipSign(__m512 x) {
  return _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
}

// Byte `byte` of each 32-bit lane of x, zero-extended (kSigned:
// sign-extended).
template <bool kSigned>
COHOST_TARGET inline __m512i LaneByte(__m512i x, int byte) {
  const __m512i top = _mm512_slli_epi32(x, static_cast<unsigned>(24 - 8 * byte));
  return kSigned ? _mm512_srai_epi32(top, 24) : _mm512_srli_epi32(top, 24);
}

// A block's factors, as LoadWideFactors forms them, from the block's codes
// and fp16 factors in the panel: d (and m, or dmin), and the K-quants'
// scales, which lie in the codes' chunks (Q4_K's first three, Q6_K's last
// four).
template <typename Block>
COHOST_TARGET inline void PanelFactors(const uint8_t* codes, const uint8_t* factors,
                                       WideFactors<Block>& f) {
  const __m512 d = Fp16Wide(factors);
  if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>) {
    // UnpackKScaleMin, lane by lane: chunk 0 holds scales[0..3], 1
    // scales[4..7], 2 scales[8..11].
    const __m512 dmin = Fp16Wide(factors + 2 * kPanelRows);
    const __m512i s0 = Chunk(codes, 0), s1 = Chunk(codes, 1), s2 = Chunk(codes, 2);
    const __m512i six = _mm512_set1_epi32(63);
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      __m512i scale, min;
      if (j < 4) {
        scale = _mm512_and_si512(LaneByte<false>(s0, j), six);
        min = _mm512_and_si512(LaneByte<false>(s1, j), six);
      } else {
        const int k = j - 4;
        const __m512i low = LaneByte<false>(s2, k);
        scale = _mm512_or_si512(_mm512_and_si512(low, _mm512_set1_epi32(0x0f)),
                                _mm512_slli_epi32(_mm512_srli_epi32(LaneByte<false>(s0, k), 6), 4));
        min = _mm512_or_si512(_mm512_srli_epi32(low, 4),
                              _mm512_slli_epi32(_mm512_srli_epi32(LaneByte<false>(s1, k), 6), 4));
      }
      f.scale[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(scale));
      // -(dmin * min), as LoadFactors: the product, then its sign flipped.
      f.min[j] = FlipSign(_mm512_mul_ps(dmin, _mm512_cvtepi32_ps(min)));
    }
  } else if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    // Sixteen signed scales a row in chunks 48..51: sub-block j's halves
    // are bytes 2j and 2j + 1.
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      const __m512i x = Chunk(codes, 48 + j / 2);
      f.sc_lo[j] = LaneByte<true>(x, 2 * (j % 2));
      f.sc_hi[j] = LaneByte<true>(x, 2 * (j % 2) + 1);
      f.scale[j] = d;
    }
  } else {
    f.scale[0] = d;
    if constexpr (kHasMin<Block>) f.min[0] = Fp16Wide(factors + 2 * kPanelRows);
  }
}

// Sub-blocks J.. of a block (codes at `codes`) for m activation rows, whose
// blocks of the block's first sub-block start at ab.
template <typename Block, int J = 0>
COHOST_TARGET inline void PanelBlockRows(const uint8_t* codes, const WideFactors<Block>& f,
                                         const BlockQ8A* ab, int64_t m, int64_t nb, __m512* acc) {
  if constexpr (J < kSubBlocks<Block>) {
    __m512i t[kTileCols];
    PanelColumns<Block, J>(codes, t);
    WideRows<Block>(t, f, J, ab + J, m, nb, acc);
    PanelBlockRows<Block, J + 1>(codes, f, ab, m, nb, acc);
  }
}

// A QuantTileFn of one panel at wv (rows: kPanelRows), any number of
// activation rows.
template <typename Block>
COHOST_TARGET void PanelTile(const void* wv, size_t /*row_bytes*/, int /*rows*/, const BlockQ8A* a,
                             int64_t m, int64_t nb, float* c, int64_t ldc) {
  static_assert(kHasPanels<Block>, "a format with panels (cohost/kernels/panels.h)");
  constexpr int64_t kSub = kSubBlocks<Block>;
  const int64_t blocks = nb / kSub;
  const auto* codes = static_cast<const uint8_t*>(wv);
  const uint8_t* factors = codes + blocks * kPanelCodeBytes<Block>;
  for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
    const int64_t rn = std::min(kTileRows, m - r0);
    __m512 acc[kTileRows];
    for (int64_t r = 0; r < rn; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      if (r0 == 0) PrefetchNextPanel<Block>(wv, blocks, b);
      const uint8_t* block_codes = codes + b * kPanelCodeBytes<Block>;
      WideFactors<Block> f;
      PanelFactors<Block>(block_codes, factors + b * kPanelFactorBytes<Block>, f);
      PanelBlockRows<Block>(block_codes, f, a + r0 * nb + b * kSub, rn, nb, acc);
    }
    for (int64_t r = 0; r < rn; ++r) _mm512_storeu_ps(c + (r0 + r) * ldc, acc[r]);
  }
}

// Sub-blocks J.. of a block, unmasked as WideColumns gives them, at out.
template <typename Block, int J = 0>
COHOST_AMX_TARGET inline void UnmaskBlock(const uint8_t* codes, PackedSubBlock* out) {
  if constexpr (J < kSubBlocks<Block>) {
    __m512i t[kTileCols];
    PanelColumns<Block, J>(codes, t);
    for (int d = 0; d < kTileCols; ++d) _mm512_store_si512(out[J].t + d, t[d]);
    UnmaskBlock<Block, J + 1>(codes, out);
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
  constexpr int64_t kSub = kSubBlocks<Block>;
  const int64_t blocks = nb / kSub;
  const auto* codes = static_cast<const uint8_t*>(wv);
  const uint8_t* panel_factors = codes + blocks * kPanelCodeBytes<Block>;
  // The caller's thread owns these; they grow to the longest row seen.
  thread_local std::vector<WideFactors<Block>> factors;
  factors.resize(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) {
    PanelFactors<Block>(codes + b * kPanelCodeBytes<Block>,
                        panel_factors + b * kPanelFactorBytes<Block>, factors[b]);
  }
  // The next panel (PrefetchNextPanel's), over the tile multiplies.
  const int64_t panel_bytes = blocks * (kPanelCodeBytes<Block> + kPanelFactorBytes<Block>);
  const uintptr_t next = reinterpret_cast<uintptr_t>(wv) + panel_bytes;
  if constexpr (std::is_same_v<Block, BlockQ8_0>) {
    static_assert(kPanelCodeBytes<Block> == kSubBlockCodeBytes);
    AmxRows<Block>(codes, factors.data(), kPanelRows, a, whole, nb, c, ldc, next, panel_bytes);
  } else {
    thread_local std::vector<PackedSubBlock> unmasked;
    unmasked.resize(static_cast<size_t>(nb));
    for (int64_t b = 0; b < blocks; ++b) {
      UnmaskBlock<Block>(codes + b * kPanelCodeBytes<Block>, unmasked.data() + b * kSub);
    }
    AmxRows<Block>(reinterpret_cast<const uint8_t*>(unmasked.data()), factors.data(), kPanelRows, a,
                   whole, nb, c, ldc, next, panel_bytes);
  }
}

// NOLINTEND(llvm-header-guard)
