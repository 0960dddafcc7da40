#include "runtime/sampling/schema_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

constexpr uint64_t kFar = uint64_t{1} << 62;  // past this, a bound is held at it

// A JSON number as a decimal: its digits (no leading or trailing zeros;
// empty for 0) times 10^exponent. A float's are those of its text as the
// grammar writes an enum's value (nlohmann's, a short text that reads back
// as the double: "0.1", not 0.1000000000000000055...), which is what its
// writer wrote wherever a double holds that.
struct Decimal {
  bool negative = false;
  std::string digits;
  int exponent = 0;
};

Decimal DecimalOf(const Json& value) {
  const std::string text = value.dump();
  Decimal d;
  size_t at = 0;
  if (at < text.size() && text[at] == '-') {
    d.negative = true;
    ++at;
  }
  int fraction_digits = 0;
  bool point = false;
  for (; at < text.size() && text[at] != 'e'; ++at) {
    if (text[at] == '.') {
      point = true;
      continue;
    }
    if (!(d.digits.empty() && text[at] == '0')) d.digits.push_back(text[at]);
    if (point) ++fraction_digits;
  }
  int exponent = 0;
  if (at + 1 < text.size()) {
    std::from_chars(text.data() + at + (text[at + 1] == '+' ? 2 : 1), text.data() + text.size(),
                    exponent);
  }
  d.exponent = exponent - fraction_digits;
  while (!d.digits.empty() && d.digits.back() == '0') {
    d.digits.pop_back();
    ++d.exponent;
  }
  return d;
}

// The decimals a number has (0 for an integer).
int DecimalsOf(const Json& value) {
  const Decimal d = DecimalOf(value);
  return d.digits.empty() ? 0 : std::max(0, -d.exponent);
}

// -1, 0 or 1 as a is below, equal to or above b, exactly.
int Compare(const Decimal& a, const Decimal& b) {
  const auto sign = [](const Decimal& d) { return d.digits.empty() ? 0 : d.negative ? -1 : 1; };
  const int sa = sign(a), sb = sign(b);
  if (sa != sb) return sa < sb ? -1 : 1;
  if (sa == 0) return 0;
  // |d| is 0.DIGITS times 10^(its digits + exponent); digits without
  // trailing zeros compare as strings.
  const long ea = static_cast<long>(a.digits.size()) + a.exponent;
  const long eb = static_cast<long>(b.digits.size()) + b.exponent;
  int magnitude = ea < eb ? -1 : ea > eb ? 1 : 0;
  if (magnitude == 0) {
    const int c = a.digits.compare(b.digits);
    magnitude = c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  return sa * magnitude;
}

// A number in units of 10^-scale: the floor of that, whether it is exact,
// and whether its magnitude is past kFar (floor then unset).
struct Scaled {
  bool negative = false;
  bool far = false;
  bool exact = true;
  int64_t floor = 0;
};

Scaled ScaleOf(const Json& value, int scale) {
  const Decimal d = DecimalOf(value);
  Scaled s;
  s.negative = d.negative && !d.digits.empty();
  const int shift = d.exponent + scale;
  size_t whole = d.digits.size();  // the digits before the point, once scaled
  if (shift < 0) {
    const size_t dropped = std::min(d.digits.size(), static_cast<size_t>(-shift));
    whole -= dropped;
    s.exact = d.digits.find_first_not_of('0', whole) == std::string::npos;
  }
  const size_t zeros = shift > 0 ? static_cast<size_t>(shift) : 0;
  if (whole + zeros > 19) {
    s.far = true;
    return s;
  }
  uint64_t magnitude = 0;
  for (size_t i = 0; i < whole; ++i) magnitude = magnitude * 10 + (d.digits[i] - '0');
  for (size_t i = 0; i < zeros; ++i) magnitude *= 10;
  if (magnitude > kFar) {
    s.far = true;
    return s;
  }
  const auto m = static_cast<int64_t>(magnitude);
  s.floor = s.negative ? -m - (s.exact ? 0 : 1) : m;
  return s;
}

// One of the four keywords into `bounds`, in its units; `narrowed` set
// where a number's bound is rounded in or held at kFar (an integer's
// rounding loses no integer).
absl::Status ReadBound(const Json& schema, const std::string& key, bool integer,
                       NumberBounds& bounds, bool& narrowed) {
  const auto it = schema.find(key);
  if (it == schema.end()) return absl::OkStatus();
  if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat(key, " must be a number"));
  const bool lower = key == "minimum" || key == "exclusiveMinimum";
  bool exclusive = key.rfind("exclusive", 0) == 0;
  const Scaled s = ScaleOf(*it, bounds.scale);
  int64_t value = s.floor;
  if (s.far) {
    if (lower != s.negative) {
      return absl::InvalidArgumentError(absl::StrCat(key, " is beyond what can be met (2^62)"));
    }
    value = s.negative ? -static_cast<int64_t>(kFar) : static_cast<int64_t>(kFar);
    exclusive = false;
    narrowed = true;
  } else if (!s.exact) {
    // Rounded in to the units (closed: narrower, never wider).
    value = lower ? s.floor + 1 : s.floor;
    exclusive = false;
    narrowed = narrowed || !integer;
  }
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

constexpr const char* kBoundKeys[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};

absl::Status MultipleTooBig() {
  return absl::InvalidArgumentError(absl::StrCat("multipleOf holds values to multiples of at most ",
                                                 kMaxMultiple, " of their units (10^-decimals)"));
}

// D of d = D * 10^exponent (at most 18 digits, checked by the caller).
uint64_t DigitsValue(const Decimal& d) {
  uint64_t k = 0;
  for (const char c : d.digits) k = k * 10 + static_cast<uint64_t>(c - '0');
  return k;
}

// The integer whose multiples an integer that is a multiple of `d` is:
// d's numerator once reduced, of D / 10^k, D / gcd(D, 10^k).
absl::StatusOr<uint32_t> WholeMultiple(const Decimal& d) {
  if (d.digits.size() + static_cast<size_t>(std::max(d.exponent, 0)) > 18) return MultipleTooBig();
  uint64_t k = DigitsValue(d);
  for (int i = 0; i < d.exponent; ++i) k *= 10;
  // Each factor 2 or 5 of D that 10^k holds cancels.
  for (int i = 0; i < -d.exponent && i < 64; ++i) {
    if (k % 2 == 0) k /= 2;
    if (k % 5 == 0) k /= 5;
  }
  if (k > kMaxMultiple) return MultipleTooBig();
  return static_cast<uint32_t>(k);
}

// The schema's multipleOf, where it has one (a number above 0).
absl::StatusOr<std::optional<Decimal>> MultipleOf(const Json& schema) {
  const auto it = schema.find("multipleOf");
  if (it == schema.end()) return std::nullopt;
  const Decimal d = DecimalOf(*it);
  if (!it->is_number() || d.negative || d.digits.empty()) {
    return absl::InvalidArgumentError("multipleOf must be a number above 0");
  }
  return d;
}

// `v` is a multiple of `m` (> 0), exactly: v * 10^-e / M is whole, for m =
// M * 10^e (v's digits have no trailing zeros: fewer decimals than m's
// are no multiple).
bool IsMultiple(const Decimal& v, const Decimal& m) {
  const int shift = v.exponent - m.exponent;
  if (v.digits.empty()) return true;
  if (shift < 0 || m.digits.size() > 18) return false;
  const uint64_t divisor = DigitsValue(m);
  uint64_t remainder = 0;
  for (const char c : v.digits) {
    remainder = (remainder * 10 + static_cast<uint64_t>(c - '0')) % divisor;
  }
  for (int i = 0; i < shift && remainder != 0; ++i) remainder = remainder * 10 % divisor;
  return remainder == 0;
}

}  // namespace

