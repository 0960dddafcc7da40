#include "scheduler/config_yaml.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cohost::scheduler::config_yaml {
namespace {

// Levenshtein distance; keys are cut to 64 bytes so that a huge key costs little.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  a = a.substr(0, 64);
  b = b.substr(0, 64);
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// YAML 1.2's core integers in decimal only: [-+]?[0-9]+, without leading
// zeros, which YAML 1.1 reads as octal. Hex, octal and `1_000` are refused
// rather than guessed at. Values past int64 saturate, so that range checks
// call them too large or too small.
bool ParseDecimal(absl::string_view s, int64_t& value) {
  absl::string_view digits = s;
  const bool negative = absl::ConsumePrefix(&digits, "-");
  if (!negative) absl::ConsumePrefix(&digits, "+");
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return false;
  }
  if (digits.size() > 1 && digits[0] == '0') return false;
  if (!absl::SimpleAtoi(s, &value)) {  // digits only: overflow
    value = negative ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  }
  return true;
}

}  // namespace

// What an unexpected value is, in an error. Never walks into a list or map:
// aliases can make them cyclic.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// A node's 0-based line, or `fallback` where yaml-cpp has none for it.
int LineOf(const YAML::Node& node, int fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() || mark.line < 0 ? fallback : mark.line;
}

// "unknown field", with the nearest known name when the key looks like a typo
// of it or a shortened or lengthened form of it (keep_alive, kv_floor).
std::string UnknownField(absl::string_view key, const std::vector<absl::string_view>& known) {
  absl::string_view best;
  size_t best_distance = 3;
  for (absl::string_view candidate : known) {
    size_t distance = EditDistance(key, candidate);
    const bool related =
        key.size() >= 4 && (absl::StartsWith(candidate, key) || absl::StartsWith(key, candidate));
    if (related) distance = std::min<size_t>(distance, 2);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty()) return "unknown field";
  return absl::StrCat("unknown field; did you mean ", best, "?");
}

// A field path with a key appended; odd keys are escaped.
std::string SubPath(absl::string_view path, absl::string_view key) {
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  const std::string shown = plain && key.size() <= 64 ? std::string(key) : Quote(key);
  return path.empty() ? shown : absl::StrCat(path, ".", shown);
}

absl::Status YamlReader::Error(int line, absl::string_view path, absl::string_view what) const {
  std::string where = line >= 0 ? absl::StrCat(file_, ":", line + 1) : std::string(file_);
  return absl::InvalidArgumentError(path.empty() ? absl::StrCat(where, ": ", what)
                                                 : absl::StrCat(where, ": ", path, ": ", what));
}

absl::StatusOr<int64_t> YamlReader::ParseInt(const YAML::Node& value, int line,
                                             const std::string& path, int64_t min, int64_t max,
                                             absl::string_view expected) const {
  int64_t n = 0;
  // Quoted scalars are strings (tag "!"), as in JSON; plain ones have tag "?".
  const bool quoted = value.IsScalar() && value.Tag() == "!";
  const bool plain =
      value.IsScalar() && (value.Tag() == "?" || value.Tag() == "tag:yaml.org,2002:int");
  const bool integer = value.IsScalar() && ParseDecimal(value.Scalar(), n);
  if (quoted && integer) {
    return Error(
        line, path,
        absl::StrCat("expected ", expected, ", got ", Describe(value), " (quoted, so a string)"));
  }
  if (!plain || !integer || n < min) {
    return Error(line, path, absl::StrCat("expected ", expected, ", got ", Describe(value)));
  }
  if (n > max) {
    return Error(line, path,
                 absl::StrCat("expected ", expected, ", at most ", max, ", got ", Describe(value)));
  }
  return n;
}

absl::StatusOr<std::string> YamlReader::ParseString(const YAML::Node& value, int line,
                                                    const std::string& path) const {
  if (!value.IsScalar()) {
    return Error(line, path, absl::StrCat("expected a string, got ", Describe(value)));
  }
  return value.Scalar();
}

absl::StatusOr<double> YamlReader::ParsePositive(const YAML::Node& value, int line,
                                                 const std::string& path, double max) const {
  const std::string expected = absl::StrCat("a number above 0, at most ", max);
  const bool plain = value.IsScalar() && value.Tag() != "!";
  // Digits with at most one point, and an exponent ("1e-05", as a writer of
  // doubles puts a small one): no leading sign, hex, inf or nan.
  const std::string& text = plain ? value.Scalar() : std::string();
  const size_t e = text.find_first_of("eE");
  const std::string_view mantissa = std::string_view(text).substr(0, e);
  std::string_view exponent =
      e == std::string::npos ? std::string_view() : std::string_view(text).substr(e + 1);
  if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.remove_prefix(1);
  const auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
  };
  const bool decimal =
      !mantissa.empty() && text.size() <= 32 &&
      std::count(mantissa.begin(), mantissa.end(), '.') <= 1 && mantissa != "." &&
      std::all_of(
          mantissa.begin(), mantissa.end(),
          [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.'; }) &&
      (e == std::string::npos || (!exponent.empty() && digits(exponent)));
  double v = 0;
  if (!decimal || !absl::SimpleAtod(text, &v) || !(v > 0) || v > max) {
    return Error(line, path, absl::StrCat("expected ", expected, ", got ", Describe(value)));
  }
  return v;
}

}  // namespace cohost::scheduler::config_yaml
