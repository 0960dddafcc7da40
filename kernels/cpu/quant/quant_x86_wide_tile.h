// The AVX-512 VNNI table's tile: sixteen weight rows, one per 32-bit lane of
// a 512-bit vector, for batches of activation rows. It reuses the body's
// (quant_x86_body.h) decoding, factors and eight-row transpose, run on both
// halves of the tile, so that each activation row costs eight vpdpbusd on
// full vectors with the four activation bytes broadcast from memory, and
// one fp32 multiply-add per sub-block for sixteen outputs. Every output is
// formed by the same operations as in the body's eight-row tile (exact
// integer sums, then the same fp32 steps in the same order), so the two
// give the same bits. Fewer than kTransposeRows activation rows (a decode
// step) run the body's tile on each half: there memory, not arithmetic, is
// the bound. Included by quant_avx2.cc after the body, inside the VNNI
// table's namespace; no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

inline constexpr int kWideTileCols = 2 * kTileCols;

COHOST_TARGET inline __m512 Join(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_zextpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
COHOST_TARGET inline __m512i Join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
}

// Factors<Block> of rows 0-7 and of rows 8-15, lane for lane. (alignas:
// outside AVX-512 code GCC gives __m512 members only 16-byte alignment, and
// the AMX tile keeps these in a std::vector.)
template <typename Block>
struct alignas(64) WideFactors {
  __m512 scale[kSubBlocks<Block>];
  __m512 min[kSubBlocks<Block>];
  __m512i sc_lo[kSubBlocks<Block>];
  __m512i sc_hi[kSubBlocks<Block>];
  __m512i m_lo[kSubBlocks<Block>];
  __m512i m_hi[kSubBlocks<Block>];
};

template <typename Block>
COHOST_TARGET inline void LoadWideFactors(const Block* const* rows, int64_t b,
                                          WideFactors<Block>& f) {
  Factors<Block> lo, hi;
  LoadFactors(rows, b, lo);
  LoadFactors(rows + kTileCols, b, hi);
  for (int j = 0; j < kSubBlocks<Block>; ++j) {
    f.scale[j] = Join(lo.scale[j], hi.scale[j]);
    if constexpr (kHasMin<Block> || kHasMin16<Block>) f.min[j] = Join(lo.min[j], hi.min[j]);
    if constexpr (kPer16Scales<Block>) {
      f.sc_lo[j] = Join(lo.sc_lo[j], hi.sc_lo[j]);
      f.sc_hi[j] = Join(lo.sc_hi[j], hi.sc_hi[j]);
    }
    if constexpr (kHasMin16<Block>) {
      f.m_lo[j] = Join(lo.m_lo[j], hi.m_lo[j]);
      f.m_hi[j] = Join(lo.m_hi[j], hi.m_hi[j]);
    }
  }
}

// The four activation bytes at p in every 32-bit lane (an embedded
// broadcast of vpdpbusd's memory operand).
COHOST_TARGET inline __m512i Broadcast4Wide(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// Sub-block J of block b of the sixteen rows as vpdpbusd takes them: t[d]
// lane i holds bytes 4d..4d+3 of row i's codes (eight 64-byte rows, also
// the layout of an AMX tile's second operand).
template <typename Block, int J>
COHOST_TARGET inline void WideColumns(const Block* const* rows, int64_t b, __m512i* t) {
  __m256i u[kTileCols], v[kTileCols], tu[kTileCols], tv[kTileCols];
  for (int i = 0; i < kTileCols; ++i) {
    u[i] = Load<J>(rows[i][b]);
    v[i] = Load<J>(rows[kTileCols + i][b]);
  }
  Transpose(u, tu);
  Transpose(v, tv);
  for (int d = 0; d < kTileCols; ++d) t[d] = Join(tu[d], tv[d]);
}

// acc + sub-block j's share of sixteen outputs for one activation block
// ab, from lo and hi, the integer sums of the codes times the activations
// over the sub-block's first and second sixteen values (for formats without
// per-16 scales only lo + hi counts, so a whole sub-block's sum may come in
// lo with hi zero): the body's fp32 steps, in its order.
template <typename Block>
COHOST_TARGET inline __m512 WideAccumulate(__m512i lo, __m512i hi, const BlockQ8A* ab,
                                           const WideFactors<Block>& f, int j, __m512 acc) {
  __m512i isum;
  if constexpr (kPer16Scales<Block>) {
    lo = _mm512_sub_epi32(lo, _mm512_set1_epi32(kOffset<Block> * ab->sum16[0]));
    hi = _mm512_sub_epi32(hi, _mm512_set1_epi32(kOffset<Block> * ab->sum16[1]));
    isum = _mm512_add_epi32(_mm512_mullo_epi32(lo, f.sc_lo[j]), _mm512_mullo_epi32(hi, f.sc_hi[j]));
  } else {
    isum = _mm512_add_epi32(lo, hi);
    if constexpr (kOffset<Block> != 0) {
      const int32_t sum = ab->sum16[0] + ab->sum16[1];
      isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(kOffset<Block> * sum));
    }
  }
  __m512 out = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                               _mm512_mul_ps(f.scale[j], _mm512_set1_ps(ab->d)), acc);
  if constexpr (kHasMin<Block>) out = _mm512_fmadd_ps(f.min[j], _mm512_set1_ps(ab->s), out);
  if constexpr (kHasMin16<Block>) {
    const __m512i msum =
        _mm512_add_epi32(_mm512_mullo_epi32(f.m_lo[j], _mm512_set1_epi32(ab->sum16[0])),
                         _mm512_mullo_epi32(f.m_hi[j], _mm512_set1_epi32(ab->sum16[1])));
    out = _mm512_fmadd_ps(f.min[j], _mm512_mul_ps(_mm512_set1_ps(ab->d), _mm512_cvtepi32_ps(msum)),
                          out);
  }
  return out;
}