absl::StatusOr<NumberBounds> NumberBoundsOf(const Json& schema, bool integer, bool* narrowed) {
  NumberBounds bounds;
  absl::StatusOr<std::optional<Decimal>> multiple = MultipleOf(schema);
  if (!multiple.ok()) return multiple.status();
  // An integer's multiples, or a number's whole ones: integers, with an
  // integer's bounds; a number's with decimals: units as fine as they are.
  int multiple_decimals = 0;
  if (*multiple && (integer || (*multiple)->exponent >= 0)) {
    absl::StatusOr<uint32_t> whole = WholeMultiple(**multiple);
    if (!whole.ok()) return whole.status();
    bounds.multiple = *whole;
    integer = true;
  } else if (*multiple) {
    multiple_decimals = -(*multiple)->exponent;
    if (multiple_decimals > kMaxBoundDecimals) {
      return absl::InvalidArgumentError(
          absl::StrCat("multipleOf is supported to ", kMaxBoundDecimals, " decimals"));
    }
    if ((*multiple)->digits.size() > 18) return MultipleTooBig();
  }
  // A number's units are the finest its bounds need, up to
  // kMaxBoundDecimals and as fine as keeps every bound within +-2^62 (as
  // written) within kFar units (never coarser than its multipleOf); an
  // integer's are whole.
  if (!integer) {
    std::vector<const Json*> written;
    int scale = multiple_decimals;
    for (const char* key : kBoundKeys) {
      const auto it = schema.find(key);
      if (it == schema.end() || !it->is_number()) continue;
      written.push_back(&*it);
      scale = std::max(scale, std::min(DecimalsOf(*it), kMaxBoundDecimals));
    }
    const auto too_fine = [&](int s) {
      return std::any_of(written.begin(), written.end(),
                         [&](const Json* b) { return ScaleOf(*b, s).far && !ScaleOf(*b, 0).far; });
    };
    while (scale > multiple_decimals && too_fine(scale)) --scale;
    bounds.scale = static_cast<uint8_t>(scale);
    if (*multiple) {
      // The multipleOf in units of 10^-scale.
      uint64_t units = DigitsValue(**multiple);
      for (int i = multiple_decimals; i < scale && units <= kMaxMultiple; ++i) units *= 10;
      if (units > kMaxMultiple) return MultipleTooBig();
      bounds.multiple = static_cast<uint32_t>(units);
    }
  }
  bool rounded = false;
  for (const char* key : kBoundKeys) {
    if (absl::Status read = ReadBound(schema, key, integer, bounds, rounded); !read.ok()) {
      return read;
    }
  }
  if (narrowed != nullptr) *narrowed = rounded;
  return bounds;
}

bool WithinBounds(const Json& value, const Json& schema) {
  const Decimal v = DecimalOf(value);
  if (const absl::StatusOr<std::optional<Decimal>> multiple = MultipleOf(schema);
      !multiple.ok() || (*multiple && !IsMultiple(v, **multiple))) {
    return false;
  }
  for (const char* key : kBoundKeys) {
    const auto it = schema.find(key);
    if (it == schema.end() || !it->is_number()) continue;
    const int c = Compare(v, DecimalOf(*it));
    const std::string_view k(key);
    const bool exclusive = k.starts_with("exclusive");
    const bool lower = k == "minimum" || k == "exclusiveMinimum";
    if (lower ? (exclusive ? c <= 0 : c < 0) : (exclusive ? c >= 0 : c > 0)) return false;
  }
  return true;
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
