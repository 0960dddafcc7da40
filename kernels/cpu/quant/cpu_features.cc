#include "cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"

namespace cohost::kernels::cpu {
namespace {

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

uint64_t Xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool RequestTileData() {
  constexpr unsigned long kArchReqXcompPerm = 0x1023;  // NOLINT(google-runtime-int): syscall's
  constexpr unsigned long kXfeatureXtiledata = 18;     // NOLINT(google-runtime-int)
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    char brand[49] = {};
    for (size_t leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002 + static_cast<unsigned>(leaf), &a, &b, &c, &d);
      const unsigned regs[4] = {a, b, c, d};
      std::memcpy(brand + 16 * leaf, regs, sizeof regs);
    }
    f.brand = std::string(absl::StripAsciiWhitespace(brand));
  }
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = Bit(c, 27);
  const uint64_t xcr0 = osxsave ? Xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;   // opmask, ZMM hi256, hi16 ZMM
  const bool tiles = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  f.fma = ymm && Bit(c, 12);
  f.f16c = ymm && Bit(c, 29);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm && Bit(b, 5);
  f.avx512f = zmm && Bit(b, 16);
  f.avx512bw = zmm && Bit(b, 30);
  f.avx512vl = zmm && Bit(b, 31);
  f.avx512dq = zmm && Bit(b, 17);
  f.avx512cd = zmm && Bit(b, 28);
  f.avx512vnni = zmm && Bit(c, 11);
  // Linux hands out the tile registers' 8 KB of state only to a process
  // that asks (arch_prctl ARCH_REQ_XCOMP_PERM, once, for every thread);
  // without it the first tile instruction is SIGILL. A kernel too old to
  // know the request, or one that refuses it, leaves AMX off.
  const bool tiles_granted = tiles && Bit(d, 24) && RequestTileData();
  f.amx_bf16 = tiles_granted && Bit(d, 22);
  f.amx_tile = tiles_granted;
  f.amx_int8 = tiles_granted && Bit(d, 25);
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = zmm && Bit(a, 5);
  return f;
}

}  // namespace

std::string CpuFeatures::Summary() const {
  std::vector<const char*> on;
  const std::pair<bool, const char*> all[] = {{avx2, "avx2"},
                                              {fma, "fma"},
                                              {f16c, "f16c"},
                                              {avx512f, "avx512f"},
                                              {avx512bw, "avx512bw"},
                                              {avx512vl, "avx512vl"},
                                              {avx512dq, "avx512dq"},
                                              {avx512cd, "avx512cd"},
                                              {avx512vnni, "avx512vnni"},
                                              {avx512bf16, "avx512bf16"},
                                              {amx_tile, "amx-tile"},
                                              {amx_int8, "amx-int8"},
                                              {amx_bf16, "amx-bf16"}};
  for (const auto& [has, name] : all) {
    if (has) on.push_back(name);
  }
  return on.empty() ? "none" : absl::StrJoin(on, " ");
}

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

KernelCap HostKernelCap() {
  static const KernelCap cap = [] {
    const char* env = std::getenv("COHOST_CPU_KERNELS");
    const std::string_view name = env != nullptr ? env : "";
    if (name == "scalar") return KernelCap::kScalar;
    if (name == "avx2") return KernelCap::kAvx2;
    if (name == "avx512vnni") return KernelCap::kAvx512;
    return KernelCap::kAll;
  }();
  return cap;
}

}  // namespace cohost::kernels::cpu
