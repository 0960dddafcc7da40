// safetensors reader: valid files in each dtype; malformed headers, offsets
// and sizes give errors naming the file, never crashes.
#include "runtime/loader/safetensors_reader.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/loader/loader_test_util.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

absl::StatusOr<SafetensorsFile> OpenBytes(const std::string& bytes,
                                          const std::string& name = "t.safetensors") {
  const std::string path = TempPath(name);
  WriteFile(path, bytes);
  return SafetensorsFile::Open(path);
}

// Three tensors: a [2, 2] F32, a [3] F16 and a [2] BF16, packed in that order.
std::string ValidData() {
  std::string d;
  for (float x : {1.f, -2.f, 0.5f, 8.f}) Append(&d, x);
  for (float x : {1.5f, -0.25f, 1024.f}) Append<uint16_t>(&d, ExactHalf(x));
  for (float x : {3.f, -0.15625f}) Append<uint16_t>(&d, ExactBf16(x));
  return d;
}
const char kValidHeader[] =
    R"({"__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "F16", "shape": [3], "data_offsets": [16, 22]},
        "c": {"dtype": "BF16", "shape": [2], "data_offsets": [22, 26]}})";

TEST(SafetensorsReaderTest, ReadsEveryDtype) {
  absl::StatusOr<SafetensorsFile> f = OpenBytes(SafetensorsBytes(kValidHeader, ValidData()));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const std::pair<const char*, std::vector<float>> want[] = {
      {"a", {1.f, -2.f, 0.5f, 8.f}}, {"b", {1.5f, -0.25f, 1024.f}}, {"c", {3.f, -0.15625f}}};
  for (const auto& [name, values] : want) {
    const SafetensorsTensor* t = f->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    std::vector<float> out(static_cast<size_t>(t->numel));
    ASSERT_TRUE(f->ToF32(*t, absl::MakeSpan(out)).ok());
    EXPECT_EQ(out, values) << name;
  }
  EXPECT_EQ(f->FindTensor("a")->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(f->FindTensor("c")->dtype, SafetensorsDType::kBF16);
  EXPECT_EQ(f->FindTensor("__metadata__"), nullptr);
}

TEST(SafetensorsReaderTest, EveryTruncationIsAnError) {
  const std::string bytes = SafetensorsBytes(kValidHeader, ValidData());
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(OpenBytes(bytes.substr(0, len), "trunc.safetensors").ok()) << len;
  }
}

void ExpectError(const std::string& bytes, const std::string& substring,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  absl::StatusOr<SafetensorsFile> f = OpenBytes(bytes, "bad.safetensors");
  ASSERT_FALSE(f.ok()) << "expected: " << substring;
  EXPECT_EQ(f.status().code(), code) << f.status();
  EXPECT_THAT(Msg(f.status()), HasSubstr("bad.safetensors"));
  EXPECT_THAT(Msg(f.status()), HasSubstr(substring));
}

std::string OneTensor(const std::string& entry, const std::string& data = std::string(16, '\0')) {
  return SafetensorsBytes(absl::StrCat(R"({"x": )", entry, "}"), data);
}

TEST(SafetensorsReaderTest, HeaderLength) {
  std::string huge;
  Append<uint64_t>(&huge, std::numeric_limits<uint64_t>::max());
  ExpectError(huge + "{}", "header length");
  std::string big;
  Append<uint64_t>(&big, 200ull << 20);  // over the 100 MB limit
  ExpectError(big + "{}", "header length");
  std::string past;
  Append<uint64_t>(&past, 100);  // more than the file holds
  ExpectError(past + "{}", "header length");
  ExpectError("abc", "too short");
}

TEST(SafetensorsReaderTest, BadJson) {
  ExpectError(SafetensorsBytes("{\"a\": ", ""), "malformed JSON");
  ExpectError(SafetensorsBytes("[1, 2]", ""), "not a JSON object");
  ExpectError(SafetensorsBytes(std::string(100, '[') + std::string(100, ']'), ""), "nested deeper");
  // A header of 8M+ tiny values would take ~20x its size to build: refused
  // by the first pass, before any of it is built.
  std::string many = R"({"x": [0)";
  for (int i = 0; i < (8 << 20); ++i) many += ",0";
  ExpectError(SafetensorsBytes(many + "]}", ""), "more than 8388608 values");
  ExpectError(OneTensor("[]"), "is not an object");
  ExpectError(SafetensorsBytes(R"({"__metadata__": {"k": 1}})", ""), "not a string");
}

TEST(SafetensorsReaderTest, DuplicateKeys) {
  ExpectError(SafetensorsBytes(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                               std::string(4, '\0')),
              "duplicate key \"x\"");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [4], "shape": [2], "data_offsets": [0, 16]})"),
              "duplicate key \"shape\"");
}

TEST(SafetensorsReaderTest, OffsetsAndSizes) {
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [8], "data_offsets": [0, 32]})"),
              "runs past the end of the data section");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [2], "data_offsets": [8, 4]})"),
              "invalid data_offsets");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]})"),
              "do not match shape [3]");
  ExpectError(OneTensor(R"({"dtype": "F16", "shape": [4], "data_offsets": [0, 16]})"),
              "do not match shape");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [-4, 12]})"),
              "invalid data_offsets");
  ExpectError(
      OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 18446744073709551615]})"),
      "invalid data_offsets");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [0]})"), "data_offsets");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [4]})"), "data_offsets");
}

TEST(SafetensorsReaderTest, Shapes) {
  ExpectError(
      OneTensor(R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]})"),
      "overflows");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [1073741824, 4], "data_offsets": [0, 16]})"),
              "do not match shape");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 16]})"),
              "invalid dimension");
  ExpectError(OneTensor(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 16]})"),
              "invalid dimension");
  ExpectError(OneTensor(R"({"dtype": "F32", "data_offsets": [0, 16]})"), "no shape");
}

TEST(SafetensorsReaderTest, Dtypes) {
  ExpectError(OneTensor(R"({"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]})"),
              "unknown dtype \"Q4\"");
  ExpectError(OneTensor(R"({"dtype": "I32", "shape": [4], "data_offsets": [0, 16]})"),
              "dtype I32 (supported: F32, F16, BF16)", absl::StatusCode::kUnimplemented);
  ExpectError(OneTensor(R"({"shape": [4], "data_offsets": [0, 16]})"), "no dtype");
}

}  // namespace
}  // namespace cohost::runtime
