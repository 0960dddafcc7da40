// Dequantization of each supported ggml type on hand-built blocks whose
// values follow from the block layout by hand.
#include "runtime/loader/dequant.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/support/dequant_reference.h"

namespace cohost::runtime {
namespace {

using namespace ::cohost::runtime::testing;  // NOLINT

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(DequantTest, HalfToFloat) {
  EXPECT_EQ(HalfBitsToF32(0x3c00), 1.f);
  EXPECT_EQ(HalfBitsToF32(0xc000), -2.f);
  EXPECT_EQ(HalfBitsToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfBitsToF32(0x7bff), 65504.f);
  EXPECT_EQ(HalfBitsToF32(0x0001), std::ldexp(1.f, -24));     // smallest subnormal
  EXPECT_EQ(HalfBitsToF32(0x03ff), std::ldexp(1023.f, -24));  // largest subnormal
  EXPECT_EQ(HalfBitsToF32(0x0400), std::ldexp(1.f, -14));     // smallest normal
  EXPECT_EQ(HalfBitsToF32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfBitsToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfBitsToF32(0x7e00)));
  EXPECT_TRUE(std::signbit(HalfBitsToF32(0x8000)));
  EXPECT_EQ(HalfBitsToF32(0x8000), 0.f);
  // Every finite half round-trips through our exact encoder.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint32_t exp = (h >> 10) & 0x1f;
    if (exp == 0 || exp == 0x1f) continue;
    ASSERT_EQ(ExactHalf(HalfBitsToF32(static_cast<uint16_t>(h))), h);
  }
}

TEST(DequantTest, Bf16ToFloat) {
  EXPECT_EQ(Bf16BitsToF32(0x3f80), 1.f);
  EXPECT_EQ(Bf16BitsToF32(0xc0a0), -5.f);
  EXPECT_EQ(Bf16BitsToF32(0x3e20), 0.15625f);
}

TEST(DequantTest, PlainTypes) {
  std::string f16, bf16, f32;
  const std::vector<float> v = {1.f, -0.5f, 3.25f, 0.f};
  for (float x : v) {
    Append<uint16_t>(&f16, ExactHalf(x));
    Append<uint16_t>(&bf16, ExactBf16(x));
    Append<float>(&f32, x);
  }
  for (auto [type, bytes] : {std::pair{GgmlType::kF16, f16}, std::pair{GgmlType::kBF16, bf16},
                             std::pair{GgmlType::kF32, f32}}) {
    std::vector<float> out(4);
    ASSERT_TRUE(DequantizeToF32(type, Bytes(bytes), 4, absl::MakeSpan(out)).ok());
    EXPECT_EQ(out, v);
  }
}

TEST(DequantTest, Q8_0) {
  std::vector<int8_t> q(32);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(j * 8 - 128);  // -128 .. 120
  std::vector<int8_t> q2(32, 0);
  q2[5] = 127;
  const std::string blocks = Q8_0Block(0.5f, q) + Q8_0Block(-0.25f, q2);
  std::vector<float> out(64);
  ASSERT_TRUE(DequantizeToF32(GgmlType::kQ8_0, Bytes(blocks), 64, absl::MakeSpan(out)).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j * 8 - 128)) << j;
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[32 + j], j == 5 ? -31.75f : 0.f) << j;
}

TEST(DequantTest, Q4_0) {
  std::vector<uint8_t> qs(16);
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::string block = Q4_0Block(2.f, qs);
  ASSERT_EQ(block.size(), 18u);
  std::vector<float> out(32);
  ASSERT_TRUE(DequantizeToF32(GgmlType::kQ4_0, Bytes(block), 32, absl::MakeSpan(out)).ok());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.f * (j - 8)) << j;              // low nibble of byte j
    EXPECT_EQ(out[j + 16], 2.f * ((15 - j) - 8)) << j;  // high nibble of byte j
  }
}

TEST(DequantTest, Q4_1) {
  std::vector<uint8_t> qs(16);
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(((j * 7) % 16) | (j << 4));
  const std::string blocks = Q4_1Block(0.25f, -1.f, qs) + Q4_1Block(1.f, 3.f, qs);
  ASSERT_EQ(blocks.size(), 40u);
  std::vector<float> out(64);
  ASSERT_TRUE(DequantizeToF32(GgmlType::kQ4_1, Bytes(blocks), 64, absl::MakeSpan(out)).ok());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.25f * ((j * 7) % 16) - 1.f) << j;
    EXPECT_EQ(out[j + 16], 0.25f * j - 1.f) << j;
    EXPECT_EQ(out[32 + j], 1.f * ((j * 7) % 16) + 3.f) << j;
    EXPECT_EQ(out[32 + j + 16], 1.f * j + 3.f) << j;
  }
}

