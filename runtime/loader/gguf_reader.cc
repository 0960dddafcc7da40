// GGUF layout (little-endian): "GGUF", u32 version, u64 tensor_count,
// u64 kv_count; kv_count x {string key, u32 type, value}; tensor_count x
// {string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset};
// padding to `general.alignment`; the data section. A string is u64 length +
// bytes; an array is u32 element type + u64 count + elements.
#include "runtime/loader/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayNesting = 4;
// Nested arrays cost far more memory than their file bytes; no real file has many.
constexpr uint64_t kMaxNestedArrays = 1 << 16;
constexpr uint64_t kMaxAlignment = 1 << 20;
// What the parsed header (metadata and tensor infos) may take in memory. Its
// structures take more than its file bytes (a u8 array element becomes an
// int64, a tensor info of ~40 bytes an object of ~100), and counts are bounded
// by the file's size alone; a real file's take tens of MB (a 256k vocabulary
// and its merges).
constexpr uint64_t kMaxHeaderMemory = uint64_t{1} << 30;
// Up-front room for counts from the file; more grows as entries parse.
constexpr uint64_t kMaxReserve = 1024;
// What an entry of the metadata or tensor list holds beyond its own bytes
// (counted twice: a growing vector's spare room, and its old and new storage
// while it moves) and its name's (counted twice: the list's and the index's
// copies): the index's slot and heap block headers.
constexpr uint64_t kEntryOverheadBytes = 64;
// Smallest encodings, used to bound counts by the bytes left in the file.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;                  // key len, 1-char key, type, u8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // 1-char name, 1 dim

// Encoded size of a fixed-size value type; 0 for string/array.
uint64_t ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

}  // namespace

