// The value keywords of one schema (enum and const, number bounds, a
// string's pattern or format), read and checked for JsonSchema::Compile
// (json_schema.cc), which says where. Errors are INVALID_ARGUMENT saying
// what is wrong, with none of the schema's text.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/json_number.h"
#include "runtime/sampling/json_schema.h"
#include "runtime/sampling/string_pattern.h"

namespace cohost::runtime {

// The values of `schema`'s enum or const: none where it has neither; else
// 1 to kMaxSchemaEnum, each a string, number, boolean or null.
absl::StatusOr<std::vector<nlohmann::json>> EnumValues(const nlohmann::json& schema);

// The type of an enum's value (kNumber for any number).
SchemaNode::Kind KindOf(const nlohmann::json& value);
// `value` is of `kind`; an integer is a whole number (1.0 too).
bool IsOfKind(const nlohmann::json& value, SchemaNode::Kind kind);

// minimum, exclusiveMinimum, maximum and exclusiveMaximum, the tighter
// where two bound one side. An integer's bounds are rounded inwards and
// closed; a number's must be whole. A bound past +-2^62 is held at 2^62
// on its own side (narrower, never wider), and one past it on the far side
// can never be met.
absl::StatusOr<NumberBounds> NumberBoundsOf(const nlohmann::json& schema, bool integer);
// A number value (an enum's) lies within the bounds.
bool WithinBounds(const nlohmann::json& value, const NumberBounds& bounds);

// The string's pattern or format, compiled; none where it has neither.
absl::StatusOr<std::optional<StringPattern>> PatternOf(const nlohmann::json& schema);

}  // namespace cohost::runtime
