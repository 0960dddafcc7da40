// GGUF reader: valid files parse with every metadata type; malformed files
// (truncated, overflowing, lying about sizes) give errors, never crashes.
#include "runtime/loader/gguf_reader.h"

#include <cstring>
#include <filesystem>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/loader/loader_test_util.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

absl::StatusOr<GgufFile> OpenBytes(const std::string& bytes, const std::string& name = "t.gguf") {
  const std::string path = TempPath(name);
  WriteFile(path, bytes);
  return GgufFile::Open(path);
}

GgufWriter SmallValidWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 2);
  w.AddScalar<int8_t>("i8", kGI8, -5);
  w.AddScalar<uint16_t>("u16", kGU16, 65000);
  w.AddScalar<int16_t>("i16", kGI16, -32000);
  w.AddScalar<int32_t>("i32", kGI32, -7);
  w.AddScalar<uint64_t>("u64", kGU64, 1ull << 40);
  w.AddScalar<int64_t>("i64", kGI64, -(1ll << 40));
  w.AddScalar<double>("f64", kGF64, 0.125);
  w.AddF32("f32", 1.5f);
  w.AddBool("flag", true);
  w.AddStringArray("names", {"a", "", "ccc"});
  w.AddArray<int32_t>("ints", kGI32, {1, -2, 3});
  w.AddArray<float>("floats", kGF32, {0.5f, -1.f});
  // A nested array: [[1, 2], [3]] of uint8.
  std::string nested;
  Append<uint32_t>(&nested, kGArray);
  Append<uint64_t>(&nested, 2);
  Append<uint32_t>(&nested, kGU8);
  Append<uint64_t>(&nested, 2);
  nested += "\x01\x02";
  Append<uint32_t>(&nested, kGU8);
  Append<uint64_t>(&nested, 1);
  nested += "\x03";
  w.AddRaw("nested", kGArray, nested);
  w.AddF32Tensor("a.weight", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.AddF32Tensor("b.weight", {3}, {-1, -2, -3});
  return w;
}

