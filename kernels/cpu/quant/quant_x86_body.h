// The x86 quantized kernels' body, compiled once per instruction set:
// quant_avx2.cc includes it in one namespace per table, with COHOST_TARGET
// (the functions' target attribute) and COHOST_VNNI (0 or 1) defined. Not a
// header of its own: no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

COHOST_TARGET inline int32_t HorizontalSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Sixteen bytes of nibbles -> 32 bytes: the low nibbles, then the high ones
// (value i is the low nibble of byte i, value i + 16 its high nibble).
COHOST_TARGET inline __m256i Nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

COHOST_TARGET void QuantizeQ8A(const float* x, int64_t k, BlockQ8A* out) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < k / kQuantBlock; ++b, x += kQuantBlock) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + static_cast<ptrdiff_t>(8 * i));
      // maxps gives its second operand where either is NaN: a NaN value is
      // passed over, as by the scalar table's std::max.
      amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), amax);
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    const __m256 limit = _mm256_set1_ps(127.f);
    for (int i = 0; i < 4; ++i) {
      // Multiply, then round to nearest even: the scalar table's nearbyint.
      const __m256 r =
          _mm256_round_ps(_mm256_mul_ps(v[i], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      // As the scalar table: only |r| <= 127 is kept, anything else (NaN, an
      // infinity, a block so small its inverse scale overflowed) is 0, not
      // the conversion's INT_MIN.
      const __m256 kept = _mm256_cmp_ps(_mm256_andnot_ps(sign, r), limit, _CMP_LE_OQ);
      q[i] = _mm256_cvtps_epi32(_mm256_and_ps(r, kept));
    }
    const int32_t lo = HorizontalSum(_mm256_add_epi32(q[0], q[1]));
    const int32_t hi = HorizontalSum(_mm256_add_epi32(q[2], q[3]));
    // int32 -> int16 -> int8 packs work within 128-bit lanes; the permute
    // puts the 32 values back in order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(q01, q23);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), bytes);
    out[b].d = d;
    out[b].s = d * static_cast<float>(lo + hi);
    out[b].sum16[0] = static_cast<int16_t>(lo);
    out[b].sum16[1] = static_cast<int16_t>(hi);
  }
}

// Byte i is 0x10 where bit i of the little-endian 32 bits at `qh` is set.
COHOST_TARGET inline __m256i FifthBits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// The 32 bytes at p shifted right by `shift` bits and masked to `mask`, byte
// by byte.
COHOST_TARGET inline __m256i BitField(const uint8_t* p, int shift, int mask) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)),
                          _mm256_set1_epi8(static_cast<char>(mask)));
}

// The integer offset each format's unsigned codes carry (value = scale *
// (code - offset)); 0 for the formats with a min.
template <typename Block>
inline constexpr int kOffset = 0;
template <>
inline constexpr int kOffset<BlockQ4_0> = 8;
template <>
inline constexpr int kOffset<BlockQ5_0> = 16;
template <>
inline constexpr int kOffset<BlockQ6_K> = 32;
template <>
inline constexpr int kOffset<BlockQ3_K> = 4;
// vpdpbusd sums unsigned x signed bytes in int32: Q8_0's codes move up by
// 128. AVX2's maddubs would saturate its int16 pairs at 255 x 127 x 2, so
// there Q8_0 multiplies |q| by the activations with q's sign instead.
template <>
inline constexpr int kOffset<BlockQ8_0> = COHOST_VNNI ? 128 : 0;

