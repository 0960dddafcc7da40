// Whether the AMX table's two phases overlap on one core (bench/RESULTS.md,
// 2026-12-06): tile multiplies into int32 sums of 16 activation rows x 16
// weight rows per 32-value sub-block (zero, loads, tdpbsud, tile store), and
// the fp32 scaling of those sums (load, convert, multiply, two FMAs per
// activation row), as AmxRows does them for Q4_1 at NB sub-blocks; the same
// product by vpdpbusd (v4) for scale. v5 interleaves the scaling with tile
// instructions that it does not depend on, some of them left out, to find
// which instructions keep the vector work from overlapping. Not part of the
// build (AMX-INT8 only; it asks Linux for the tile state first):
//   gcc -O2 bench/amx_overlap.c -o /tmp/amx_overlap && /tmp/amx_overlap
// Reported in TSC ticks per sub-block; compare lines within one run.
#include <immintrin.h>
#include <x86intrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#define T __attribute__((target("avx512f,avx512vl,avx512vnni,amx-tile,amx-int8"), noinline))
#define NB 48
typedef struct { float d, s; int16_t sum16[2]; int8_t qs[32]; } Q8A;
struct Cfg { uint8_t palette, start; uint8_t r[14]; uint16_t colsb[16]; uint8_t rows[16]; } __attribute__((aligned(64)));
static Q8A act[16 * NB];
static int8_t packed[NB][16][32] __attribute__((aligned(64)));
static uint8_t codesbig[36][NB][8][64] __attribute__((aligned(64)));
static uint8_t (*codes)[8][64] = codesbig[0];
static int pan;
static float scale[NB][16] __attribute__((aligned(64))), mins[NB][16] __attribute__((aligned(64)));
static float out[16][16];
static int32_t sums[2][8][16][16] __attribute__((aligned(64)));

__attribute__((target("avx512f"), always_inline)) static inline __m512 Scale(const int32_t* s, int sub, const Q8A* ab, __m512 acc) {
  __m512 o = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(s)), _mm512_mul_ps(_mm512_load_ps(scale[sub]), _mm512_set1_ps(ab->d)), acc);
  return _mm512_fmadd_ps(_mm512_load_ps(mins[sub]), _mm512_set1_ps(ab->s), o);
}
// V0: groups of 8: tile ops for all, then scale all.
T void v0(int usepacked) {
  __m512 acc[16]; for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  const long stride = NB * sizeof(Q8A);
  for (int s0 = 0; s0 < NB; s0 += 8) {
    asm volatile("" ::: "memory");
    for (int g = 0; g < 8; g += 2) {
      _tile_zero(0); _tile_zero(1);
      if (usepacked) { _tile_loadd(2, packed[s0+g], 32); _tile_loadd(3, packed[s0+g+1], 32); }
      else { _tile_loadd(2, act[s0+g].qs, stride); _tile_loadd(3, act[s0+g+1].qs, stride); }
      _tile_loadd(4, codes[s0+g], 64); _tile_loadd(5, codes[s0+g+1], 64);
      _tile_dpbsud(0, 2, 4); _tile_dpbsud(1, 3, 5);
      _tile_stored(0, sums[0][g], 64); _tile_stored(1, sums[0][g+1], 64);
    }
    asm volatile("" ::: "memory");
    for (int g = 0; g < 8; ++g)
      for (int r = 0; r < 16; ++r) acc[r] = Scale(sums[0][g][r], s0 + g, &act[r * NB + s0 + g], acc[r]);
  }
  for (int r = 0; r < 16; ++r) _mm512_storeu_ps(out[r], acc[r]);
}
// V1: pair-level pipeline: tiles of pair p+1 (4 C tiles alternating), then scale pair p.
T void v1(int usepacked) {
  __m512 acc[16]; for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  const long stride = NB * sizeof(Q8A);
  int buf = 0;
#define TILEPAIR(p, c0, c1, a0, a1, b0, b1, dst) do { \
      _tile_zero(c0); _tile_zero(c1); \
      if (usepacked) { _tile_loadd(a0, packed[p], 32); _tile_loadd(a1, packed[p+1], 32); } \
      else { _tile_loadd(a0, act[p].qs, stride); _tile_loadd(a1, act[p+1].qs, stride); } \
      _tile_loadd(b0, codes[p], 64); _tile_loadd(b1, codes[p+1], 64); \
      _tile_dpbsud(c0, a0, b0); _tile_dpbsud(c1, a1, b1); \
      _tile_stored(c0, dst[0], 64); _tile_stored(c1, dst[1], 64); } while (0)
  asm volatile("" ::: "memory");
  TILEPAIR(0, 0, 1, 2, 3, 4, 5, sums[0]);
  for (int p = 0; p < NB; p += 2) {
    asm volatile("" ::: "memory");
    if (p + 2 < NB) { if (buf == 0) TILEPAIR(p + 2, 6, 7, 2, 3, 4, 5, sums[1]); else TILEPAIR(p + 2, 0, 1, 2, 3, 4, 5, sums[0]); }
    asm volatile("" ::: "memory");
    for (int g = 0; g < 2; ++g)
      for (int r = 0; r < 16; ++r) acc[r] = Scale(sums[buf][g][r], p + g, &act[r * NB + p + g], acc[r]);
    buf ^= 1;
  }
  for (int r = 0; r < 16; ++r) _mm512_storeu_ps(out[r], acc[r]);
}
// V2: only tile ops (no scaling) V0 structure; V3: only scaling.
T void v2(void) {
  for (int s0 = 0; s0 < NB; s0 += 8) {
    for (int g = 0; g < 8; g += 2) {
      _tile_zero(0); _tile_zero(1);
      _tile_loadd(2, packed[s0+g], 32); _tile_loadd(3, packed[s0+g+1], 32);
      _tile_loadd(4, codes[s0+g], 64); _tile_loadd(5, codes[s0+g+1], 64);
      _tile_dpbsud(0, 2, 4); _tile_dpbsud(1, 3, 5);
      _tile_stored(0, sums[0][g], 64); _tile_stored(1, sums[0][g+1], 64);
    }
  }
}
T void v3(void) {
  __m512 acc[16]; for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  for (int s0 = 0; s0 < NB; s0 += 8) {
    asm volatile("" ::: "memory");
    for (int g = 0; g < 8; ++g)
      for (int r = 0; r < 16; ++r) acc[r] = Scale(sums[0][g][r], s0 + g, &act[r * NB + s0 + g], acc[r]);
  }
  for (int r = 0; r < 16; ++r) _mm512_storeu_ps(out[r], acc[r]);
}
// V4: VNNI baseline: 8 dpbusd per (r, sub-block) + scaling, codes in registers per sub-block.
T void v4(void) {
  __m512 acc[16]; for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  for (int sub = 0; sub < NB; ++sub) {
    __m512i t[8]; for (int d = 0; d < 8; ++d) t[d] = _mm512_load_si512(codes[sub][d]);
    for (int r = 0; r < 16; ++r) {
      const Q8A* ab = &act[r * NB + sub];
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
      for (int d = 0; d < 4; ++d) {
        int32_t v0, v1; memcpy(&v0, ab->qs + 4 * d, 4); memcpy(&v1, ab->qs + 16 + 4 * d, 4);
        lo = _mm512_dpbusd_epi32(lo, t[d], _mm512_set1_epi32(v0));
        hi = _mm512_dpbusd_epi32(hi, t[d + 4], _mm512_set1_epi32(v1));
      }
      __m512 o = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), _mm512_mul_ps(_mm512_load_ps(scale[sub]), _mm512_set1_ps(ab->d)), acc[r]);
      acc[r] = _mm512_fmadd_ps(_mm512_load_ps(mins[sub]), _mm512_set1_ps(ab->s), o);
    }
  }
  for (int r = 0; r < 16; ++r) _mm512_storeu_ps(out[r], acc[r]);
}

