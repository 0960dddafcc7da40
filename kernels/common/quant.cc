#include "cohost/kernels/quant.h"

namespace cohost::kernels {
namespace {

struct FormatInfo {
  std::string_view name;
  int32_t values;  // per block
  size_t bytes;    // per block
};

constexpr std::array<FormatInfo, kWeightFormats> kFormats = {{
    {"dense", 1, 0},
    {"Q8_0", kQuantBlock, sizeof(BlockQ8_0)},
    {"Q4_0", kQuantBlock, sizeof(BlockQ4_0)},
    {"Q4_1", kQuantBlock, sizeof(BlockQ4_1)},
    {"Q5_0", kQuantBlock, sizeof(BlockQ5_0)},
    {"Q5_1", kQuantBlock, sizeof(BlockQ5_1)},
    {"Q4_K", kSuperBlock, sizeof(BlockQ4_K)},
    {"Q5_K", kSuperBlock, sizeof(BlockQ5_K)},
    {"Q6_K", kSuperBlock, sizeof(BlockQ6_K)},
    {"Q2_K", kSuperBlock, sizeof(BlockQ2_K)},
    {"Q3_K", kSuperBlock, sizeof(BlockQ3_K)},
    {"F16", kQuantBlock, kQuantBlock * sizeof(uint16_t)},
    {"BF16", kQuantBlock, kQuantBlock * sizeof(uint16_t)},
}};

const FormatInfo& Info(WeightFormat f) { return kFormats[static_cast<size_t>(f)]; }

}  // namespace

std::string_view WeightFormatName(WeightFormat f) { return Info(f).name; }

int32_t QuantBlockValues(WeightFormat f) { return Info(f).values; }

size_t QuantRowBytes(WeightFormat f, int64_t k) {
  return static_cast<size_t>(k / Info(f).values) * Info(f).bytes;
}

}  // namespace cohost::kernels
