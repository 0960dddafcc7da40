#include "runtime/sampling/schema_values.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohost::runtime {

using Json = nlohmann::json;
using Kind = SchemaNode::Kind;

absl::StatusOr<std::vector<Json>> EnumValues(const Json& schema) {
  std::vector<Json> values;
  const auto list = schema.find("enum");
  const auto one = schema.find("const");
  if (list != schema.end() && one != schema.end()) {
    return absl::InvalidArgumentError("enum and const together are not supported");
  }
  if (list != schema.end()) {
    if (!list->is_array() || list->empty() || list->size() > static_cast<size_t>(kMaxSchemaEnum)) {
      return absl::InvalidArgumentError(
          absl::StrCat("enum must list 1 to ", kMaxSchemaEnum, " values"));
    }
    values.assign(list->begin(), list->end());
  } else if (one != schema.end()) {
    values.push_back(*one);
  }
  for (const Json& v : values) {
    if (v.is_object() || v.is_array()) {
      return absl::InvalidArgumentError(
          "enum and const values must be strings, numbers, booleans or null");
    }
  }
  return values;
}

Kind KindOf(const Json& value) {
  if (value.is_string()) return Kind::kString;
  if (value.is_number()) return Kind::kNumber;
  if (value.is_boolean()) return Kind::kBoolean;
  return Kind::kNull;
}

bool IsOfKind(const Json& value, Kind kind) {
  if (kind == Kind::kInteger) {
    return value.is_number_integer() ||
           (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>());
  }
  return KindOf(value) == kind;
}

namespace {

// One of the four keywords into `bounds`.
absl::Status ReadBound(const Json& schema, const std::string& key, bool integer,
                       NumberBounds& bounds) {
  const auto it = schema.find(key);
  if (it == schema.end()) return absl::OkStatus();
  if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat(key, " must be a number"));
  const bool lower = key == "minimum" || key == "exclusiveMinimum";
  bool exclusive = key.rfind("exclusive", 0) == 0;
  constexpr long double kFar = 4611686018427387904.0L;  // 2^62
  auto v = it->get<long double>();
  if (v > kFar || v < -kFar) {
    if (lower != (v < 0)) {
      return absl::InvalidArgumentError(absl::StrCat(key, " is beyond what can be met (2^62)"));
    }
    v = v < 0 ? -kFar : kFar;
    exclusive = false;
  }
  if (std::floor(v) != v) {
    if (!integer) {
      return absl::InvalidArgumentError(
          absl::StrCat("a fractional ", key, " is supported only with type integer"));
    }
    v = lower ? std::ceil(v) : std::floor(v);
    exclusive = false;
  }
  auto value = static_cast<int64_t>(v);
  if (integer && exclusive) {
    value += lower ? 1 : -1;
    exclusive = false;
  }
  if (lower) {
    if (!bounds.has_min || value > bounds.min || (value == bounds.min && exclusive)) {
      bounds.has_min = true;
      bounds.min = value;
      bounds.min_exclusive = exclusive;
    }
  } else if (!bounds.has_max || value < bounds.max || (value == bounds.max && exclusive)) {
    bounds.has_max = true;
    bounds.max = value;
    bounds.max_exclusive = exclusive;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NumberBounds> NumberBoundsOf(const Json& schema, bool integer) {
  NumberBounds bounds;
  for (const char* key : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
    if (absl::Status read = ReadBound(schema, key, integer, bounds); !read.ok()) return read;
  }
  return bounds;
}

bool WithinBounds(const Json& value, const NumberBounds& bounds) {
  const auto x = value.get<long double>();
  if (bounds.has_min && (bounds.min_exclusive ? x <= bounds.min : x < bounds.min)) return false;
  return !(bounds.has_max && (bounds.max_exclusive ? x >= bounds.max : x > bounds.max));
}

absl::StatusOr<std::optional<StringPattern>> PatternOf(const Json& schema) {
  const auto pattern = schema.find("pattern");
  const auto format = schema.find("format");
  if (pattern == schema.end() && format == schema.end()) return std::nullopt;
  if (pattern != schema.end() && format != schema.end()) {
    return absl::InvalidArgumentError("pattern and format together are not supported");
  }
  const auto text = pattern != schema.end() ? pattern : format;
  if (!text->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(pattern != schema.end() ? "pattern" : "format", " must be a string"));
  }
  const std::string& source = text->get_ref<const std::string&>();
  absl::StatusOr<StringPattern> compiled =
      pattern != schema.end() ? StringPattern::Compile(source) : StringPattern::OfFormat(source);
  if (!compiled.ok()) return compiled.status();
  return *std::move(compiled);
}

}  // namespace cohost::runtime
