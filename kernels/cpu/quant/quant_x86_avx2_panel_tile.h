// The AVX2 table's tile over a panel (WeightLayout::kPanels16,
// cohost/kernels/panels.h): the panel's sixteen rows as two halves of eight,
// each a 256-bit half of every 64-byte chunk, already in the order the
// body's transposed path multiplies (t[d] lane i: bytes 4d..4d+3 of row
// i). A sub-block's codes are a few loads and masks instead of eight row
// loads and a transpose, and a block's factors one fp16 conversion per
// field (the K-quants' scales unpacked for eight rows at once), so any
// number of activation rows, a decode step's one included, takes the
// transposed path. Every output is formed by Accumulate from the same exact
// integer sums and factors as the row layout's tiles: the same bits. The
// 512-bit tables' panel tiles (quant_x86_panel_tile.h) read the same bytes.
// Included by quant_avx2.cc after the body, inside the AVX2 table's
// namespace; no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

// Half `h` (rows 8h..8h+7) of chunk `c` of a block's codes in a panel.
COHOST_TARGET inline __m256i HalfChunk(const uint8_t* codes, int c, int h) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + ptrdiff_t{64} * c + 32 * h));
}

// Each byte of x shifted right by `shift` and masked to `mask` (shifts of
// 32-bit lanes; the mask drops the bits that crossed from a neighbour).
COHOST_TARGET inline __m256i HalfField(__m256i x, int shift, int mask) {
  return _mm256_and_si256(_mm256_srli_epi32(x, shift), _mm256_set1_epi8(static_cast<char>(mask)));
}

// Per 32-bit lane, 0x10 in byte k where bit `first` + k of the lane's qh is
// set (k < 4), as the 512-bit tiles' FifthBitsWide: one multiply spreads
// the four bits a byte apart.
COHOST_TARGET inline __m256i HalfFifthBits(__m256i qh, int first) {
  const __m256i four = _mm256_and_si256(_mm256_srli_epi32(qh, first), _mm256_set1_epi32(0xf));
  const __m256i spread = _mm256_mullo_epi32(four, _mm256_set1_epi32(0x00204081));
  return _mm256_slli_epi32(_mm256_and_si256(spread, _mm256_set1_epi32(0x01010101)), 4);
}

// Sub-block J of half h of a block, from the block's codes in the panel, as
// Transpose gives the row layout's: the codes Load<J> decodes (AVX2's Q8_0
// signed, so a Q8_0 panel's +128 comes off).
template <typename Block, int J>
COHOST_TARGET inline void HalfColumns(const uint8_t* codes, int h, __m256i* t) {
  if constexpr (std::is_same_v<Block, BlockQ8_0>) {
    for (int d = 0; d < kTileCols; ++d) {
      t[d] = _mm256_xor_si256(HalfChunk(codes, d, h), _mm256_set1_epi8(static_cast<char>(0x80)));
    }
  } else if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>) {
    constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
    constexpr int kQs = kQ5 ? 11 : 3;
    for (int d = 0; d < kTileCols; ++d) {
      t[d] = HalfField(HalfChunk(codes, kQs + 8 * (J / 2) + d, h), 4 * (J % 2), 0x0f);
      if constexpr (kQ5) {
        t[d] = _mm256_or_si256(t[d],
                               _mm256_slli_epi32(HalfField(HalfChunk(codes, 3 + d, h), J, 1), 4));
      }
    }
  } else if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    constexpr int kHalf = J / 4, kQuarter = J % 4;
    constexpr int kLow = (64 * kHalf + 32 * (kQuarter & 1)) / 4, kHigh = (128 + 32 * kHalf) / 4;
    for (int d = 0; d < kTileCols; ++d) {
      const __m256i low = HalfField(HalfChunk(codes, kLow + d, h), 4 * (kQuarter >> 1), 0x0f);
      const __m256i high = HalfField(HalfChunk(codes, kHigh + d, h), 2 * kQuarter, 3);
      t[d] = _mm256_or_si256(low, _mm256_slli_epi32(high, 4));
    }
  } else {
    const int first = kFifthBit<Block> ? 1 : 0;
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFifthBit<Block>) qh = HalfChunk(codes, 0, h);
    for (int c = 0; c < kTileCols / 2; ++c) {
      const __m256i x = HalfChunk(codes, first + c, h);
      t[c] = HalfField(x, 0, 0x0f);
      t[c + kTileCols / 2] = HalfField(x, 4, 0x0f);
      if constexpr (kFifthBit<Block>) {
        t[c] = _mm256_or_si256(t[c], HalfFifthBits(qh, 4 * c));
        t[c + kTileCols / 2] =
            _mm256_or_si256(t[c + kTileCols / 2], HalfFifthBits(qh, kQuantBlock / 2 + 4 * c));
      }
    }
  }
}

// Byte `byte` of each 32-bit lane of x, zero-extended (kSigned:
// sign-extended).
template <bool kSigned>
COHOST_TARGET inline __m256i HalfLaneByte(__m256i x, int byte) {
  const __m256i top = _mm256_slli_epi32(x, 24 - 8 * byte);
  return kSigned ? _mm256_srai_epi32(top, 24) : _mm256_srli_epi32(top, 24);
}

