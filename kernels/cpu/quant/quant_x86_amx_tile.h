// The AMX table's tile: the AVX-512 VNNI table's sixteen weight rows, with
// the integer sums of sixteen activation rows at a time taken by one AMX
// tile multiply (tdpbsud: signed activation bytes times unsigned codes,
// summed in int32) instead of 128 vpdpbusd. A call first packs its weight
// rows once, every sub-block in the layout WideColumns gives (the layout
// tdpbsud wants of its second operand) and every block's factors, so a
// prefill's hundreds of activation rows decode the weights once, not once
// per sixteen rows. The sums are stored and scaled by WideAccumulate, the
// wide tile's own fp32 steps, so every output has the same bits as in the
// other tables. Batches under kAmxMinRows rows (a decode step) and a
// batch's last rows short of sixteen go to the wide tile. Included by
// quant_avx2.cc after the wide tile, inside the VNNI table's namespace,
// with COHOST_AMX_TARGET defined; no include guard, on purpose.
// NOLINTBEGIN(llvm-header-guard)

// Activation rows per tile multiply: a tile register's rows.
inline constexpr int64_t kAmxRows = 16;
// The fewest activation rows a call takes through the tile registers
// (bench/RESULTS.md: at 16 the tile registers and the wide tile are even,
// from 32 on the tile registers win).
inline constexpr int64_t kAmxMinRows = 2 * kAmxRows;

// The tile registers' shapes (amx_tiles.h says how a call makes sure of
// them). Two sets of sums (0, 1), two of activations (2, 3) and two of codes
// (4, 5): either two sub-blocks at once (32 values: 16 activation rows x 32
// bytes, 8 x 64 bytes of codes) or, for formats with per-16 scales, a
// sub-block's two halves (16 x 16 and 4 x 64).
constexpr AmxTileConfig QuantTileConfig(int values) {
  AmxTileConfig c;
  const int codes_rows = values / 4;
  for (int t = 0; t < 2; ++t) {
    c.bytes_per_row[t] = 64;
    c.rows[t] = kAmxRows;
    c.bytes_per_row[2 + t] = static_cast<uint16_t>(values);
    c.rows[2 + t] = kAmxRows;
    c.bytes_per_row[4 + t] = 64;
    c.rows[4 + t] = static_cast<uint8_t>(codes_rows);
  }
  return c;
}

// One sub-block of the sixteen rows' codes as WideColumns gives them
// (alignas: as WideFactors).
struct alignas(64) PackedSubBlock {
  __m512i t[kTileCols];
};

// Sub-blocks J.. of block b of the sixteen rows, packed at out.
template <typename Block, int J = 0>
COHOST_AMX_TARGET inline void PackBlock(const Block* const* rows, int64_t b, PackedSubBlock* out) {
  if constexpr (J < kSubBlocks<Block>) {
    WideColumns<Block, J>(rows, b, out[J].t);
    PackBlock<Block, J + 1>(rows, b, out);
  }
}

// One sub-block's integer sums, activation row x weight row (for formats
// with per-16 scales, of its two halves).
template <typename Block>
struct AmxSums {
  int32_t sum[kPer16Scales<Block> ? 2 : 1][kAmxRows][kWideTileCols];
};

// Sub-blocks whose sums are taken at once: 8 KB of sums.
template <typename Block>
inline constexpr int64_t kGroup = kPer16Scales<Block> ? 4 : 8;

// Bytes of one sub-block's codes for sixteen rows in the layout WideColumns
// gives (a PackedSubBlock, or a block of a Q8_0 panel: panels.h).
inline constexpr int64_t kSubBlockCodeBytes = sizeof(PackedSubBlock);

// The sums of `group` consecutive sub-blocks for sixteen activation rows
// (row r's sub-block g at ab[g] + r blocks of `stride` bytes) and the codes
// at `codes` (sub-block g at g * kSubBlockCodeBytes), into out[0..group).
template <typename Block>
COHOST_AMX_TARGET inline void TakeSums(const BlockQ8A* ab, const uint8_t* codes, int64_t group,
                                       int64_t stride, AmxSums<Block>* out) {
  TileMemoryBarrier();
  if constexpr (kPer16Scales<Block>) {
    for (int64_t g = 0; g < group; ++g) {
      const uint8_t* sub = codes + g * kSubBlockCodeBytes;
      _tile_zero(0);
      _tile_zero(1);
      _tile_loadd(2, ab[g].qs, stride);
      _tile_loadd(3, ab[g].qs + kQuantBlock / 2, stride);
      _tile_loadd(4, sub, 64);
      _tile_loadd(5, sub + kSubBlockCodeBytes / 2, 64);
      _tile_dpbsud(0, 2, 4);
      _tile_dpbsud(1, 3, 5);
      _tile_stored(0, out[g].sum[0], 64);
      _tile_stored(1, out[g].sum[1], 64);
    }
  } else {
    int64_t g = 0;
    for (; g + 1 < group; g += 2) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_loadd(2, ab[g].qs, stride);
      _tile_loadd(3, ab[g + 1].qs, stride);
      _tile_loadd(4, codes + g * kSubBlockCodeBytes, 64);
      _tile_loadd(5, codes + (g + 1) * kSubBlockCodeBytes, 64);
      _tile_dpbsud(0, 2, 4);
      _tile_dpbsud(1, 3, 5);
      _tile_stored(0, out[g].sum[0], 64);
      _tile_stored(1, out[g + 1].sum[0], 64);
    }
    if (g < group) {
      _tile_zero(0);
      _tile_loadd(2, ab[g].qs, stride);
      _tile_loadd(4, codes + g * kSubBlockCodeBytes, 64);
      _tile_dpbsud(0, 2, 4);
      _tile_stored(0, out[g].sum[0], 64);
    }
  }
  TileMemoryBarrier();
}

