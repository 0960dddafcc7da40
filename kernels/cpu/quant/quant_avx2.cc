// The x86 quantized tables: the kernels' body (quant_x86_body.h) compiled
// twice, for AVX2 (+FMA, F16C) and for AVX-512 VNNI (vpdpbusd replaces
// maddubs + madd), whose batched tiles take sixteen rows on 512-bit vectors
// (quant_x86_wide_tile.h); the AMX table is the VNNI one with batches of
// sixteen activation rows or more summed by tile multiplies
// (quant_x86_amx_tile.h). Each reads panels (WeightLayout::kPanels16):
// the AVX2 table through quant_x86_avx2_panel_tile.h, the others through
// quant_x86_panel_tile.h. Each function carries its own
// target attribute (no file-wide -mavx2), so nothing here, inline library code
// included, runs on a CPU without it: each table is handed out only when
// cpuid says the CPU has what it needs.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../amx_tiles.h"
#include "cpu_features.h"
#include "quant_kernels.h"

namespace cohost::kernels::cpu {
namespace avx2 {
namespace {
#define COHOST_TARGET __attribute__((target("avx2,fma,f16c")))
#define COHOST_VNNI 0
#include "quant_x86_body.h"  // NOLINT(bugprone-suspicious-include)

// After the body, whose helpers it uses.
#include "quant_x86_avx2_panel_tile.h"  // NOLINT(bugprone-suspicious-include)
#undef COHOST_TARGET
#undef COHOST_VNNI
}  // namespace
}  // namespace avx2

namespace vnni {
namespace {
#define COHOST_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define COHOST_VNNI 1
#include "quant_x86_body.h"       // NOLINT(bugprone-suspicious-include)
#include "quant_x86_wide_tile.h"  // NOLINT(bugprone-suspicious-include)
#define COHOST_AMX_TARGET \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,amx-tile,amx-int8")))
#include "quant_x86_amx_tile.h"    // NOLINT(bugprone-suspicious-include)
#include "quant_x86_panel_tile.h"  // NOLINT(bugprone-suspicious-include)
#undef COHOST_AMX_TARGET
#undef COHOST_TARGET
#undef COHOST_VNNI
}  // namespace
}  // namespace vnni

#define COHOST_X86_TABLE(ns, label, cols, tile, panels) \
  QuantKernels {                                        \
    label, cols, ns::QuantizeQ8A,                       \
        {nullptr,                                       \
         ns::tile<BlockQ8_0>,                           \
         ns::tile<BlockQ4_0>,                           \
         ns::tile<BlockQ4_1>,                           \
         ns::tile<BlockQ5_0>,                           \
         ns::tile<BlockQ5_1>,                           \
         ns::tile<BlockQ4_K>,                           \
         ns::tile<BlockQ5_K>,                           \
         ns::tile<BlockQ6_K>,                           \
         ns::tile<BlockQ2_K>,                           \
         ns::tile<BlockQ3_K>},                          \
        panels                                          \
  }
// The panel formats' tiles (cohost/kernels/panels.h), by WeightFormat.
#define COHOST_PANEL_TILES(ns, tile)                                                             \
  {                                                                                              \
    nullptr, ns::tile<BlockQ8_0>, ns::tile<BlockQ4_0>, ns::tile<BlockQ4_1>, ns::tile<BlockQ5_0>, \
        ns::tile<BlockQ5_1>, ns::tile<BlockQ4_K>, ns::tile<BlockQ5_K>, ns::tile<BlockQ6_K>       \
  }

const QuantKernels* Avx2QuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c) return nullptr;
  static const QuantKernels k =
      COHOST_X86_TABLE(avx2, "avx2", kTileCols, Tile, COHOST_PANEL_TILES(avx2, HalfPanelTile));
  return &k;
}

const QuantKernels* Avx512VnniQuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (!f.avx2 || !f.fma || !f.f16c || !f.avx512f || !f.avx512vl || !f.avx512vnni) return nullptr;
  static const QuantKernels k = COHOST_X86_TABLE(vnni, "avx512vnni", vnni::kWideTileCols, WideTile,
                                                 COHOST_PANEL_TILES(vnni, PanelTile));
  return &k;
}

const QuantKernels* AmxQuantKernels() {
  const CpuFeatures& f = HostCpuFeatures();
  if (Avx512VnniQuantKernels() == nullptr || !f.amx_tile || !f.amx_int8) return nullptr;
  static const QuantKernels k = COHOST_X86_TABLE(vnni, "amx", vnni::kWideTileCols, AmxTile,
                                                 COHOST_PANEL_TILES(vnni, AmxPanelTile));
  return &k;
}

}  // namespace cohost::kernels::cpu