static int32_t other[2][16][16] __attribute__((aligned(64)));
// mode bits: 1 = do A/B loads, 2 = do stores, 4 = scaling reads `other` (no dependency)
T void v5(int mode) {
  __m512 acc[16]; for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  for (int p = 0; p < NB; p += 2) {
    asm volatile("" ::: "memory");
    _tile_zero(0); _tile_zero(1);
    if (mode & 1) { _tile_loadd(2, packed[p], 32); _tile_loadd(3, packed[p+1], 32);
      _tile_loadd(4, codes[p], 64); _tile_loadd(5, codes[p+1], 64); }
    _tile_dpbsud(0, 2, 4); _tile_dpbsud(1, 3, 5);
    if (mode & 2) { _tile_stored(0, sums[0][p & 7], 64); _tile_stored(1, sums[0][(p + 1) & 7], 64); }
    asm volatile("" ::: "memory");
    for (int g = 0; g < 2; ++g)
      for (int r = 0; r < 16; ++r) acc[r] = Scale((mode & 4) ? other[g][r] : sums[0][(p + g - 2) & 7][r], p + g, &act[r * NB + p + g], acc[r]);
  }
  for (int r = 0; r < 16; ++r) _mm512_storeu_ps(out[r], acc[r]);
}
T void cfg(void) {
  static struct Cfg c; memset(&c, 0, sizeof c); c.palette = 1;
  for (int t = 0; t < 8; t++) { c.rows[t] = 16; c.colsb[t] = 64; }
  c.colsb[2] = c.colsb[3] = 32; c.rows[4] = c.rows[5] = 8;
  _tile_loadconfig(&c);
}
int main(void) {
  if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) { printf("no AMX\n"); return 1; }
  cfg();
  for (int i = 0; i < 16 * NB; ++i) { act[i].d = 0.01f; act[i].s = 1; for (int k = 0; k < 32; ++k) act[i].qs[k] = (int8_t)(i + k); }
  for (int s = 0; s < NB; ++s) for (int n = 0; n < 16; ++n) { scale[s][n] = 0.5f; mins[s][n] = 0.1f; }
  const int N = 20000;
  for (int rep = 0; rep < 4; ++rep) { int big = rep & 1; printf(big ? "codes from L2 (36 panels)\n" : "codes in L1\n");
    uint64_t t0, t1;
#define TIME(name, call) t0 = __rdtsc(); for (int i = 0; i < N; ++i) { if (big) { pan = (pan + 1) % 36; codes = codesbig[pan]; } call; } t1 = __rdtsc(); printf("%-28s %6.1f ticks/sub-block\n", name, (double)(t1 - t0) / N / NB);
    TIME("v0 current, strided A", v0(0));
    TIME("v0 current, packed A", v0(1));
    TIME("v1 pair pipeline, strided", v1(0));
    TIME("v1 pair pipeline, packed", v1(1));
    TIME("v2 tiles only", v2());
    TIME("v3 scaling only", v3());
    TIME("v4 vnni", v4());
    TIME("v5 loads+stores, dep", v5(3));
    TIME("v5 loads+stores, nodep", v5(7));
    TIME("v5 loads only, nodep", v5(5));
    TIME("v5 stores only, nodep", v5(6));
    TIME("v5 dp only, nodep", v5(4));
    printf("\n");
  }
  return (int)out[0][0];
}
