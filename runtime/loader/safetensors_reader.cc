// safetensors parsing and validation.
#include "runtime/loader/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/loader_json.h"

namespace cohost::runtime {
namespace {

uint64_t DTypeSize(SafetensorsDType t) { return t == SafetensorsDType::kF32 ? 4 : 2; }

// Dtype names the format defines that we do not convert.
constexpr absl::string_view kOtherDTypes[] = {"BOOL", "U8",  "I8",  "U16", "I16",     "U32",
                                              "I32",  "U64", "I64", "F64", "F8_E4M3", "F8_E5M2"};

}  // namespace

absl::string_view SafetensorsDTypeName(SafetensorsDType t) {
  switch (t) {
    case SafetensorsDType::kF32:
      return "F32";
    case SafetensorsDType::kF16:
      return "F16";
    case SafetensorsDType::kBF16:
      return "BF16";
  }
  return "?";
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  absl::StatusOr<MappedFile> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  SafetensorsFile out;
  out.file_ = *std::move(mapped);
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  const uint64_t size = out.file_.size();
  if (size < 8) return error(absl::StrFormat("file of %u bytes is too short for a header", size));
  uint64_t header_len;
  std::memcpy(&header_len, out.file_.data(), 8);  // little-endian host
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return error(absl::StrFormat("header length %u exceeds the file (size %u) or the limit %u",
                                 header_len, size, kMaxHeaderBytes));
  }
  out.data_offset_ = 8 + header_len;
  const uint64_t data_size = size - out.data_offset_;
  absl::string_view text(reinterpret_cast<const char*>(out.file_.data() + 8), header_len);
  absl::StatusOr<nlohmann::json> header = ParseJsonStrict(text, absl::StrCat(path, ": header"));
  if (!header.ok()) return header.status();
  if (!header->is_object()) return error("header is not a JSON object");

  for (const auto& [name, entry] : header->items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return error("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          return error(absl::StrCat("__metadata__ value of '", k, "' is not a string"));
        out.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string what = absl::StrCat("tensor '", name, "'");
    if (!entry.is_object()) return error(absl::StrCat(what, " is not an object"));
    SafetensorsTensor t;
    t.name = name;
    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string())
      return error(absl::StrCat(what, " has no dtype"));
    const std::string& dt = dtype->get_ref<const std::string&>();
    if (dt == "F32") {
      t.dtype = SafetensorsDType::kF32;
    } else if (dt == "F16") {
      t.dtype = SafetensorsDType::kF16;
    } else if (dt == "BF16") {
      t.dtype = SafetensorsDType::kBF16;
    } else if (std::find(std::begin(kOtherDTypes), std::end(kOtherDTypes), dt) !=
               std::end(kOtherDTypes)) {
      return absl::UnimplementedError(
          absl::StrFormat("%s: %s has dtype %s (supported: F32, F16, BF16)", path, what, dt));
    } else {
      return error(absl::StrFormat("%s has unknown dtype \"%s\"", what, dt));
    }
    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array())
      return error(absl::StrCat(what, " has no shape"));
    int64_t numel = 1;
    for (const nlohmann::json& d : *shape) {
      std::optional<int64_t> dim = JsonInt64(d);
      if (!dim || *dim < 0) return error(absl::StrCat(what, " has an invalid dimension"));
      if (*dim != 0 && numel > std::numeric_limits<int64_t>::max() / *dim) {
        return error(absl::StrCat(what, ": the product of its dimensions overflows"));
      }
      numel *= *dim;
      t.shape.push_back(*dim);
    }
    t.numel = numel;
    auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2) {
      return error(absl::StrCat(what, " has no data_offsets [begin, end]"));
    }
    std::optional<int64_t> begin = JsonInt64((*offsets)[0]), end = JsonInt64((*offsets)[1]);
    if (!begin || !end || *begin < 0 || *end < *begin) {
      return error(absl::StrCat(what, " has invalid data_offsets"));
    }
    t.begin = static_cast<uint64_t>(*begin);
    t.end = static_cast<uint64_t>(*end);
    if (t.end > data_size) {
      return error(
          absl::StrFormat("%s data [%u, %u) runs past the end of the data section (size %u)", what,
                          t.begin, t.end, data_size));
    }
    // numel <= data_size here or the byte count check below fails without overflow.
    if (static_cast<uint64_t>(numel) > data_size ||
        t.end - t.begin != static_cast<uint64_t>(numel) * DTypeSize(t.dtype)) {
      return error(absl::StrFormat("%s: %u data bytes do not match shape [%s] of %s", what,
                                   t.end - t.begin, absl::StrJoin(t.shape, ", "), dt));
    }
    out.index_.emplace(name, out.tensors_.size());
    out.tensors_.push_back(std::move(t));
  }
  return out;
}

const SafetensorsTensor* SafetensorsFile::FindTensor(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::TensorData(const SafetensorsTensor& t) const {
  return {file_.data() + data_offset_ + t.begin, static_cast<size_t>(t.end - t.begin)};
}

GgmlType SafetensorsFile::StoredType(const SafetensorsTensor& t) {
  return t.dtype == SafetensorsDType::kF32   ? GgmlType::kF32
         : t.dtype == SafetensorsDType::kF16 ? GgmlType::kF16
                                             : GgmlType::kBF16;
}

absl::Status SafetensorsFile::ToF32(const SafetensorsTensor& t, absl::Span<float> dst) const {
  absl::Status s = DequantizeToF32(StoredType(t), TensorData(t), t.numel, dst);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat(path(), ": tensor '", t.name, "': ", s.message()));
  return s;
}

}  // namespace cohost::runtime