// The outputs of `rows` weight rows (up to sixteen) for activation rows
// [0, whole) (a multiple of kAmxRows), from every sub-block's codes at
// `codes` (as TakeSums reads them) and every block's factors: the integer
// sums by tile multiplies, scaled by WideAccumulate. The `next_bytes` bytes
// at `next` (the caller's next weights; none: 0) are prefetched over the
// first sixteen rows' sub-blocks, evenly: a burst of prefetches would stall
// on the core's outstanding misses instead.
template <typename Block>
COHOST_AMX_TARGET void AmxRows(const uint8_t* codes, const WideFactors<Block>* factors, int rows,
                               const BlockQ8A* a, int64_t whole, int64_t nb, float* c, int64_t ldc,
                               uintptr_t next = 0, int64_t next_bytes = 0) {
  const int64_t next_per_sub = (next_bytes / nb + 63) / 64 * 64;
  constexpr int64_t kSub = kSubBlocks<Block>;
  TileMemoryBarrier();
  static constexpr AmxTileConfig kConfig =
      QuantTileConfig(kPer16Scales<Block> ? kQuantBlock / 2 : kQuantBlock);
  EnsureTileConfig(kConfig);
  const auto stride = static_cast<int64_t>(nb * sizeof(BlockQ8A));
  // Each group's sums are taken, then scaled. (Taking the next group's
  // before scaling the last measured no faster on Emerald Rapids: the tile
  // stores and the vector loads share the ports; RESULTS.md.)
  alignas(64) AmxSums<Block> sums[kGroup<Block>];
  const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1);
  for (int64_t r0 = 0; r0 < whole; r0 += kAmxRows) {
    __m512 acc[kAmxRows];
    for (__m512& v : acc) v = _mm512_setzero_ps();
    for (int64_t s0 = 0; s0 < nb; s0 += kGroup<Block>) {
      const int64_t group = std::min(kGroup<Block>, nb - s0);
      const BlockQ8A* ab = a + r0 * nb + s0;
      TakeSums<Block>(ab, codes + s0 * kSubBlockCodeBytes, group, stride, sums);
      for (int64_t g = 0; g < group; ++g) {
        const int64_t sub = s0 + g;
        for (int64_t at = 0; r0 == 0 && at < next_per_sub; at += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(next + sub * next_per_sub + at), _MM_HINT_T0);
        }
        const WideFactors<Block>& f = factors[sub / kSub];
        const int j = static_cast<int>(sub % kSub);
        for (int64_t r = 0; r < kAmxRows; ++r) {
          const __m512i lo = _mm512_load_si512(sums[g].sum[0][r]);
          __m512i hi = _mm512_setzero_si512();
          if constexpr (kPer16Scales<Block>) hi = _mm512_load_si512(sums[g].sum[1][r]);
          acc[r] = WideAccumulate(lo, hi, ab + g + r * nb, f, j, acc[r]);
        }
      }
    }
    for (int64_t r = 0; r < kAmxRows; ++r) _mm512_mask_storeu_ps(c + (r0 + r) * ldc, keep, acc[r]);
  }
}

// A QuantTileFn of up to sixteen weight rows.
template <typename Block>
COHOST_AMX_TARGET void AmxTile(const void* wv, size_t row_bytes, int rows, const BlockQ8A* a,
                               int64_t m, int64_t nb, float* c, int64_t ldc) {
  // Below kAmxMinRows the wide tile is as fast: packing the codes costs
  // what the tile multiplies save.
  const int64_t whole = m < kAmxMinRows ? 0 : m / kAmxRows * kAmxRows;
  if (whole < m) {
    WideTile<Block>(wv, row_bytes, rows, a + whole * nb, m - whole, nb, c + whole * ldc, ldc);
  }
  if (whole == 0) return;
  const Block* row[kWideTileCols];
  TileRows<Block, kWideTileCols>(wv, row_bytes, rows, row);
  constexpr int64_t kSub = kSubBlocks<Block>;
  const int64_t blocks = nb / kSub;
  // The caller's thread owns these; they grow to the longest row seen.
  thread_local std::vector<WideFactors<Block>> factors;
  thread_local std::vector<PackedSubBlock> packed;
  factors.resize(static_cast<size_t>(blocks));
  packed.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < blocks; ++b) {
    PrefetchNextTile<Block, kWideTileCols>(row[0], row_bytes, b);
    LoadWideFactors(row, b, factors[b]);
    PackBlock<Block>(row, b, packed.data() + b * kSub);
  }
  AmxRows<Block>(reinterpret_cast<const uint8_t*>(packed.data()), factors.data(), rows, a, whole,
                 nb, c, ldc);
}

// NOLINTEND(llvm-header-guard)
