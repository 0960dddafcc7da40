// The AMX instruction costs behind the AMX table's bound (bench/RESULTS.md,
// "AMX: the integer sums of prefill batches"): tdpbsud, tile loads of
// activations (16 strided rows of 32 bytes) and of codes (8 rows of 64),
// tile stores of 16 x 16 int32 sums, and the tile's per-sub-block mix, two
// tiles at a time. Not part of the build (AMX-INT8 only; it asks Linux for
// the tile state first):
//   gcc -O2 bench/amx_throughput.c -o /tmp/amx_throughput && /tmp/amx_throughput
// Reported in TSC ticks per pair of instructions; compare lines within one run.
#include <immintrin.h>
#include <x86intrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdint.h>
struct Cfg { uint8_t palette, start; uint8_t r[14]; uint16_t colsb[16]; uint8_t rows[16]; } __attribute__((aligned(64)));
static int8_t A[16*64*64] __attribute__((aligned(64))); static uint8_t B[8][64*64] __attribute__((aligned(64)));
static int32_t C[64][16][16] __attribute__((aligned(64)));
__attribute__((target("amx-tile,amx-int8"))) static void run(void) {
  struct Cfg c = {0}; c.palette = 1;
  for (int t=0;t<2;t++){c.rows[t]=16;c.colsb[t]=64;c.rows[2+t]=16;c.colsb[2+t]=32;c.rows[4+t]=8;c.colsb[4+t]=64;}
  _tile_loadconfig(&c);
  const int N=100000;
  uint64_t t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_dpbsud(0,2,4); _tile_dpbsud(1,3,5);}
  uint64_t t1=__rdtsc(); printf("dpbsud pair: %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_loadd(2, A + (i%64)*32, 44*16); _tile_loadd(3, A+(i%64)*32+8, 44*16);}
  t1=__rdtsc(); printf("A load pair (strided): %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_loadd(4, B[i%8], 64); _tile_loadd(5, B[(i+1)%8], 64);}
  t1=__rdtsc(); printf("B load pair: %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_stored(0, C[i%64], 64); _tile_stored(1, C[(i+1)%64], 64);}
  t1=__rdtsc(); printf("C store pair: %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_zero(0); _tile_zero(1);}
  t1=__rdtsc(); printf("zero pair: %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_zero(0); _tile_zero(1); _tile_loadd(2, A + (i%64)*32, 44*16); _tile_loadd(3, A+(i%64)*32+8, 44*16); _tile_loadd(4, B[i%8], 64); _tile_loadd(5, B[(i+1)%8], 64); _tile_dpbsud(0,2,4); _tile_dpbsud(1,3,5); _tile_stored(0, C[i%64], 64); _tile_stored(1, C[(i+1)%64], 64);}
  t1=__rdtsc(); printf("all: %.1f ticks\n", (double)(t1-t0)/N);
  t0=__rdtsc();
  for (int i=0;i<N;i++){ _tile_loadd(2, A + (i%64)*32, 44*16); _tile_loadd(3, A+(i%64)*32+8, 44*16); _tile_loadd(4, B[i%8], 64); _tile_loadd(5, B[(i+1)%8], 64); _tile_dpbsud(0,2,4); _tile_dpbsud(1,3,5);}
  t1=__rdtsc(); printf("loads+dp (accumulate, no store): %.1f ticks\n", (double)(t1-t0)/N);
  _tile_release();
}
int main(void) {
  if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
    printf("no AMX tile state from the kernel\n");
    return 1;
  }
  run();
  run();
}