// Every quantized type against the gguf package's dequantizer (an
// implementation independent of this one) on random blocks: every code of
// every field, scales of both signs over five decades.
TEST(DequantTest, AgreesWithTheGgufPackageOnRandomBlocks) {
  const std::vector<::cohost::testing::DequantCase> cases =
      ::cohost::testing::LoadDequantReference();
  ASSERT_EQ(cases.size(), 10u);
  for (const ::cohost::testing::DequantCase& c : cases) {
    const GgmlTypeTraits* traits = nullptr;
    for (uint32_t id = 0; id < 64 && traits == nullptr; ++id) {
      const GgmlTypeTraits* t = FindGgmlType(id);
      if (t != nullptr && t->name == c.type) traits = t;
    }
    ASSERT_NE(traits, nullptr) << c.type;
    const auto n = static_cast<int64_t>(c.values.size());
    ASSERT_EQ(static_cast<int64_t>(c.bytes.size()), n / traits->block_elems * traits->block_bytes)
        << c.type;
    std::vector<float> out(c.values.size());
    ASSERT_TRUE(DequantizeToF32(traits->type, c.bytes, n, absl::MakeSpan(out)).ok()) << c.type;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], c.values[i]) << c.type << " value " << i;
  }
}

// Every scale field of every block type: infinity or NaN is refused, naming
// the block; finite values (subnormal, negative) pass.
TEST(DequantTest, NonFiniteScalesAreRefused) {
  for (const ::cohost::testing::DequantCase& c : ::cohost::testing::LoadDequantReference()) {
    const GgmlTypeTraits* traits = nullptr;
    for (uint32_t id = 0; id < 64 && traits == nullptr; ++id) {
      const GgmlTypeTraits* t = FindGgmlType(id);
      if (t != nullptr && t->name == c.type) traits = t;
    }
    ASSERT_NE(traits, nullptr);
    EXPECT_TRUE(CheckBlockScales(traits->type, c.bytes).ok()) << c.type;
    // The fp16 fields: d (and m / dmin after it), Q6_K's d at its end.
    std::vector<int> fields = {0};
    if (c.type == "Q4_1" || c.type == "Q5_1" || c.type == "Q4_K" || c.type == "Q5_K") {
      fields = {0, 2};
    }
    if (c.type == "Q6_K") fields = {208};
    if (c.type == "Q2_K") fields = {80, 82};
    if (c.type == "Q3_K") fields = {108};
    for (const int field : fields) {
      for (const uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e01}}) {
        std::vector<uint8_t> bytes = c.bytes;
        const size_t at = static_cast<size_t>(2 * traits->block_bytes + field);  // block 2
        bytes[at] = static_cast<uint8_t>(bad & 0xff);
        bytes[at + 1] = static_cast<uint8_t>(bad >> 8);
        const absl::Status s = CheckBlockScales(traits->type, bytes);
        EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.type << " field " << field;
        EXPECT_THAT(Msg(s), ::testing::HasSubstr("block 2 has a non-finite scale")) << c.type;
        // Checked a piece at a time (the loader's copy), the block is named
        // in the tensor's numbering.
        EXPECT_THAT(
            Msg(CheckBlockScales(
                traits->type,
                absl::MakeConstSpan(bytes).subspan(static_cast<size_t>(traits->block_bytes)), 1)),
            ::testing::HasSubstr("block 2 has a non-finite scale"))
            << c.type;
        std::vector<float> out(c.values.size());
        EXPECT_EQ(DequantizeToF32(traits->type, bytes, static_cast<int64_t>(out.size()),
                                  absl::MakeSpan(out))
                      .code(),
                  absl::StatusCode::kInvalidArgument)
            << c.type;
      }
    }
  }
}

TEST(DequantTest, SizeMismatchesAndUnsupportedTypes) {
  std::vector<float> out(32);
  const std::string block = Q8_0Block(1.f, std::vector<int8_t>(32, 1));
  EXPECT_EQ(
      DequantizeToF32(GgmlType::kQ8_0, Bytes(block), 16, absl::MakeSpan(out).subspan(0, 16)).code(),
      absl::StatusCode::kInvalidArgument);  // not a whole block
  EXPECT_EQ(
      DequantizeToF32(GgmlType::kQ8_0, Bytes(block).subspan(0, 33), 32, absl::MakeSpan(out)).code(),
      absl::StatusCode::kInvalidArgument);  // short source
  EXPECT_EQ(
      DequantizeToF32(GgmlType::kQ8_0, Bytes(block), 32, absl::MakeSpan(out).subspan(0, 31)).code(),
      absl::StatusCode::kInvalidArgument);  // short destination
  std::vector<float> out256(256);
  absl::Status s =
      DequantizeToF32(GgmlType::kQ8_K, Bytes(std::string(292, '\0')), 256, absl::MakeSpan(out256));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Msg(s), ::testing::HasSubstr("Q8_K"));
  EXPECT_EQ(DequantizeToF32(GgmlType::kQ4_K, Bytes(std::string(144, '\0')), 32,
                            absl::MakeSpan(out256).subspan(0, 32))
                .code(),
            absl::StatusCode::kInvalidArgument);  // part of a super-block
  EXPECT_EQ(FindGgmlType(1000), nullptr);
  EXPECT_EQ(FindGgmlType(3)->name, "Q4_1");
}

}  // namespace
}  // namespace cohost::runtime
