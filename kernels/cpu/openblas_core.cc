#include "openblas_core.h"

#include <cblas.h>
#include <dlfcn.h>

#include <cstdlib>

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
    if (better.has_value() && std::getenv("OPENBLAS_CORETYPE") == nullptr) {
      using Fn = void (*)();
      // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): dlsym's result
      auto quit = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
      auto init = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
      // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
      if (quit != nullptr && init != nullptr) {
        // init reads the variable, and returns at once unless quit cleared
        // the core it chose at load.
        setenv("OPENBLAS_CORETYPE", better->c_str(), /*overwrite=*/0);
        quit();
        init();
      }
    }
    return std::string(openblas_get_corename());
  }();
  return settled;
}

}  // namespace cohost::kernels::cpu