// Reads the header, metadata and tensor infos of one mapped file.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& out)
      : out_(out), data_(out.file_.data()), size_(out.file_.size()) {}

  absl::Status Parse() {
    if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0)
      return Error("not a GGUF file (bad magic)");
    pos_ = 4;
    uint32_t version;
    if (!ReadU32(&version)) return Truncated("the version");
    if (version == 0x02000000u || version == 0x03000000u) {
      return Error("big-endian GGUF files are not supported");
    }
    if (version != 2 && version != 3) {
      return Error(absl::StrFormat("unsupported GGUF version %u (supported: 2, 3)", version));
    }
    out_.version_ = version;
    uint64_t tensor_count, kv_count;
    if (!ReadU64(&tensor_count)) return Truncated("the tensor count");
    if (!ReadU64(&kv_count)) return Truncated("the metadata count");
    if (kv_count > Remaining() / kMinKvBytes) {
      return Error(
          absl::StrFormat("metadata count %u cannot fit in the file (size %u)", kv_count, size_));
    }
    if (tensor_count > Remaining() / kMinTensorInfoBytes) {
      return Error(
          absl::StrFormat("tensor count %u cannot fit in the file (size %u)", tensor_count, size_));
    }
    out_.metadata_.reserve(std::min(kv_count, kMaxReserve));
    for (uint64_t i = 0; i < kv_count; ++i) {
      RETURN_IF_ERROR(ReadKeyValue(i));
    }
    RETURN_IF_ERROR(ReadAlignment());
    out_.tensors_.reserve(std::min(tensor_count, kMaxReserve));
    for (uint64_t i = 0; i < tensor_count; ++i) {
      RETURN_IF_ERROR(ReadTensorInfo(i));
    }
    // The data section starts at the next multiple of the alignment.
    const uint64_t a = out_.alignment_;
    out_.data_offset_ = pos_ + (a - pos_ % a) % a;
    for (const GgufTensorInfo& t : out_.tensors_) {
      RETURN_IF_ERROR(CheckTensorData(t));
    }
    return absl::OkStatus();
  }

 private:
  uint64_t Remaining() const { return size_ - pos_; }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(out_.path(), ": ", what));
  }
  absl::Status Truncated(absl::string_view what) const {
    return Error(absl::StrFormat("truncated: file ends (size %u) while reading %s at offset %u",
                                 size_, what, pos_));
  }

  bool ReadBytes(void* dst, uint64_t n) {
    if (n > Remaining()) return false;
    std::memcpy(dst, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool ReadU32(uint32_t* v) { return ReadBytes(v, 4); }  // the host is little-endian
  bool ReadU64(uint64_t* v) { return ReadBytes(v, 8); }

  // A u64-length string; `what` names it in errors.
  absl::Status ReadString(std::string* s, absl::string_view what) {
    uint64_t len;
    if (!ReadU64(&len)) return Truncated(what);
    if (len > Remaining()) {
      return Error(
          absl::StrFormat("%s at offset %u has length %u, past the end of the file (size %u)", what,
                          pos_ - 8, len, size_));
    }
    RETURN_IF_ERROR(Hold(len, what));
    s->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }

  absl::Status ReadKeyValue(uint64_t index) {
    std::string key;
    RETURN_IF_ERROR(ReadString(&key, absl::StrCat("metadata key #", index)));
    if (key.empty()) return Error(absl::StrFormat("metadata key #%u is empty", index));
    if (out_.metadata_index_.contains(key)) {
      return Error(absl::StrCat("duplicate metadata key '", key, "'"));
    }
    uint32_t type;
    if (!ReadU32(&type)) return Truncated(absl::StrCat("the type of metadata '", key, "'"));
    GgufValue value;
    RETURN_IF_ERROR(ReadValue(type, key, 0, &value));
    out_.metadata_index_.emplace(key, out_.metadata_.size());
    RETURN_IF_ERROR(Hold(2 * sizeof(out_.metadata_[0]) + key.size() + kEntryOverheadBytes, key));
    out_.metadata_.emplace_back(std::move(key), std::move(value));
    return absl::OkStatus();
  }

  absl::Status ReadValue(uint32_t type, const std::string& key, int depth, GgufValue* v) {
    if (!ValidValueType(type)) {
      return Error(absl::StrFormat("metadata '%s' has unknown value type %u", key, type));
    }
    v->type = static_cast<GgufValueType>(type);
    switch (v->type) {
      case GgufValueType::kString:
        return ReadString(&v->string_value, absl::StrCat("metadata '", key, "'"));
      case GgufValueType::kArray:
        return ReadArray(key, depth, &v->array);
      case GgufValueType::kFloat32: {
        float f;
        if (!ReadBytes(&f, 4)) return Truncated(absl::StrCat("metadata '", key, "'"));
        v->float_value = f;
        return absl::OkStatus();
      }
      case GgufValueType::kFloat64:
        if (!ReadBytes(&v->float_value, 8)) return Truncated(absl::StrCat("metadata '", key, "'"));
        return absl::OkStatus();
      default:
        if (!ReadInt(v->type, &v->int_value))
          return Truncated(absl::StrCat("metadata '", key, "'"));
        return absl::OkStatus();
    }
  }

  // Integer and bool encodings, widened to int64 (uint64 keeps its bits).
  bool ReadInt(GgufValueType t, int64_t* out) {
    uint8_t b[8];
    const uint64_t n = ScalarSize(t);
    if (!ReadBytes(b, n)) return false;
    switch (t) {
      case GgufValueType::kUint8:
        *out = b[0];
        break;
      case GgufValueType::kBool:
        *out = b[0] != 0;
        break;
      case GgufValueType::kInt8:
        *out = static_cast<int8_t>(b[0]);  // NOLINT(bugprone-signed-char-misuse): sign-extends
        break;
      case GgufValueType::kUint16: {
        uint16_t x;
        std::memcpy(&x, b, 2);
        *out = x;
        break;
      }
      case GgufValueType::kInt16: {
        int16_t x;
        std::memcpy(&x, b, 2);
        *out = x;
        break;
      }
      case GgufValueType::kUint32: {
        uint32_t x;
        std::memcpy(&x, b, 4);
        *out = x;
        break;
      }
      case GgufValueType::kInt32: {
        int32_t x;
        std::memcpy(&x, b, 4);
        *out = x;
        break;
      }
      default:
        std::memcpy(out, b, 8);
        break;  // uint64 / int64
    }
    return true;
  }

  absl::Status ReadArray(const std::string& key, int depth, GgufArray* a) {
    if (depth >= kMaxArrayNesting) {
      return Error(
          absl::StrFormat("metadata '%s' nests arrays deeper than %d", key, kMaxArrayNesting));
    }
    uint32_t elem_type;
    uint64_t count;
    if (!ReadU32(&elem_type) || !ReadU64(&count)) {
      return Truncated(absl::StrCat("the array header of metadata '", key, "'"));
    }
    if (!ValidValueType(elem_type)) {
      return Error(absl::StrFormat("metadata '%s' is an array of unknown type %u", key, elem_type));
    }
    a->elem_type = static_cast<GgufValueType>(elem_type);
    uint64_t min_elem = ScalarSize(a->elem_type);
    if (a->elem_type == GgufValueType::kString) min_elem = 8;
    if (a->elem_type == GgufValueType::kArray) min_elem = 12;
    if (count > Remaining() / min_elem) {
      return Error(absl::StrFormat(
          "metadata '%s' claims %u elements of type %s, which cannot fit in the %u bytes left", key,
          count, GgufValueTypeName(a->elem_type), Remaining()));
    }
    switch (a->elem_type) {
      case GgufValueType::kString:
        RETURN_IF_ERROR(Hold(count * sizeof(std::string), key));
        a->strings.resize(count);
        for (uint64_t i = 0; i < count; ++i) {
          absl::Status s = ReadString(&a->strings[i], absl::StrFormat("metadata '%s'[%u]", key, i));
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case GgufValueType::kArray:
        nested_arrays_ += count;
        if (nested_arrays_ > kMaxNestedArrays) {
          return Error(
              absl::StrFormat("metadata '%s': more than %u nested arrays", key, kMaxNestedArrays));
        }
        RETURN_IF_ERROR(Hold(count * sizeof(GgufValue), key));
        a->arrays.resize(count);
        for (uint64_t i = 0; i < count; ++i) {
          a->arrays[i].type = GgufValueType::kArray;
          RETURN_IF_ERROR(ReadArray(key, depth + 1, &a->arrays[i].array));
        }
        return absl::OkStatus();
      case GgufValueType::kFloat32:
        RETURN_IF_ERROR(Hold(count * sizeof(double), key));
        a->floats.resize(count);
        for (uint64_t i = 0; i < count; ++i) {
          float f;
          std::memcpy(&f, data_ + pos_ + 4 * i, 4);
          a->floats[i] = f;
        }
        pos_ += 4 * count;
        return absl::OkStatus();
      case GgufValueType::kFloat64:
        RETURN_IF_ERROR(Hold(count * sizeof(double), key));
        a->floats.resize(count);
        if (count > 0) std::memcpy(a->floats.data(), data_ + pos_, 8 * count);
        pos_ += 8 * count;
        return absl::OkStatus();
      default:
        RETURN_IF_ERROR(Hold(count * sizeof(int64_t), key));
        a->ints.resize(count);
        for (uint64_t i = 0; i < count; ++i) ReadInt(a->elem_type, &a->ints[i]);  // bounded above
        return absl::OkStatus();
    }
  }

  absl::Status ReadAlignment() {
    const GgufValue* v = out_.Find("general.alignment");
    if (v == nullptr) return absl::OkStatus();
    absl::StatusOr<int64_t> a = v->AsInt();
    if (!a.ok()) return Error(absl::StrCat("general.alignment: ", a.status().message()));
    if (*a <= 0 || static_cast<uint64_t>(*a) > kMaxAlignment || (*a & (*a - 1)) != 0) {
      return Error(absl::StrFormat("general.alignment %d is not a power of two in [1, %u]", *a,
                                   kMaxAlignment));
    }
    out_.alignment_ = static_cast<uint64_t>(*a);
    return absl::OkStatus();
  }

  absl::Status ReadTensorInfo(uint64_t index) {
    GgufTensorInfo t;
    absl::Status s = ReadString(&t.name, absl::StrCat("the name of tensor #", index));
    if (!s.ok()) return s;
    if (t.name.empty()) return Error(absl::StrFormat("tensor #%u has an empty name", index));
    const std::string what = absl::StrCat("tensor '", t.name, "'");
    if (out_.tensor_index_.contains(t.name)) return Error(absl::StrCat("duplicate ", what));
    uint32_t n_dims;
    if (!ReadU32(&n_dims)) return Truncated(absl::StrCat("the dims of ", what));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return Error(
          absl::StrFormat("%s has %u dimensions (supported: 1 to %u)", what, n_dims, kMaxDims));
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim;
      if (!ReadU64(&dim)) return Truncated(absl::StrCat("the dims of ", what));
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(absl::StrFormat("%s has invalid dimension %u = %u", what, d, dim));
      }
      if (numel > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(dim)) {
        return Error(absl::StrFormat("%s: the product of its dimensions overflows", what));
      }
      numel *= static_cast<int64_t>(dim);
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    t.numel = numel;
    uint32_t type;
    if (!ReadU32(&type)) return Truncated(absl::StrCat("the type of ", what));
    const GgmlTypeTraits* traits = FindGgmlType(type);
    if (traits == nullptr)
      return Error(absl::StrFormat("%s has unknown tensor type %u", what, type));
    t.type = traits->type;
    if (t.dims[0] % traits->block_elems != 0) {
      return Error(absl::StrFormat("%s: row length %d is not a multiple of the %s block size %d",
                                   what, t.dims[0], traits->name, traits->block_elems));
    }
    const uint64_t blocks = static_cast<uint64_t>(numel / traits->block_elems);
    if (blocks >
        std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(traits->block_bytes)) {
      return Error(absl::StrCat(what, ": its byte size overflows"));
    }
    t.size_bytes = blocks * static_cast<uint64_t>(traits->block_bytes);
    if (!ReadU64(&t.offset)) return Truncated(absl::StrCat("the offset of ", what));
    out_.tensor_index_.emplace(t.name, out_.tensors_.size());
    RETURN_IF_ERROR(Hold(2 * sizeof(GgufTensorInfo) + t.name.size() + kEntryOverheadBytes +
                             t.dims.size() * sizeof(int64_t),
                         t.name));
    out_.tensors_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status CheckTensorData(const GgufTensorInfo& t) const {
    if (t.offset % out_.alignment_ != 0) {
      return Error(
          absl::StrFormat("tensor '%s' data offset %u is not a multiple of the alignment %u",
                          t.name, t.offset, out_.alignment_));
    }
    const uint64_t start = out_.data_offset_;
    if (start > size_ || t.offset > size_ - start || t.size_bytes > size_ - start - t.offset) {
      return Error(absl::StrFormat(
          "tensor '%s' data [offset %u, size %u] runs past the end of the file (size %u)", t.name,
          start + t.offset, t.size_bytes, size_));
    }
    return absl::OkStatus();
  }

  GgufFile& out_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t nested_arrays_ = 0;
  uint64_t held_ = 0;  // bytes the parsed header takes (Hold)

  // Counts `bytes` more of parsed header against kMaxHeaderMemory; `what`
  // names the entry for the error. (Counts are bounded by the file, so the
  // products cannot overflow.)
  absl::Status Hold(uint64_t bytes, absl::string_view what) {
    if (bytes > kMaxHeaderMemory - held_) {
      return Error(absl::StrFormat(
          "the header takes more than %u MiB of memory once parsed (at %s): not a model file "
          "this server reads",
          kMaxHeaderMemory >> 20, what));
    }
    held_ += bytes;
    return absl::OkStatus();
  }
};

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  absl::StatusOr<MappedFile> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  GgufFile file;
  file.file_ = *std::move(mapped);
  RETURN_IF_ERROR(GgufParser(file).Parse());
  return file;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> GgufFile::TensorData(const GgufTensorInfo& info) const {
  return {file_.data() + data_offset_ + info.offset, static_cast<size_t>(info.size_bytes)};
}

}  // namespace cohost::runtime