// Eight fp16 values at p as fp32 lanes.
COHOST_TARGET inline __m256 HalfFp16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Half h's factors of a block, as LoadFactors forms them, from the block's
// codes and fp16 factors in the panel (the 512-bit PanelFactors' steps on
// eight lanes).
template <typename Block>
COHOST_TARGET inline void HalfFactors(const uint8_t* codes, const uint8_t* factors, int h,
                                      Factors<Block>& f) {
  const __m256 d = HalfFp16(factors + 2 * kTileCols * h);
  if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>) {
    const __m256 dmin = HalfFp16(factors + 2 * kPanelRows + 2 * kTileCols * h);
    const __m256i s0 = HalfChunk(codes, 0, h), s1 = HalfChunk(codes, 1, h);
    const __m256i s2 = HalfChunk(codes, 2, h);
    const __m256i six = _mm256_set1_epi32(63);
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      __m256i scale, min;
      if (j < 4) {
        scale = _mm256_and_si256(HalfLaneByte<false>(s0, j), six);
        min = _mm256_and_si256(HalfLaneByte<false>(s1, j), six);
      } else {
        const int k = j - 4;
        const __m256i low = HalfLaneByte<false>(s2, k);
        scale =
            _mm256_or_si256(_mm256_and_si256(low, _mm256_set1_epi32(0x0f)),
                            _mm256_slli_epi32(_mm256_srli_epi32(HalfLaneByte<false>(s0, k), 6), 4));
        min =
            _mm256_or_si256(_mm256_srli_epi32(low, 4),
                            _mm256_slli_epi32(_mm256_srli_epi32(HalfLaneByte<false>(s1, k), 6), 4));
      }
      f.scale[j] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(scale));
      f.min[j] = _mm256_xor_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(min)), _mm256_set1_ps(-0.f));
    }
  } else if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      const __m256i x = HalfChunk(codes, 48 + j / 2, h);
      f.sc_lo[j] = HalfLaneByte<true>(x, 2 * (j % 2));
      f.sc_hi[j] = HalfLaneByte<true>(x, 2 * (j % 2) + 1);
      f.scale[j] = d;
    }
  } else {
    f.scale[0] = d;
    if constexpr (kHasMin<Block>) f.min[0] = HalfFp16(factors + 2 * kPanelRows + 2 * kTileCols * h);
  }
}

// Sub-blocks J.. of half h of a block (codes at `codes`) for m activation
// rows, whose blocks of the block's first sub-block start at ab.
template <typename Block, int J = 0>
COHOST_TARGET inline void HalfBlockRows(const uint8_t* codes, int h, const Factors<Block>& f,
                                        const BlockQ8A* ab, int64_t m, int64_t nb, __m256* acc) {
  if constexpr (J < kSubBlocks<Block>) {
    __m256i t[kTileCols];
    HalfColumns<Block, J>(codes, h, t);
    TransposedRows<Block>(t, f, J, ab + J, m, nb, acc);
    HalfBlockRows<Block, J + 1>(codes, h, f, ab, m, nb, acc);
  }
}

// A QuantTileFn of one panel at wv (rows: kPanelRows), any number of
// activation rows: each half of eight rows as the row layout's tile takes
// them, the next panel prefetched while the first half is read.
template <typename Block>
COHOST_TARGET void HalfPanelTile(const void* wv, size_t /*row_bytes*/, int /*rows*/,
                                 const BlockQ8A* a, int64_t m, int64_t nb, float* c, int64_t ldc) {
  static_assert(kHasPanels<Block>, "a format with panels (cohost/kernels/panels.h)");
  constexpr int64_t kSub = kSubBlocks<Block>;
  const int64_t blocks = nb / kSub;
  const auto* codes = static_cast<const uint8_t*>(wv);
  const uint8_t* factors = codes + blocks * kPanelCodeBytes<Block>;
  for (int h = 0; h < 2; ++h) {
    for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
      const int64_t rn = std::min(kTileRows, m - r0);
      __m256 acc[kTileRows];
      for (int64_t r = 0; r < rn; ++r) acc[r] = _mm256_setzero_ps();
      for (int64_t b = 0; b < blocks; ++b) {
        if (h == 0 && r0 == 0) PrefetchNextPanel<Block>(wv, blocks, b);
        const uint8_t* block_codes = codes + b * kPanelCodeBytes<Block>;
        Factors<Block> f;
        HalfFactors<Block>(block_codes, factors + b * kPanelFactorBytes<Block>, h, f);
        HalfBlockRows<Block>(block_codes, h, f, a + r0 * nb + b * kSub, rn, nb, acc);
      }
      for (int64_t r = 0; r < rn; ++r) {
        _mm256_storeu_ps(c + (r0 + r) * ldc + kTileCols * h, acc[r]);
      }
    }
  }
}

// NOLINTEND(llvm-header-guard)