// The codes of sub-block J of a block as the tile multiplies them: unsigned
// bytes (the offset is taken off the integer sum instead; only AVX2's Q8_0
// keeps signed codes). J is known at compile time: shifts and positions are
// constants, and a K-quant super-block's eight are unrolled.
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ8_0& w) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs));
  return COHOST_VNNI ? _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))) : q;
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ4_0& w) {
  return Nibbles(w.qs);
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ4_1& w) {
  return Nibbles(w.qs);
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ5_0& w) {
  return _mm256_or_si256(Nibbles(w.qs), FifthBits(w.qh));
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ5_1& w) {
  return _mm256_or_si256(Nibbles(w.qs), FifthBits(w.qh));
}
// Sub-blocks 2i and 2i+1 of a Q4_K / Q5_K share the 32 bytes at 32i.
template <int J>
inline constexpr ptrdiff_t kNibbleBytes = ptrdiff_t{32} * (J / 2);
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ4_K& w) {
  return BitField(w.qs + kNibbleBytes<J>, 4 * (J % 2), 0x0f);
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ5_K& w) {
  const __m256i high = _mm256_slli_epi16(BitField(w.qh, J, 1), 4);
  return _mm256_or_si256(BitField(w.qs + kNibbleBytes<J>, 4 * (J % 2), 0x0f), high);
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ6_K& w) {
  constexpr int kHalf = J / 4, kQuarter = J % 4;
  constexpr ptrdiff_t kLow = ptrdiff_t{64} * kHalf + ptrdiff_t{32} * (kQuarter & 1);
  constexpr ptrdiff_t kHigh = ptrdiff_t{32} * kHalf;
  const __m256i low = BitField(w.ql + kLow, 4 * (kQuarter >> 1), 0x0f);
  const __m256i high = _mm256_slli_epi16(BitField(w.qh + kHigh, 2 * kQuarter, 3), 4);
  return _mm256_or_si256(low, high);
}

// Q2_K / Q3_K sub-block J: half J / 4 of qs, bit plane J % 4; Q3_K's
// third bit is bit J of hmask[l] (code = low two bits + 4 * that bit, the
// value code - 4).
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ2_K& w) {
  return BitField(w.qs + ptrdiff_t{32} * (J / 4), 2 * (J % 4), 3);
}
template <int J>
COHOST_TARGET inline __m256i Load(const BlockQ3_K& w) {
  const __m256i high = _mm256_slli_epi16(BitField(w.hmask, J, 1), 2);
  return _mm256_or_si256(BitField(w.qs + ptrdiff_t{32} * (J / 4), 2 * (J % 4), 3), high);
}

// One block's fp32 factors for the tile's eight rows, per sub-block: lane i
// is row i's scale and min (the same products the scalar table forms), and
// for Q6_K, Q2_K and Q3_K its two per-16 integer scales (Q2_K: and mins).
template <typename Block>
struct Factors {
  __m256 scale[kSubBlocks<Block>];
  __m256 min[kSubBlocks<Block>];
  __m256i sc_lo[kSubBlocks<Block>];
  __m256i sc_hi[kSubBlocks<Block>];
  __m256i m_lo[kSubBlocks<Block>];
  __m256i m_hi[kSubBlocks<Block>];
};

// Eight fp16 fields, one per row, as fp32 lanes.
template <typename Block, typename Field>
COHOST_TARGET inline __m256 Fp16Lanes(const Block* const* rows, int64_t b, Field field) {
  return _mm256_cvtph_ps(_mm_setr_epi16(
      static_cast<int16_t>(rows[0][b].*field), static_cast<int16_t>(rows[1][b].*field),
      static_cast<int16_t>(rows[2][b].*field), static_cast<int16_t>(rows[3][b].*field),
      static_cast<int16_t>(rows[4][b].*field), static_cast<int16_t>(rows[5][b].*field),
      static_cast<int16_t>(rows[6][b].*field), static_cast<int16_t>(rows[7][b].*field)));
}

// Eight rows of eight bytes (one 64-bit word each) -> the eight columns:
// column j is the low (j even) or high (j odd) eight bytes of out[j / 2].
COHOST_TARGET inline void TransposeBytes(const uint64_t* rows, __m128i* out) {
  __m128i a[4], c[4];
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm_unpacklo_epi8(_mm_cvtsi64_si128(static_cast<int64_t>(rows[2 * i])),
                             _mm_cvtsi64_si128(static_cast<int64_t>(rows[2 * i + 1])));
  }
  c[0] = _mm_unpacklo_epi16(a[0], a[1]);  // columns 0-3 of rows 0-3
  c[1] = _mm_unpackhi_epi16(a[0], a[1]);  // columns 4-7 of rows 0-3
  c[2] = _mm_unpacklo_epi16(a[2], a[3]);
  c[3] = _mm_unpackhi_epi16(a[2], a[3]);
  out[0] = _mm_unpacklo_epi32(c[0], c[2]);
  out[1] = _mm_unpackhi_epi32(c[0], c[2]);
  out[2] = _mm_unpacklo_epi32(c[1], c[3]);
  out[3] = _mm_unpackhi_epi32(c[1], c[3]);
}