TEST(GgufReaderTest, ParsesAllMetadataTypesAndTensors) {
  absl::StatusOr<GgufFile> f = OpenBytes(SmallValidWriter().Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset() % 32, 0u);
  EXPECT_EQ(f->metadata().size(), 15u);
  EXPECT_EQ(f->metadata()[0].first, "general.architecture");
  EXPECT_EQ(**f->GetString("general.architecture"), "llama");
  EXPECT_EQ(**f->GetInt("llama.block_count"), 2);
  EXPECT_EQ(**f->GetInt("i8"), -5);
  EXPECT_EQ(**f->GetInt("u16"), 65000);
  EXPECT_EQ(**f->GetInt("i16"), -32000);
  EXPECT_EQ(**f->GetInt("i32"), -7);
  EXPECT_EQ(**f->GetInt("u64"), 1ll << 40);
  EXPECT_EQ(**f->GetInt("i64"), -(1ll << 40));
  EXPECT_EQ(**f->GetFloat("f64"), 0.125);
  EXPECT_EQ(**f->GetFloat("f32"), 1.5);
  EXPECT_EQ(**f->GetBool("flag"), true);
  EXPECT_FALSE(f->GetInt("absent")->has_value());

  const GgufArray* names = *f->GetArray("names", GgufFile::ArrayKind::kString);
  ASSERT_NE(names, nullptr);
  EXPECT_THAT(names->strings, ::testing::ElementsAre("a", "", "ccc"));
  EXPECT_THAT((*f->GetArray("ints", GgufFile::ArrayKind::kInt))->ints,
              ::testing::ElementsAre(1, -2, 3));
  EXPECT_THAT((*f->GetArray("floats", GgufFile::ArrayKind::kFloat))->floats,
              ::testing::ElementsAre(0.5, -1.0));
  const GgufValue* nested = f->Find("nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->array.arrays.size(), 2u);
  EXPECT_THAT(nested->array.arrays[0].array.ints, ::testing::ElementsAre(1, 2));
  EXPECT_THAT(nested->array.arrays[1].array.ints, ::testing::ElementsAre(3));

  ASSERT_EQ(f->tensors().size(), 2u);
  const GgufTensorInfo* a = f->FindTensor("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->Shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(a->numel, 8);
  EXPECT_EQ(a->size_bytes, 32u);
  float values[8];
  std::memcpy(values, f->TensorData(*a).data(), 32);
  EXPECT_EQ(values[0], 1.f);
  EXPECT_EQ(values[7], 8.f);
  const GgufTensorInfo* b = f->FindTensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->offset, 32u);  // packed at the default alignment
  float b0;
  std::memcpy(&b0, f->TensorData(*b).data(), 4);
  EXPECT_EQ(b0, -1.f);
}

TEST(GgufReaderTest, TypedGettersNameTheKeyOnMismatch) {
  absl::StatusOr<GgufFile> f = OpenBytes(SmallValidWriter().Build());
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<std::optional<int64_t>> v = f->GetInt("general.architecture");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(Msg(v.status()), HasSubstr("'general.architecture'"));
  EXPECT_FALSE(f->GetBool("u16").ok());
  EXPECT_FALSE(f->GetString("u16").ok());
  EXPECT_FALSE(f->GetArray("names", GgufFile::ArrayKind::kInt).ok());
  EXPECT_FALSE(f->GetArray("f32", GgufFile::ArrayKind::kFloat).ok());
  EXPECT_TRUE(f->GetArray("ints", GgufFile::ArrayKind::kFloat).ok());  // ints widen
}

TEST(GgufReaderTest, VersionTwoAndCustomAlignment) {
  GgufWriter w = SmallValidWriter();
  w.version = 2;
  w.alignment = 64;
  w.AddU32("general.alignment", 64);
  absl::StatusOr<GgufFile> f = OpenBytes(w.Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->FindTensor("b.weight")->offset, 64u);
}

TEST(GgufReaderTest, EveryTruncationIsAnError) {
  const std::string bytes = SmallValidWriter().Build();
  ASSERT_TRUE(OpenBytes(bytes).ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    absl::StatusOr<GgufFile> f = OpenBytes(bytes.substr(0, len), "trunc.gguf");
    EXPECT_FALSE(f.ok()) << "truncated to " << len << " of " << bytes.size() << " bytes";
  }
}

// Any single corrupted byte is either harmless or an error; never a crash or
// an out-of-bounds read (run under AddressSanitizer to see the latter).
TEST(GgufReaderTest, CorruptedBytesNeverCrash) {
  const std::string bytes = SmallValidWriter().Build();
  int errors = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (char v : {'\xff', static_cast<char>(bytes[i] ^ 0x80)}) {
      if (bytes[i] == v) continue;
      std::string bad = bytes;
      bad[i] = v;
      absl::StatusOr<GgufFile> f = OpenBytes(bad, "corrupt.gguf");
      if (!f.ok()) {
        ++errors;
        continue;
      }
      for (const GgufTensorInfo& t : f->tensors()) {  // what Open accepted lies inside the file
        ASSERT_LE(f->data_offset() + t.offset + t.size_bytes, bad.size()) << "byte " << i;
        ASSERT_EQ(f->TensorData(t).size(), t.size_bytes);
      }
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(GgufReaderTest, MissingFileIsNotFound) {
  absl::StatusOr<GgufFile> f = GgufFile::Open(TempPath("does_not_exist.gguf"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

void ExpectError(const GgufWriter& w, const std::string& substring) {
  absl::StatusOr<GgufFile> f = OpenBytes(w.Build(), "bad.gguf");
  ASSERT_FALSE(f.ok()) << "expected an error containing: " << substring;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
  EXPECT_THAT(Msg(f.status()), HasSubstr("bad.gguf: "));
  EXPECT_THAT(Msg(f.status()), HasSubstr(substring));
}

TEST(GgufReaderTest, BadMagicAndVersions) {
  std::string bytes = SmallValidWriter().Build();
  bytes[0] = 'X';
  absl::StatusOr<GgufFile> f = OpenBytes(bytes);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Msg(f.status()), HasSubstr("bad magic"));
  for (uint32_t v : {0u, 1u, 4u, 0xffffffffu}) {
    GgufWriter w = SmallValidWriter();
    w.version = v;
    ExpectError(w, "unsupported GGUF version");
  }
  GgufWriter w = SmallValidWriter();
  w.version = 0x03000000u;
  ExpectError(w, "big-endian");
}

TEST(GgufReaderTest, TensorDataPastTheEnd) {
  GgufWriter w = SmallValidWriter();
  w.tensors[1].offset = 1 << 20;
  ExpectError(w, "tensor 'b.weight' data [offset");
  GgufWriter w2 = SmallValidWriter();
  w2.tensors[0].dims = {400, 2};  // claims 3200 bytes
  ExpectError(w2, "runs past the end of the file");
  GgufWriter w3 = SmallValidWriter();
  w3.tensors[1].offset = std::numeric_limits<uint64_t>::max() - 31;  // aligned, wraps on add
  ExpectError(w3, "runs past the end of the file");
}

TEST(GgufReaderTest, OverflowingShapes) {
  GgufWriter w = SmallValidWriter();
  w.tensors[0].dims = {1ull << 32, 1ull << 32};
  ExpectError(w, "overflows");
  GgufWriter w2 = SmallValidWriter();
  w2.tensors[0].dims = {1ull << 62, 3};
  ExpectError(w2, "overflows");
  GgufWriter w3 = SmallValidWriter();
  w3.tensors[0].dims = {1ull << 63};  // negative as int64
  ExpectError(w3, "invalid dimension");
  GgufWriter w4 = SmallValidWriter();
  w4.tensors[0].dims = {1ull << 62};  // numel fits, 4 bytes each does not fit the file
  ExpectError(w4, "a.weight");
}

TEST(GgufReaderTest, BadDims) {
  GgufWriter w = SmallValidWriter();
  w.tensors[0].dims = {2, 0};
  ExpectError(w, "invalid dimension 1 = 0");
  GgufWriter w2 = SmallValidWriter();
  w2.tensors[0].dims = {1, 1, 1, 1, 8};
  ExpectError(w2, "5 dimensions");
  GgufWriter w3 = SmallValidWriter();
  w3.tensors[0].dims = {};
  ExpectError(w3, "0 dimensions");
}

TEST(GgufReaderTest, TensorTypes) {
  GgufWriter w = SmallValidWriter();
  w.tensors[0].type = 99;
  ExpectError(w, "unknown tensor type 99");
  GgufWriter w2 = SmallValidWriter();
  w2.tensors[0].type = kTQ8_0;  // row of 4 is not a multiple of 32
  ExpectError(w2, "not a multiple of the Q8_0 block size 32");
  // A known but non-dequantizable type still parses (the loader refuses it later).
  GgufWriter w3;
  w3.AddTensor("k.weight", {256}, kTQ4_K, std::string(144, '\0'));
  absl::StatusOr<GgufFile> f = OpenBytes(w3.Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors()[0].type, GgmlType::kQ4_K);
}

TEST(GgufReaderTest, HugeLengthsAndCounts) {
  GgufWriter w = SmallValidWriter();
  w.kvs[0].value.replace(0, 8, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8));
  ExpectError(w, "past the end of the file");
  GgufWriter w2 = SmallValidWriter();
  std::string huge_array;
  Append<uint32_t>(&huge_array, kGU8);
  Append<uint64_t>(&huge_array, 1ull << 60);
  w2.AddRaw("huge", kGArray, huge_array);
  ExpectError(w2, "cannot fit");
  GgufWriter w3 = SmallValidWriter();
  std::string huge_strings;
  Append<uint32_t>(&huge_strings, kGString);
  Append<uint64_t>(&huge_strings, std::numeric_limits<uint64_t>::max());
  w3.AddRaw("huge", kGArray, huge_strings);
  ExpectError(w3, "cannot fit");
  GgufWriter w4 = SmallValidWriter();
  w4.tensor_count = 1ull << 40;
  ExpectError(w4, "tensor count");
  GgufWriter w5 = SmallValidWriter();
  w5.kv_count = std::numeric_limits<uint64_t>::max();
  ExpectError(w5, "metadata count");
  // A tensor name whose length is huge: patch the first tensor info.
  GgufWriter w6 = SmallValidWriter();
  GgufWriter prefix = w6;
  prefix.tensors.clear();
  prefix.alignment = 1;
  const size_t at = prefix.Build().size();  // where the tensor infos start
  std::string bytes = w6.Build();
  std::string len;
  Append<uint64_t>(&len, 1ull << 62);
  bytes.replace(at, 8, len);
  absl::StatusOr<GgufFile> f = OpenBytes(bytes);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Msg(f.status()), HasSubstr("the name of tensor #0"));
  EXPECT_THAT(Msg(f.status()), HasSubstr("past the end of the file"));
}

// Counts are bounded by the file's size, and a big file (here sparse: 8 GiB
// of zeros after its header) allows counts whose structures would take far
// more memory than a machine has. Nothing is allocated up front from a count
// (~600M metadata entries were reserved: ~110 GB, and the allocation's
// failure ended the process), and the parsed header is held to 1 GiB (4G u8
// elements would become 32 GiB of int64s).
TEST(GgufReaderTest, CountsFromABigFileCannotExhaustMemory) {
  constexpr uint64_t kSize = uint64_t{8} << 30;
  const std::string path = TempPath("sparse.gguf");
  const auto open_sparse = [&](const std::string& head) {
    WriteFile(path, head);
    std::filesystem::resize_file(path, kSize);
    return GgufFile::Open(path);
  };
  std::string many_kvs = "GGUF";
  Append<uint32_t>(&many_kvs, 3);
  Append<uint64_t>(&many_kvs, 0);                  // tensors
  Append<uint64_t>(&many_kvs, (kSize - 24) / 14);  // as many KVs as could fit
  absl::StatusOr<GgufFile> f = open_sparse(many_kvs);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Msg(f.status()), HasSubstr("metadata key #0 is empty"));

  std::string big_array = "GGUF";
  Append<uint32_t>(&big_array, 3);
  Append<uint64_t>(&big_array, 0);
  Append<uint64_t>(&big_array, 1);
  AppendString(&big_array, "a");
  Append<uint32_t>(&big_array, kGArray);
  Append<uint32_t>(&big_array, kGU8);
  Append<uint64_t>(&big_array, uint64_t{4} << 30);
  f = open_sparse(big_array);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Msg(f.status()), HasSubstr("more than 1024 MiB of memory"));
  std::filesystem::remove(path);
}

TEST(GgufReaderTest, DuplicatesAreRejected) {
  GgufWriter w = SmallValidWriter();
  w.AddU32("llama.block_count", 3);
  ExpectError(w, "duplicate metadata key 'llama.block_count'");
  GgufWriter w2 = SmallValidWriter();
  w2.AddF32Tensor("a.weight", {1}, {0});
  ExpectError(w2, "duplicate tensor 'a.weight'");
}

TEST(GgufReaderTest, MisalignedOrBadAlignment) {
  GgufWriter w = SmallValidWriter();
  w.tensors[1].offset = 36;
  ExpectError(w, "not a multiple of the alignment 32");
  GgufWriter w2 = SmallValidWriter();
  w2.AddU32("general.alignment", 48);
  ExpectError(w2, "not a power of two");
  GgufWriter w3 = SmallValidWriter();
  w3.AddU32("general.alignment", 0);
  ExpectError(w3, "not a power of two");
  GgufWriter w4 = SmallValidWriter();
  w4.AddString("general.alignment", "32");
  ExpectError(w4, "general.alignment");
}

TEST(GgufReaderTest, BadValueTypesAndNesting) {
  GgufWriter w = SmallValidWriter();
  w.AddRaw("weird", 13, "");
  ExpectError(w, "unknown value type 13");
  GgufWriter w2 = SmallValidWriter();
  std::string arr;
  Append<uint32_t>(&arr, 77);
  Append<uint64_t>(&arr, 0);
  w2.AddRaw("weird", kGArray, arr);
  ExpectError(w2, "array of unknown type 77");
  // Arrays nested 10 deep.
  std::string deep;
  for (int i = 0; i < 10; ++i) {
    Append<uint32_t>(&deep, kGArray);
    Append<uint64_t>(&deep, 1);
  }
  Append<uint32_t>(&deep, kGU8);
  Append<uint64_t>(&deep, 0);
  GgufWriter w3 = SmallValidWriter();
  w3.AddRaw("deep", kGArray, deep);
  ExpectError(w3, "nests arrays deeper");
  GgufWriter w4 = SmallValidWriter();
  w4.kvs[0].key = "";
  ExpectError(w4, "is empty");
}

}  // namespace
}  // namespace cohost::runtime
