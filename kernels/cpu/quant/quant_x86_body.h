// The x86 quantized kernels' body, compiled once per instruction set:
// quant_avx2.cc includes it in one namespace per table, with COHOST_TARGET
// (the functions' target attribute) and COHOST_VNNI (0 or 1) defined. Not a
// header of its own: no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

COHOST_TARGET inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

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
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      // Multiply, then round to nearest even: the scalar table's nearbyint.
      q[i] = _mm256_cvtps_epi32(
          _mm256_round_ps(_mm256_mul_ps(v[i], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    const __m256i sum =
        _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    // int32 -> int16 -> int8 packs work within 128-bit lanes; the permute
    // puts the 32 values back in order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(q01, q23);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), bytes);
    out[b].d = d;
    out[b].s = d * static_cast<float>(HorizontalSum(sum));
  }
}

// The AVX2 form of quant_scalar.cc's SubBlock: 32 weight codes as bytes,
// the per-16 integer scales as int16 lanes (ones but for Q6_K), and the
// block's fp32 factors.
struct SubBlock {
  __m256i q;
  __m256i sc16;
  float scale;
  float min;
};

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

COHOST_TARGET inline SubBlock Plain(__m256i q, float scale, float min = 0) {
  return {q, _mm256_set1_epi16(1), scale, min};
}

// Sub-block J of a block, J known at compile time (shifts and scale
// positions become constants; a K-quant super-block's eight are unrolled).
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ8_0& w) {
  return Plain(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs)), _cvtsh_ss(w.d));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ4_0& w) {
  return Plain(_mm256_sub_epi8(Nibbles(w.qs), _mm256_set1_epi8(8)), _cvtsh_ss(w.d));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ4_1& w) {
  return Plain(Nibbles(w.qs), _cvtsh_ss(w.d), _cvtsh_ss(w.m));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ5_0& w) {
  const __m256i q = _mm256_or_si256(Nibbles(w.qs), FifthBits(w.qh));
  return Plain(_mm256_sub_epi8(q, _mm256_set1_epi8(16)), _cvtsh_ss(w.d));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ5_1& w) {
  return Plain(_mm256_or_si256(Nibbles(w.qs), FifthBits(w.qh)), _cvtsh_ss(w.d), _cvtsh_ss(w.m));
}
template <int J, typename Block>
COHOST_TARGET inline SubBlock LoadK(const Block& w, __m256i q) {
  const KScaleMin k = UnpackKScaleMin(w.scales, J);
  return Plain(q, _cvtsh_ss(w.d) * static_cast<float>(k.scale),
               -(_cvtsh_ss(w.dmin) * static_cast<float>(k.min)));
}
// Sub-blocks 2i and 2i+1 of a Q4_K / Q5_K share the 32 bytes at 32i.
template <int J>
inline constexpr ptrdiff_t kNibbleBytes = ptrdiff_t{32} * (J / 2);

template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ4_K& w) {
  return LoadK<J>(w, BitField(w.qs + kNibbleBytes<J>, 4 * (J % 2), 0x0f));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ5_K& w) {
  const __m256i high = _mm256_slli_epi16(BitField(w.qh, J, 1), 4);
  return LoadK<J>(w, _mm256_or_si256(BitField(w.qs + kNibbleBytes<J>, 4 * (J % 2), 0x0f), high));
}
template <int J>
COHOST_TARGET inline SubBlock Load(const BlockQ6_K& w) {
  constexpr int kHalf = J / 4, kQuarter = J % 4;
  constexpr ptrdiff_t kLow = ptrdiff_t{64} * kHalf + ptrdiff_t{32} * (kQuarter & 1);
  constexpr ptrdiff_t kHigh = ptrdiff_t{32} * kHalf;
  const __m256i low = BitField(w.ql + kLow, 4 * (kQuarter >> 1), 0x0f);
  const __m256i high = _mm256_slli_epi16(BitField(w.qh + kHigh, 2 * kQuarter, 3), 4);
  const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, high), _mm256_set1_epi8(32));
  const __m256i sc16 = _mm256_set_m128i(_mm_set1_epi16(w.scales[8 * kHalf + 2 * kQuarter + 1]),
                                        _mm_set1_epi16(w.scales[8 * kHalf + 2 * kQuarter]));
  return {q, sc16, _cvtsh_ss(w.d), 0.f};
}

