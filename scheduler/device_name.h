// The one spelling of a device's name, for `--device` and a model's `device`
// pin: "cpu", or "cuda:N".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace cohost::scheduler {

inline constexpr int32_t kMaxCudaDevice = 63;

// "cuda:N" with N in [0, kMaxCudaDevice] written canonically (no sign, no
// leading zero) -> N; nullopt for anything else.
std::optional<int32_t> ParseCudaDevice(std::string_view name);

}  // namespace cohost::scheduler
