// GgufValue conversions and GgufFile's metadata lookups; the parsing itself
// is in gguf_reader.cc.
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/loader/gguf_reader.h"

namespace cohost::runtime {

absl::string_view GgufValueTypeName(GgufValueType t) {
  static constexpr absl::string_view kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                 "int32",  "float32", "bool",   "string", "array",
                                                 "uint64", "int64",   "float64"};
  uint32_t i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "invalid";
}

size_t GgufArray::size() const {
  return ints.size() + floats.size() + strings.size() + arrays.size();
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<int64_t> GgufValue::AsInt() const {
  if (!is_int()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an integer, found ", GgufValueTypeName(type)));
  }
  if (type == GgufValueType::kUint64 && int_value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("value ", static_cast<uint64_t>(int_value), " is out of range"));
  }
  return int_value;
}

absl::StatusOr<double> GgufValue::AsFloat() const {
  if (is_float()) return float_value;
  if (is_int()) {
    absl::StatusOr<int64_t> v = AsInt();
    if (!v.ok()) return v.status();
    return static_cast<double>(*v);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("expected a number, found ", GgufValueTypeName(type)));
}

absl::StatusOr<bool> GgufValue::AsBool() const {
  if (type != GgufValueType::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a bool, found ", GgufValueTypeName(type)));
  }
  return int_value != 0;
}

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {

template <typename T>
absl::StatusOr<std::optional<T>> Typed(const GgufFile& f, absl::string_view key,
                                       absl::StatusOr<T> (GgufValue::*get)() const) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) return std::optional<T>();
  absl::StatusOr<T> r = (v->*get)();
  if (!r.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": metadata '", key, "': ", r.status().message()));
  }
  return std::optional<T>(*r);
}

}  // namespace

absl::StatusOr<std::optional<int64_t>> GgufFile::GetInt(absl::string_view key) const {
  return Typed<int64_t>(*this, key, &GgufValue::AsInt);
}
absl::StatusOr<std::optional<double>> GgufFile::GetFloat(absl::string_view key) const {
  return Typed<double>(*this, key, &GgufValue::AsFloat);
}
absl::StatusOr<std::optional<bool>> GgufFile::GetBool(absl::string_view key) const {
  return Typed<bool>(*this, key, &GgufValue::AsBool);
}

absl::StatusOr<std::optional<std::string>> GgufFile::GetString(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != GgufValueType::kString) {
    return absl::InvalidArgumentError(absl::StrCat(
        path(), ": metadata '", key, "': expected a string, found ", GgufValueTypeName(v->type)));
  }
  return std::optional<std::string>(v->string_value);
}

absl::StatusOr<const GgufArray*> GgufFile::GetArray(absl::string_view key,
                                                    ArrayKind elem_kind) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return nullptr;
  bool ok = v->type == GgufValueType::kArray;
  if (ok) {
    GgufValue probe;
    probe.type = v->array.elem_type;
    switch (elem_kind) {
      case ArrayKind::kString:
        ok = probe.type == GgufValueType::kString;
        break;
      case ArrayKind::kInt:
        ok = probe.is_int();
        break;
      case ArrayKind::kFloat:
        ok = probe.is_float() || probe.is_int();
        break;
    }
  }
  if (!ok) {
    static constexpr absl::string_view kKinds[] = {"string", "integer", "number"};
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": metadata '", key, "': expected an array of ",
                     kKinds[static_cast<int>(elem_kind)], ", found ", GgufValueTypeName(v->type),
                     v->type == GgufValueType::kArray
                         ? absl::StrCat(" of ", GgufValueTypeName(v->array.elem_type))
                         : ""));
  }
  return &v->array;
}

}  // namespace cohost::runtime