// Column j of TransposeBytes's output as eight fp32 lanes.
COHOST_TARGET inline __m256 ByteColumn(const __m128i* columns, int j) {
  const __m128i pair = columns[j / 2];
  const __m128i bytes = j % 2 == 0 ? pair : _mm_srli_si128(pair, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

// A Q4_K / Q5_K super-block's eight six-bit scales and eight mins (see
// UnpackKScaleMin), each as the bytes of a 64-bit word, sub-block j in byte j.
struct KScaleWords {
  uint64_t scales, mins;
};
inline KScaleWords UnpackKScaleWords(const uint8_t* scales) {
  uint32_t w[3];
  std::memcpy(w, scales, sizeof(w));
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  const uint32_t scale_hi = (w[2] & kLow4) | (((w[0] >> 6) & kLow2) << 4);
  const uint32_t min_hi = ((w[2] >> 4) & kLow4) | (((w[1] >> 6) & kLow2) << 4);
  return {(w[0] & kLow6) | (uint64_t{scale_hi} << 32), (w[1] & kLow6) | (uint64_t{min_hi} << 32)};
}

// Eight int32 lanes from 32-byte-aligned memory.
COHOST_TARGET inline __m256i LoadLanes(const int32_t* lanes) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
}

template <typename Block>
COHOST_TARGET inline void LoadFactors(const Block* const* rows, int64_t b, Factors<Block>& f) {
  if constexpr (std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>) {
    uint64_t scales[kTileCols], mins[kTileCols];
    for (int i = 0; i < kTileCols; ++i) {
      const KScaleWords k = UnpackKScaleWords(rows[i][b].scales);
      scales[i] = k.scales;
      mins[i] = k.mins;
    }
    __m128i scale_columns[4], min_columns[4];
    TransposeBytes(scales, scale_columns);
    TransposeBytes(mins, min_columns);
    const __m256 d = Fp16Lanes(rows, b, &Block::d);
    const __m256 dmin = Fp16Lanes(rows, b, &Block::dmin);
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      f.scale[j] = _mm256_mul_ps(d, ByteColumn(scale_columns, j));
      f.min[j] =
          _mm256_xor_ps(_mm256_mul_ps(dmin, ByteColumn(min_columns, j)), _mm256_set1_ps(-0.f));
    }
  } else if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    // Sixteen signed scales a row: the pair (2j, 2j + 1) as one 16-bit
    // column, transposed as 8 x 8 16-bit values.
    __m128i r[kTileCols], t[kTileCols];
    for (int i = 0; i < kTileCols; ++i) {
      r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i][b].scales));
    }
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
    }
    // t[0]: columns 0-3 of rows 0-1; t[1]: columns 4-7 of rows 0-1; t[2]...
    __m128i u[kTileCols];
    for (int h = 0; h < 2; ++h) {
      u[4 * h + 0] = _mm_unpacklo_epi32(t[h], t[2 + h]);      // columns 4h, 4h+1 of rows 0-3
      u[4 * h + 1] = _mm_unpackhi_epi32(t[h], t[2 + h]);      // columns 4h+2, 4h+3
      u[4 * h + 2] = _mm_unpacklo_epi32(t[4 + h], t[6 + h]);  // the same of rows 4-7
      u[4 * h + 3] = _mm_unpackhi_epi32(t[4 + h], t[6 + h]);
    }
    const __m256 d = Fp16Lanes(rows, b, &Block::d);
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      const int h = j / 4, q = j % 4;
      // Column j of rows 0-3 and of rows 4-7: 64-bit half q % 2 of u[4h + q / 2]
      // and of u[4h + 2 + q / 2].
      const __m128i top = u[4 * h + q / 2], bottom = u[4 * h + 2 + q / 2];
      const __m128i column =
          q % 2 == 0 ? _mm_unpacklo_epi64(top, bottom) : _mm_unpackhi_epi64(top, bottom);
      const __m256i pairs = _mm256_cvtepi16_epi32(column);  // hi * 256 + (lo & 0xff)
      f.sc_lo[j] = _mm256_srai_epi32(_mm256_slli_epi32(pairs, 24), 24);
      f.sc_hi[j] = _mm256_srai_epi32(pairs, 8);
      f.scale[j] = d;
    }
  } else if constexpr (std::is_same_v<Block, BlockQ2_K> || std::is_same_v<Block, BlockQ3_K>) {
    // Sixteen small integer scales a row (Q2_K: and mins), unpacked a row at
    // a time into columns (scale s of the eight rows), as the scalar table
    // decodes them.
    alignas(32) int32_t sc[kSuperBlock / 16][kTileCols];
    alignas(32) int32_t mn[kSuperBlock / 16][kTileCols];
    for (int i = 0; i < kTileCols; ++i) {
      for (int s = 0; s < kSuperBlock / 16; ++s) {
        if constexpr (std::is_same_v<Block, BlockQ2_K>) {
          sc[s][i] = rows[i][b].scales[s] & 0x0f;
          mn[s][i] = rows[i][b].scales[s] >> 4;
        } else {
          sc[s][i] = Q3KScale(rows[i][b].scales, s);
        }
      }
    }
    const __m256 d = Fp16Lanes(rows, b, &Block::d);
    for (int j = 0; j < kSubBlocks<Block>; ++j) {
      f.scale[j] = d;
      f.sc_lo[j] = LoadLanes(sc[2 * j]);
      f.sc_hi[j] = LoadLanes(sc[2 * j + 1]);
    }
    if constexpr (kHasMin16<Block>) {
      const __m256 neg_dmin = _mm256_xor_ps(Fp16Lanes(rows, b, &Block::dmin), _mm256_set1_ps(-0.f));
      for (int j = 0; j < kSubBlocks<Block>; ++j) {
        f.min[j] = neg_dmin;
        f.m_lo[j] = LoadLanes(mn[2 * j]);
        f.m_hi[j] = LoadLanes(mn[2 * j + 1]);
      }
    }
  } else {
    f.scale[0] = Fp16Lanes(rows, b, &Block::d);
    if constexpr (kHasMin<Block>) f.min[0] = Fp16Lanes(rows, b, &Block::m);
  }
}