// Sub-block j's share of sixteen outputs for m activation rows (row r's
// block of the sub-block at ab + r * nb), from the sub-block's codes t as
// WideColumns gives them.
template <typename Block>
COHOST_TARGET inline void WideRows(const __m512i* t, const WideFactors<Block>& f, int j,
                                   const BlockQ8A* ab, int64_t m, int64_t nb, __m512* acc) {
  for (int64_t r = 0; r < m; ++r, ab += nb) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    for (int d = 0; d < 4; ++d) {
      lo = _mm512_dpbusd_epi32(lo, t[d], Broadcast4Wide(ab->qs + 4 * d));
      hi = _mm512_dpbusd_epi32(hi, t[d + 4], Broadcast4Wide(ab->qs + 4 * (d + 4)));
    }
    acc[r] = WideAccumulate(lo, hi, ab, f, j, acc[r]);
  }
}

// TileBlock's transposed path on sixteen rows: sub-blocks J.. of block b.
template <typename Block, int J = 0>
COHOST_TARGET inline void WideTileBlock(const Block* const* rows, int64_t b,
                                        const WideFactors<Block>& f, const BlockQ8A* a, int64_t m,
                                        int64_t nb, __m512* acc) {
  if constexpr (J < kSubBlocks<Block>) {
    __m512i t[kTileCols];
    WideColumns<Block, J>(rows, b, t);
    WideRows(t, f, J, a + b * kSubBlocks<Block> + J, m, nb, acc);
    WideTileBlock<Block, J + 1>(rows, b, f, a, m, nb, acc);
  }
}

// A QuantTileFn of up to sixteen weight rows.
template <typename Block>
COHOST_TARGET void WideTile(const void* wv, size_t row_bytes, int rows, const BlockQ8A* a,
                            int64_t m, int64_t nb, float* c, int64_t ldc) {
  if (m < kTransposeRows) {
    Tile<Block>(wv, row_bytes, std::min(rows, kTileCols), a, m, nb, c, ldc);
    if (rows > kTileCols) {
      Tile<Block>(static_cast<const uint8_t*>(wv) + kTileCols * row_bytes, row_bytes,
                  rows - kTileCols, a, m, nb, c + kTileCols, ldc);
    }
    return;
  }
  const Block* row[kWideTileCols];
  TileRows<Block, kWideTileCols>(wv, row_bytes, rows, row);
  for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
    const int64_t rn = std::min(kTileRows, m - r0);
    __m512 acc[kTileRows];
    for (int64_t r = 0; r < rn; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb / kSubBlocks<Block>; ++b) {
      PrefetchNextTile<Block, kWideTileCols>(row[0], row_bytes, b);
      WideFactors<Block> f;
      LoadWideFactors(row, b, f);
      WideTileBlock<Block>(row, b, f, a + r0 * nb, rn, nb, acc);
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1);
    for (int64_t r = 0; r < rn; ++r) _mm512_mask_storeu_ps(c + (r0 + r) * ldc, keep, acc[r]);
  }
}

// NOLINTEND(llvm-header-guard)
