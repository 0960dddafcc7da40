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

// minimum, exclusiveMinimum, maximum and exclusiveMaximum in units of
// 10^-scale (json_number.h), the tighter where two bound one side. A
// number's units are its bounds' finest decimal, up to kMaxBoundDecimals
// and as fine as keeps them within 2^62 units; an integer's are whole. A
// bound finer than its units is rounded in and closed; one past +-2^62 is
// held at 2^62 units on its own side (narrower, never wider), and one past
// it on the far side can never be met. `narrowed`, where given: a number's
// bound was rounded in or held so (an integer's rounding loses no integer).
// And multipleOf, as the integer its values are whole multiples of (a
// number's must be whole, and its values then are integers, bounds and
// all; an integer's may have decimals: 2.5 holds it to multiples of 5).
absl::StatusOr<NumberBounds> NumberBoundsOf(const nlohmann::json& schema, bool integer,
                                            bool* narrowed = nullptr);
// A number value (an enum's) lies within `schema`'s bounds as written,
// compared exactly as decimals (no units, no rounding), and is a multiple
// of its multipleOf.
bool WithinBounds(const nlohmann::json& value, const nlohmann::json& schema);

// The string's pattern or format, compiled; none where it has neither.
absl::StatusOr<std::optional<StringPattern>> PatternOf(const nlohmann::json& schema);

}  // namespace cohost::runtime