// Eight int32 lanes summing to the sub-block's codes times the activations
// `y`. Exact: maddubs's pairs fit int16 (codes below 64, or |q| <= 128,
// times |y| <= 127), and the rest is int32.
template <typename Block>
COHOST_TARGET inline __m256i Products(__m256i u, __m256i y) {
  if constexpr (std::is_same_v<Block, BlockQ8_0> && !COHOST_VNNI) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(y, u)),
                             _mm256_set1_epi16(1));
  } else {
#if COHOST_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
#endif
  }
}

// Lane i of lo / hi = the sum of p[i]'s low / high four lanes (a
// sub-block's values 0-15 / 16-31).
struct Halves8 {
  __m256i lo, hi;
};
COHOST_TARGET inline Halves8 SumEachHalf(const __m256i* p) {
  const __m256i t0 = _mm256_hadd_epi32(p[0], p[1]);
  const __m256i t1 = _mm256_hadd_epi32(p[2], p[3]);
  const __m256i t2 = _mm256_hadd_epi32(p[4], p[5]);
  const __m256i t3 = _mm256_hadd_epi32(p[6], p[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1);  // rows 0-3: low halves | high halves
  const __m256i u1 = _mm256_hadd_epi32(t2, t3);  // rows 4-7
  return {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31)};
}

// The eight rows' codes (u[i]: row i's 32 bytes) as eight vectors of
// columns: t[d] lane i = bytes 4d..4d+3 of row i.
COHOST_TARGET inline void Transpose(const __m256i* u, __m256i* t) {
  __m256i a[kTileCols], b[kTileCols];
  for (int i = 0; i < kTileCols; i += 2) {
    a[i] = _mm256_unpacklo_epi32(u[i], u[i + 1]);      // dwords 0, 1 | 4, 5 of rows i, i+1
    a[i + 1] = _mm256_unpackhi_epi32(u[i], u[i + 1]);  // dwords 2, 3 | 6, 7
  }
  for (int i = 0; i < kTileCols; i += 4) {
    b[i] = _mm256_unpacklo_epi64(a[i], a[i + 2]);          // dword 0 | 4 of rows i..i+3
    b[i + 1] = _mm256_unpackhi_epi64(a[i], a[i + 2]);      // dword 1 | 5
    b[i + 2] = _mm256_unpacklo_epi64(a[i + 1], a[i + 3]);  // dword 2 | 6
    b[i + 3] = _mm256_unpackhi_epi64(a[i + 1], a[i + 3]);  // dword 3 | 7
  }
  for (int d = 0; d < 4; ++d) {
    t[d] = _mm256_permute2x128_si256(b[d], b[4 + d], 0x20);
    t[d + 4] = _mm256_permute2x128_si256(b[d], b[4 + d], 0x31);
  }
}

