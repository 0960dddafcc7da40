// What the CPU's two users of the AMX tile registers share (the quantized
// tables' int8 tile, quant/quant_x86_amx_tile.h, and the 16-bit products'
// bf16 tiles, half_gemm_amx.cc), both run on the same pool threads: the tile
// configuration's layout (palette 1) and how a call makes sure of its own,
// and the compiler barrier GCC 12's tile intrinsics need.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace cohost::kernels::cpu {

// ldtilecfg's 64 bytes: each tile register's rows and bytes a row.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(AmxTileConfig) == 64);

// Loads `config` where the thread's tiles have another (sttilecfg: a thread
// may run the other user's code between calls) and otherwise leaves them
// as they are: the configuration stays loaded and the tiles are never
// released, since a decode step makes ~13,000 calls and loading and
// releasing in each cost ~6% of a sixteen-sequence step (bench/RESULTS.md).
// Loading zeroes the tiles' data, so a call ensures its configuration
// before it uses any tile, never between tile operations.
__attribute__((target("amx-tile"))) inline void EnsureTileConfig(const AmxTileConfig& config) {
  alignas(64) uint8_t current[sizeof(AmxTileConfig)];
  _tile_storeconfig(current);
  if (std::memcmp(current, &config, sizeof current) != 0) _tile_loadconfig(&config);
}

// The tile intrinsics are asm statements that name no memory (GCC 12's
// headers): without this, the compiler may move the stores a tile load reads
// after it, or the loads of stored sums before the tile stores that write
// them (or after the next ones).
inline void TileMemoryBarrier() { asm volatile("" ::: "memory"); }

}  // namespace cohost::kernels::cpu
#endif
