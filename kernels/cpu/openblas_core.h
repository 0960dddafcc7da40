// OpenBLAS picks its kernels for the CPU at load (its DYNAMIC_ARCH builds,
// as Debian's), from a table of the models it knows; a newer one gets a
// generic core. Debian 12's 0.3.21 gives an Emerald Rapids Xeon "Prescott"
// (SSE3), which made the fp32 reference path's prefill 3x slower than with
// its Skylake-X kernels (bench/RESULTS.md). The CPU backend asks for the
// core cpuid supports instead, once, before any product.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "quant/cpu_features.h"

namespace cohost::kernels::cpu {

// The OpenBLAS core to ask for on a CPU with features f whose OpenBLAS chose
// `current`: "SkylakeX" (AVX-512 F, BW, VL, DQ, CD) or "Haswell" (AVX2, FMA)
// where `current` is a generic core ("Prescott", "Core2", "Nehalem") below
// that; nothing where it already knew the CPU or the CPU has neither.
std::optional<std::string> BetterOpenBlasCore(const CpuFeatures& f, std::string_view current);

// Once per process: when the environment sets no OPENBLAS_CORETYPE and
// BetterOpenBlasCore names a core, sets the variable to it and re-runs
// OpenBLAS's dynamic core choice (its gotoblas_dynamic_quit / _init; a build
// without them is left alone). The variable stays set, so processes started
// later choose the same. Call it before other threads start (setenv) and
// before any OpenBLAS product. Returns OpenBLAS's core name afterwards.
std::string SettleOpenBlasCore();

}  // namespace cohost::kernels::cpu