// The four bytes at p in every 32-bit lane (a load with broadcast, no
// trip through a general register).
COHOST_TARGET inline __m256i Broadcast4(const int8_t* p) {
  return _mm256_castps_si256(_mm256_broadcast_ss(reinterpret_cast<const float*>(p)));
}

// acc + the products of u and y summed per 32-bit lane (Products, fused
// into vpdpbusd's accumulator where the table has it).
template <typename Block>
COHOST_TARGET inline __m256i AddProducts(__m256i acc, __m256i u, __m256i y) {
#if COHOST_VNNI
  return _mm256_dpbusd_epi32(acc, u, y);
#else
  return _mm256_add_epi32(acc, Products<Block>(u, y));
#endif
}

// acc + sub-block j's share of eight outputs for one activation block ab,
// from h, the integer sums of the codes times the activations over the
// sub-block's two halves: offsets and per-16 scales applied, then the fp32
// steps every table takes in this order (quant_kernels.h).
template <typename Block>
COHOST_TARGET inline __m256 Accumulate(Halves8 h, const BlockQ8A* ab, const Factors<Block>& f,
                                       int j, __m256 acc) {
  __m256i isum;
  if constexpr (kPer16Scales<Block>) {
    // sum over each half of sc (u - offset) y.
    const __m256i lo = _mm256_sub_epi32(h.lo, _mm256_set1_epi32(kOffset<Block> * ab->sum16[0]));
    const __m256i hi = _mm256_sub_epi32(h.hi, _mm256_set1_epi32(kOffset<Block> * ab->sum16[1]));
    isum = _mm256_add_epi32(_mm256_mullo_epi32(lo, f.sc_lo[j]), _mm256_mullo_epi32(hi, f.sc_hi[j]));
  } else {
    isum = _mm256_add_epi32(h.lo, h.hi);
    if constexpr (kOffset<Block> != 0) {
      const int32_t sum = ab->sum16[0] + ab->sum16[1];
      isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(kOffset<Block> * sum));
    }
  }
  __m256 out = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                               _mm256_mul_ps(f.scale[j], _mm256_set1_ps(ab->d)), acc);
  if constexpr (kHasMin<Block>) out = _mm256_fmadd_ps(f.min[j], _mm256_set1_ps(ab->s), out);
  if constexpr (kHasMin16<Block>) {
    const __m256i msum =
        _mm256_add_epi32(_mm256_mullo_epi32(f.m_lo[j], _mm256_set1_epi32(ab->sum16[0])),
                         _mm256_mullo_epi32(f.m_hi[j], _mm256_set1_epi32(ab->sum16[1])));
    out = _mm256_fmadd_ps(f.min[j], _mm256_mul_ps(_mm256_set1_ps(ab->d), _mm256_cvtepi32_ps(msum)),
                          out);
  }
  return out;
}

// Sub-block j's share of eight outputs for m activation rows (row r's
// block of the sub-block at ab + r * nb), from its codes t transposed
// (t[d] lane i: bytes 4d..4d+3 of row i): each activation row is eight
// broadcast products with no reduction.
template <typename Block>
COHOST_TARGET inline void TransposedRows(const __m256i* t, const Factors<Block>& f, int j,
                                         const BlockQ8A* ab, int64_t m, int64_t nb, __m256* acc) {
  for (int64_t r = 0; r < m; ++r, ab += nb) {
    Halves8 h{_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int d = 0; d < 4; ++d) {
      h.lo = AddProducts<Block>(h.lo, t[d], Broadcast4(ab->qs + 4 * d));
      h.hi = AddProducts<Block>(h.hi, t[d + 4], Broadcast4(ab->qs + 4 * (d + 4)));
    }
    acc[r] = Accumulate(h, ab, f, j, acc[r]);
  }
}

