#include "cohost/kernels/quant.h"

namespace cohost::kernels {

std::string_view WeightFormatName(WeightFormat f) {
  switch (f) {
    case WeightFormat::kDense:
      return "dense";
    case WeightFormat::kQ8_0:
      return "Q8_0";
    case WeightFormat::kQ4_0:
      return "Q4_0";
    case WeightFormat::kQ4_1:
      return "Q4_1";
  }
  return "unknown";
}

size_t QuantRowBytes(WeightFormat f, int64_t k) {
  const auto blocks = static_cast<size_t>(k / kQuantBlock);
  switch (f) {
    case WeightFormat::kDense:
      return 0;
    case WeightFormat::kQ8_0:
      return blocks * sizeof(BlockQ8_0);
    case WeightFormat::kQ4_0:
      return blocks * sizeof(BlockQ4_0);
    case WeightFormat::kQ4_1:
      return blocks * sizeof(BlockQ4_1);
  }
  return 0;
}

}  // namespace cohost::kernels