// Formats whose codes are never negative (a min instead of an offset):
// maddubs takes them as its unsigned operand directly.
template <typename Block>
inline constexpr bool kUnsignedCodes =
    std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1> ||
    std::is_same_v<Block, BlockQ4_K> || std::is_same_v<Block, BlockQ5_K>;

// Eight int32 lanes summing to the block's integer sum: its codes times the
// activations, each half of 16 times its integer scale. Exact: a pair of
// products fits int16 (|q| <= 128, |y| <= 127), the scaled pairs int32.
// maddubs needs one operand unsigned: signed codes give |q| and y with q's
// sign.
template <typename Block>
COHOST_TARGET inline __m256i Products(const SubBlock& s, __m256i y) {
  const __m256i x = kUnsignedCodes<Block> ? s.q : _mm256_sign_epi8(s.q, s.q);
  const __m256i sy = kUnsignedCodes<Block> ? y : _mm256_sign_epi8(y, s.q);
#if COHOST_VNNI
  // One instruction for maddubs and madd: four products into each int32
  // lane, without maddubs's int16 step (Q6_K's per-16 scales need it).
  if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, sy);
  }
#endif
  return _mm256_madd_epi16(_mm256_maddubs_epi16(x, sy), s.sc16);
}

// Sub-blocks J.. of one weight block into `rows` activation rows' sums
// (row r's blocks at a + r * a_stride), one sub-block at a time: each row's
// accumulator sees the same operations in the same order whatever `rows` is.
template <typename Block, int Rows, int J = 0>
COHOST_TARGET inline void Accumulate(const Block& w, const BlockQ8A* a, int64_t a_stride,
                                     __m256* acc, float* mins) {
  if constexpr (J < kSubBlocks<Block>) {
    const SubBlock s = Load<J>(w);
    for (int r = 0; r < Rows; ++r) {
      const BlockQ8A& ab = a[r * a_stride + J];
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.qs));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s.scale * ab.d),
                               _mm256_cvtepi32_ps(Products<Block>(s, y)), acc[r]);
      mins[r] += s.min * ab.s;
    }
    Accumulate<Block, Rows, J + 1>(w, a, a_stride, acc, mins);
  }
}

// `Rows` activation rows against one weight row: each weight block is loaded,
// unpacked and its scales converted once for all rows.
template <typename Block, int Rows>
COHOST_TARGET void DotRows(const void* wv, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                           float* out) {
  const auto* w = static_cast<const Block*>(wv);
  __m256 acc[Rows];
  float mins[Rows];
  for (int r = 0; r < Rows; ++r) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = 0;
  }
  for (int64_t b = 0; b < nb / kSubBlocks<Block>; ++b) {
    Accumulate<Block, Rows>(w[b], a + b * kSubBlocks<Block>, a_stride, acc, mins);
  }
  for (int r = 0; r < Rows; ++r) out[r] = HorizontalSum(acc[r]) + mins[r];
}

template <typename Block>
COHOST_TARGET float DotRow(const void* w, const BlockQ8A* a, int64_t nb) {
  float out;
  DotRows<Block, 1>(w, a, 0, nb, &out);
  return out;
}

template <typename Block>
COHOST_TARGET void Dot4Rows(const void* w, const BlockQ8A* a, int64_t a_stride, int64_t nb,
                            float* out) {
  DotRows<Block, 4>(w, a, a_stride, nb, out);
}

// NOLINTEND(llvm-header-guard)