// Sub-blocks J.. of block b of the eight rows into `m` activation rows'
// accumulators (row r's blocks at a + r * nb): each row's codes decoded
// once for all m. Two ways to the same integer sums: for a few activation
// rows, each row's products reduced across lanes (hadd); for many, the codes
// transposed once (TransposedRows).
template <typename Block, bool kTransposed, int J = 0>
COHOST_TARGET inline void TileBlock(const Block* const* rows, int64_t b, const Factors<Block>& f,
                                    const BlockQ8A* a, int64_t m, int64_t nb, __m256* acc) {
  if constexpr (J < kSubBlocks<Block>) {
    __m256i u[kTileCols];
    for (int i = 0; i < kTileCols; ++i) u[i] = Load<J>(rows[i][b]);
    const BlockQ8A* ab = a + b * kSubBlocks<Block> + J;
    if constexpr (kTransposed) {
      __m256i t[kTileCols];
      Transpose(u, t);
      TransposedRows(t, f, J, ab, m, nb, acc);
    } else {
      for (int64_t r = 0; r < m; ++r, ab += nb) {
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab->qs));
        __m256i p[kTileCols];
        for (int i = 0; i < kTileCols; ++i) p[i] = Products<Block>(u[i], y);
        acc[r] = Accumulate(SumEachHalf(p), ab, f, J, acc[r]);
      }
    }
    TileBlock<Block, kTransposed, J + 1>(rows, b, f, a, m, nb, acc);
  }
}

// Activation rows from which transposing the codes costs less than
// reducing each row's products.
inline constexpr int64_t kTransposeRows = 4;

// The kCols rows of a tile from wv: rows past `rows` repeat the last one
// (read, computed, not written).
template <typename Block, int kCols>
inline void TileRows(const void* wv, size_t row_bytes, int rows, const Block** row) {
  for (int i = 0; i < kCols; ++i) {
    row[i] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(wv) +
                                            static_cast<size_t>(std::min(i, rows - 1)) * row_bytes);
  }
}

// Read block by block, a tile's rows are interleaved streams, which the
// hardware prefetchers follow badly (decode, bound by memory, ran at 0.6x
// the one-row kernels' speed): fetch the next tile's bytes (the following
// kCols rows from `first`) linearly, block b's share at block b.
// (Addresses as integers: past the matrix's end they are only hints.)
template <typename Block, int kCols>
COHOST_TARGET inline void PrefetchNextTile(const Block* first, size_t row_bytes, int64_t b) {
  const uintptr_t next =
      reinterpret_cast<uintptr_t>(first) + kCols * row_bytes + b * kCols * sizeof(Block);
  for (size_t at = 0; at < kCols * sizeof(Block); at += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(next + at), _MM_HINT_T0);
  }
}

template <typename Block>
COHOST_TARGET void Tile(const void* wv, size_t row_bytes, int rows, const BlockQ8A* a, int64_t m,
                        int64_t nb, float* c, int64_t ldc) {
  const Block* row[kTileCols];
  TileRows<Block, kTileCols>(wv, row_bytes, rows, row);
  for (int64_t r0 = 0; r0 < m; r0 += kTileRows) {
    const int64_t rn = std::min(kTileRows, m - r0);
    __m256 acc[kTileRows];
    for (int64_t r = 0; r < rn; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb / kSubBlocks<Block>; ++b) {
      PrefetchNextTile<Block, kTileCols>(row[0], row_bytes, b);
      Factors<Block> f;
      LoadFactors(row, b, f);
      if (rn >= kTransposeRows) {
        TileBlock<Block, true>(row, b, f, a + r0 * nb, rn, nb, acc);
      } else {
        TileBlock<Block, false>(row, b, f, a + r0 * nb, rn, nb, acc);
      }
    }
    for (int64_t r = 0; r < rn; ++r) {
      float* out = c + (r0 + r) * ldc;
      if (rows == kTileCols) {
        _mm256_storeu_ps(out, acc[r]);
      } else {
        alignas(32) float lanes[kTileCols];
        _mm256_store_ps(lanes, acc[r]);
        std::copy(lanes, lanes + rows, out);
      }
    }
  }
}

// NOLINTEND(llvm-header-guard)
