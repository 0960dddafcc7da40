// safetensors file reader: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the
// data section, mapped read-only. Untrusted input: every field is checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/mapped_file.h"

namespace cohost::runtime {

enum class SafetensorsDType : uint8_t { kF32, kF16, kBF16 };

absl::string_view SafetensorsDTypeName(SafetensorsDType t);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;  // row-major, outermost first
  int64_t numel = 0;
  uint64_t begin = 0;  // [begin, end) relative to the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Headers larger than this are refused before anything is allocated.
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  // INVALID_ARGUMENT for a malformed file, UNIMPLEMENTED for a dtype other
  // than F32, F16 and BF16.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* FindTensor(absl::string_view name) const;
  const absl::flat_hash_map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor's bytes inside the mapping (checked at Open).
  absl::Span<const uint8_t> TensorData(const SafetensorsTensor& t) const;
  // Converts the tensor to fp32; `dst` holds numel floats.
  absl::Status ToF32(const SafetensorsTensor& t, absl::Span<float> dst) const;
  // The tensor's stored type (F32, F16 or BF16) as the loader names types.
  static GgmlType StoredType(const SafetensorsTensor& t);
  // MappedFile::DropPages over the tensor's bytes.
  void DropTensorPages(const SafetensorsTensor& t) const { file_.DropPages(TensorData(t)); }

 private:
  MappedFile file_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  absl::flat_hash_map<std::string, std::string> metadata_;
};

}  // namespace cohost::runtime
