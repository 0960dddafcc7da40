#include "scheduler/device_name.h"

namespace cohost::scheduler {

std::optional<int32_t> ParseCudaDevice(std::string_view name) {
  constexpr std::string_view kPrefix = "cuda:";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  const std::string_view digits = name.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 2 || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  int32_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n > kMaxCudaDevice) return std::nullopt;
  return n;
}

}  // namespace cohost::scheduler
