// The instruction throughputs behind the sixteen-row tile's bound on this
// CPU (bench/RESULTS.md, "the sixteen-sequence step on a Zen 4"): vpdpbusd
// and FMA on zmm and ymm, independent chains, broadcasts embedded or not,
// and the tile's per-row mix. Not part of the build (inline asm, AVX-512
// VNNI only):
//   gcc -O2 -mavx512f bench/pipe_throughput.c -o /tmp/pipe_throughput && /tmp/pipe_throughput
// Cycles are wall time at 3.6 GHz (this VM's clock); compare lines within
// one run.
#include <stdio.h>
#include <time.h>
static double now(){struct timespec a; clock_gettime(CLOCK_MONOTONIC,&a); return a.tv_sec+a.tv_nsec*1e-9;}
static int buf[64] __attribute__((aligned(64)));
int main(){ long n=100000000; double t0=now(); int* p=buf;
 for(long i=0;i<n;i++) __asm__ volatile(
  "vpbroadcastd (%0), %%zmm10\n vpdpbusd %%zmm10, %%zmm1, %%zmm2\n vpbroadcastd 4(%0), %%zmm11\n vpdpbusd %%zmm11, %%zmm1, %%zmm3\n vpbroadcastd 8(%0), %%zmm12\n vpdpbusd %%zmm12, %%zmm1, %%zmm4\n vpbroadcastd 12(%0), %%zmm13\n vpdpbusd %%zmm13, %%zmm1, %%zmm5\n"
  "vpbroadcastd 16(%0), %%zmm14\n vpdpbusd %%zmm14, %%zmm1, %%zmm6\n vpbroadcastd 20(%0), %%zmm15\n vpdpbusd %%zmm15, %%zmm1, %%zmm7\n vpbroadcastd 24(%0), %%zmm16\n vpdpbusd %%zmm16, %%zmm1, %%zmm8\n vpbroadcastd 28(%0), %%zmm17\n vpdpbusd %%zmm17, %%zmm1, %%zmm9\n" :: "r"(p): "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15","xmm16","xmm17");
 double t1=now(); printf("separate bcast: %.2f G dp/s\n", n*8/(t1-t0)/1e9);
 for(long i=0;i<n;i++) __asm__ volatile(
  "vpdpbusd (%0)%{1to16%}, %%zmm1, %%zmm2\n vpdpbusd 4(%0)%{1to16%}, %%zmm1, %%zmm3\n vpdpbusd 8(%0)%{1to16%}, %%zmm1, %%zmm4\n vpdpbusd 12(%0)%{1to16%}, %%zmm1, %%zmm5\n"
  "vpdpbusd 16(%0)%{1to16%}, %%zmm1, %%zmm6\n vpdpbusd 20(%0)%{1to16%}, %%zmm1, %%zmm7\n vpdpbusd 24(%0)%{1to16%}, %%zmm1, %%zmm8\n vpdpbusd 28(%0)%{1to16%}, %%zmm1, %%zmm9\n" :: "r"(p): "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9");
 double t2=now(); printf("embedded bcast: %.2f G dp/s\n", n*8/(t2-t1)/1e9);
 for(long i=0;i<n;i++) __asm__ volatile(
  "vpdpbusd %%zmm0, %%zmm1, %%zmm2\n vpdpbusd %%zmm0, %%zmm1, %%zmm3\n vpdpbusd %%zmm0, %%zmm1, %%zmm4\n vpdpbusd %%zmm0, %%zmm1, %%zmm5\n"
  "vpdpbusd %%zmm0, %%zmm1, %%zmm6\n vpdpbusd %%zmm0, %%zmm1, %%zmm7\n vpdpbusd %%zmm0, %%zmm1, %%zmm8\n vfmadd231ps %%zmm0, %%zmm1, %%zmm9\n vfmadd231ps %%zmm0, %%zmm1, %%zmm10\n vmulps %%zmm0, %%zmm1, %%zmm11\n" ::: "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11");
 double t3=now(); printf("7 dp + 2 fma + mul: %.2f cycles/iter at 3.6GHz\n", (t3-t2)/n*3.6e9);
 for(long i=0;i<n;i++) __asm__ volatile(
  "vpdpbusd %%zmm0, %%zmm1, %%zmm2\n vpdpbusd %%zmm0, %%zmm1, %%zmm3\n vpdpbusd %%zmm0, %%zmm1, %%zmm4\n vpdpbusd %%zmm0, %%zmm1, %%zmm5\n"
  "vpdpbusd %%zmm0, %%zmm1, %%zmm6\n vpdpbusd %%zmm0, %%zmm1, %%zmm7\n vpdpbusd %%zmm0, %%zmm1, %%zmm8\n vpdpbusd %%zmm0, %%zmm1, %%zmm9\n" ::: "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11");
 double t4=now(); printf("8 dp: %.2f cycles/iter\n", (t4-t3)/n*3.6e9);
 for(long i=0;i<n;i++) __asm__ volatile(
  "vpdpbusd %%ymm0, %%ymm1, %%ymm2\n vpdpbusd %%ymm0, %%ymm1, %%ymm3\n vpdpbusd %%ymm0, %%ymm1, %%ymm4\n vpdpbusd %%ymm0, %%ymm1, %%ymm5\n"
  "vpdpbusd %%ymm0, %%ymm1, %%ymm6\n vpdpbusd %%ymm0, %%ymm1, %%ymm7\n vpdpbusd %%ymm0, %%ymm1, %%ymm8\n vpdpbusd %%ymm0, %%ymm1, %%ymm12\n vfmadd231ps %%ymm0, %%ymm1, %%ymm9\n vfmadd231ps %%ymm0, %%ymm1, %%ymm10\n vmulps %%ymm0, %%ymm1, %%ymm11\n vfmadd231ps %%ymm0, %%ymm1, %%ymm13\n" ::: "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13");
 double t5=now(); printf("ymm 8 dp + 4 fma/mul: %.2f cycles/iter\n", (t5-t4)/n*3.6e9);
}
