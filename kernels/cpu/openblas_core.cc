#include "openblas_core.h"

#include <cblas.h>

#include <cstdlib>

// OpenBLAS's dynamic core choice (DYNAMIC_ARCH builds, shared or static);
// weak, so that a build without them links and is left alone.
// NOLINTBEGIN(readability-identifier-naming): OpenBLAS's names
extern "C" void gotoblas_dynamic_init() __attribute__((weak));
extern "C" void gotoblas_dynamic_quit() __attribute__((weak));
// NOLINTEND(readability-identifier-naming)

namespace cohost::kernels::cpu {

std::optional<std::string> BetterOpenBlasCore(const CpuFeatures& f, std::string_view current) {
  if (current != "Prescott" && current != "Core2" && current != "Nehalem") return std::nullopt;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512cd) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  return std::nullopt;
}

std::string SettleOpenBlasCore() {
  static const std::string settled = [] {
    const std::optional<std::string> better =
        BetterOpenBlasCore(HostCpuFeatures(), openblas_get_corename());
    if (better.has_value() && std::getenv("OPENBLAS_CORETYPE") == nullptr &&
        gotoblas_dynamic_quit != nullptr && gotoblas_dynamic_init != nullptr) {
      // init reads the variable, and returns at once unless quit cleared
      // the core it chose at load.
      setenv("OPENBLAS_CORETYPE", better->c_str(), /*overwrite=*/0);
      gotoblas_dynamic_quit();
      gotoblas_dynamic_init();
    }
    return std::string(openblas_get_corename());
  }();
  return settled;
}

}  // namespace cohost::kernels::cpu
