// GGUF (v2, v3) file reader: header, metadata key/values, tensor infos and a
// read-only mmap of the data section. The file is untrusted: every count,
// length, offset and size is checked before use; errors name the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/mapped_file.h"

namespace cohost::runtime {

// gguf_type numbering of metadata values.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

absl::string_view GgufValueTypeName(GgufValueType t);

struct GgufValue;

// Elements of a metadata array, stored compactly by element kind. Integers
// (and bools as 0/1) go to `ints`; a uint64 above INT64_MAX keeps its bits.
struct GgufArray {
  GgufValueType elem_type = GgufValueType::kUint8;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;  // nested arrays
  size_t size() const;
};

struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  int64_t int_value = 0;     // integer and bool scalars (uint64 keeps its bits)
  double float_value = 0.0;  // float32 / float64 scalars
  std::string string_value;
  GgufArray array;

  bool is_int() const;  // any integer type
  bool is_float() const {
    return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
  }
  // INVALID_ARGUMENT (without the key: callers prefix it) on a type mismatch or
  // a value out of range.
  absl::StatusOr<int64_t> AsInt() const;
  absl::StatusOr<double> AsFloat() const;  // floats, or integers converted
  absl::StatusOr<bool> AsBool() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the innermost (row length)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t size_bytes = 0;
  int64_t numel = 0;
  // Row-major shape, outermost first (dims reversed): [out, in] for a matrix.
  std::vector<int64_t> Shape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  // Opens and validates `path`. INVALID_ARGUMENT for a malformed file.
  static absl::StatusOr<GgufFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute, in the file

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* Find(absl::string_view key) const;
  // Typed lookups: nullopt when the key is absent; INVALID_ARGUMENT naming the
  // file and key when it has another type or an out-of-range value.
  absl::StatusOr<std::optional<int64_t>> GetInt(absl::string_view key) const;
  absl::StatusOr<std::optional<double>> GetFloat(absl::string_view key) const;
  absl::StatusOr<std::optional<bool>> GetBool(absl::string_view key) const;
  absl::StatusOr<std::optional<std::string>> GetString(absl::string_view key) const;
  // nullptr when absent; an error when not an array of `elem_kind` (a string
  // array, an integer array or a float array: integers count as floats too).
  enum class ArrayKind : uint8_t { kString, kInt, kFloat };
  absl::StatusOr<const GgufArray*> GetArray(absl::string_view key, ArrayKind elem_kind) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(absl::string_view name) const;
  // The tensor's bytes inside the mapping (checked at Open).
  absl::Span<const uint8_t> TensorData(const GgufTensorInfo& info) const;
  // Once the tensor is copied out: its pages leave the resident set
  // (MappedFile::DropPages).
  void DropTensorPages(const GgufTensorInfo& info) const { DropPages(TensorData(info)); }
  // The whole pages inside `range` (a part of the mapping) leave it too.
  void DropPages(absl::Span<const uint8_t> range) const { file_.DropPages(range); }
  // The same for the header and metadata (everything before the tensor data),
  // once they are parsed.
  void DropMetadataPages() const {
    DropPages(file_.bytes().first(std::min<size_t>(data_offset_, file_.bytes().size())));
  }

 private:
  friend class GgufParser;

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace cohost::runtime
