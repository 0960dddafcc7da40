// Whether a JSON value is valid under a JSON Schema, by the standard's rules
// (draft 2020-12), for the keywords cohost's schemas use: written apart from
// runtime/sampling, as the oracle json_schema_fuzz holds the grammar's
// documents to. Formats are not checked (annotations by the standard's
// default); patterns are searched by PCRE2 (pcre2_search.h), and one it
// cannot take as ECMA-262 reads it is not checked. Keywords it does not
// know are annotations. The document's numbers are read as written
// (ParseDocument: a double would round away what multipleOf, "integer" and
// a bound's last digits look at) and compared exactly in decimal with the
// schema's (as the compiler reads them: doubles, written shortest); a
// multipleOf whose quotient's digits do not fit 128 bits is not checked.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/fuzz/pcre2_search.h"

namespace cohost::fuzz {

// A document as nlohmann's DOM, but each number an object holding its text
// as written under the key kNumberKey (no document has it: not UTF-8).
inline constexpr const char* kNumberKey = "\xff";

class DocumentSax {
 public:
  using Json = nlohmann::json;
  explicit DocumentSax(Json* root) : root_(root) {}
  bool null() { return Put(nullptr); }
  bool boolean(bool b) { return Put(b); }
  bool number_integer(Json::number_integer_t n) { return Number(std::to_string(n)); }
  bool number_unsigned(Json::number_unsigned_t n) { return Number(std::to_string(n)); }
  bool number_float(Json::number_float_t, const std::string& text) { return Number(text); }
  bool string(std::string& text) { return Put(text); }
  bool binary(Json::binary_t&) { return false; }
  bool start_object(std::size_t) { return Open(Json::object()); }
  bool key(std::string& name) {
    key_ = name;
    return true;
  }
  bool end_object() { return Close(); }
  bool start_array(std::size_t) { return Open(Json::array()); }
  bool end_array() { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = e.what();
    error_id_ = e.id;
    return false;
  }
  const std::string& error() const { return error_; }
  int error_id() const { return error_id_; }

 private:
  bool Number(const std::string& text) { return Put(Json::object({{kNumberKey, text}})); }
  // The value's place: the root, the open array's end, or the open object's key.
  Json* Place() {
    if (open_.empty()) return root_;
    Json& top = *open_.back();
    if (top.is_array()) {
      top.push_back(nullptr);
      return &top.back();
    }
    return &top[key_];
  }
  bool Put(Json value) {
    *Place() = std::move(value);
    return true;
  }
  bool Open(Json empty) {
    Json* place = Place();
    *place = std::move(empty);
    open_.push_back(place);
    return true;
  }
  bool Close() {
    open_.pop_back();
    return true;
  }

  Json* root_;
  std::vector<Json*> open_;
  std::string key_;
  std::string error_;
  int error_id_ = 0;
};

// `text` as DocumentSax reads it, or nullopt with nlohmann's error (its id
// 406: a number past a double's range) where it takes none.
inline std::optional<nlohmann::json> ParseDocument(const std::string& text, int* error_id,
                                                   std::string* error) {
  nlohmann::json root;
  DocumentSax sax(&root);
  if (nlohmann::json::sax_parse(text, &sax)) return root;
  *error_id = sax.error_id();
  *error = sax.error();
  return std::nullopt;
}

class SchemaCheck {
 public:
  explicit SchemaCheck(const nlohmann::json& root) : root_(root) {}

  // `value` as ParseDocument reads it.
  bool Valid(const nlohmann::json& value) const { return Valid(root_, value, 0); }

 private:
  using Json = nlohmann::json;

  // A decimal: its sign, its significant digits (no leading or trailing
  // zeros; none for zero) and the power of ten of the first, value =
  // 0.d1d2... * 10^point. Exponents are saturated at a million.
  struct Decimal {
    bool negative = false;
    std::string digits;
    int64_t point = 0;
  };
  static Decimal ParseDecimal(std::string_view text) {
    Decimal d;
    size_t i = 0;
    if (i < text.size() && text[i] == '-') {
      d.negative = true;
      ++i;
    }
    std::string mantissa;
    int64_t whole_digits = 0;
    bool fraction = false;
    for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
      if (text[i] == '.') {
        fraction = true;
        continue;
      }
      mantissa.push_back(text[i]);
      if (!fraction) ++whole_digits;
    }
    int64_t exponent = 0;
    if (i < text.size()) {
      ++i;
      const bool negative = i < text.size() && text[i] == '-';
      if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
      for (; i < text.size(); ++i)
        exponent = std::min<int64_t>(exponent * 10 + (text[i] - '0'), 1000000);
      if (negative) exponent = -exponent;
    }
    const size_t first = mantissa.find_first_not_of('0');
    if (first == std::string::npos) return {};  // zero, -0 too
    d.digits = mantissa.substr(first, mantissa.find_last_not_of('0') - first + 1);
    d.point = whole_digits - static_cast<int64_t>(first) + exponent;
    return d;
  }
  // Below 0, 0 or above 0 as a is below, equal to or above b.
  static int Compare(const Decimal& a, const Decimal& b) {
    const int sa = a.digits.empty() ? 0 : a.negative ? -1 : 1;
    const int sb = b.digits.empty() ? 0 : b.negative ? -1 : 1;
    if (sa != sb || sa == 0) return sa - sb;
    // Digit strings without trailing zeros, under one point, order as
    // their values' magnitudes.
    const int magnitude =
        a.point != b.point ? (a.point < b.point ? -1 : 1) : a.digits.compare(b.digits);
    return sa * (magnitude < 0 ? -1 : magnitude > 0 ? 1 : 0);
  }
  // The schema's number as the compiler reads it (a double, written shortest).
  static Decimal SchemaNumber(const Json& number) { return ParseDecimal(number.dump()); }

  // value / multiple is an integer: V * 10^k divisible by M, where value =
  // V * 10^(point - |V|), multiple = M * 10^(...), k the difference of those
  // exponents (V's last digit is not 0, so k < 0 leaves a fraction). V mod M
  // digit by digit; nullopt where M passes 18 digits (never a double's).
  static std::optional<bool> IsMultiple(const Decimal& value, const Decimal& multiple) {
    if (multiple.digits.empty() || multiple.digits.size() > 18) return std::nullopt;
    if (value.digits.empty()) return true;
    const int64_t k = (value.point - static_cast<int64_t>(value.digits.size())) -
                      (multiple.point - static_cast<int64_t>(multiple.digits.size()));
    if (k < 0) return false;
    const __int128 m = std::stoll(multiple.digits);
    __int128 rest = 0;
    for (const char c : value.digits) rest = (rest * 10 + (c - '0')) % m;
    for (int64_t j = 0; j < k && rest != 0; ++j) rest = rest * 10 % m;
    return rest == 0;
  }

  static bool IsNumber(const Json& value) {
    return value.is_object() && value.size() == 1 && value.contains(kNumberKey);
  }
  static Decimal NumberOf(const Json& value) {
    return ParseDecimal(value.at(kNumberKey).get_ref<const std::string&>());
  }

  // A schema's value (enum, const) equals the document's, numbers by value.
  static bool Equal(const Json& want, const Json& value) {
    if (IsNumber(value)) {
      return want.is_number() && Compare(SchemaNumber(want), NumberOf(value)) == 0;
    }
    if (want.is_array() && value.is_array()) {
      if (want.size() != value.size()) return false;
      for (size_t i = 0; i < want.size(); ++i) {
        if (!Equal(want[i], value[i])) return false;
      }
      return true;
    }
    if (want.is_object() && value.is_object()) {
      if (want.size() != value.size()) return false;
      for (const auto& [key, item] : want.items()) {
        if (!value.contains(key) || !Equal(item, value.at(key))) return false;
      }
      return true;
    }
    return want == value;
  }

  static bool IsType(const std::string& type, const Json& value) {
    if (type == "object") return value.is_object() && !IsNumber(value);
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "boolean") return value.is_boolean();
    if (type == "null") return value.is_null();
    if (type == "number") return IsNumber(value);
    if (type == "integer") {
      if (!IsNumber(value)) return false;
      const Decimal d = NumberOf(value);
      return d.point >= static_cast<int64_t>(d.digits.size());
    }
    return false;
  }

  static size_t Characters(const std::string& s) {
    size_t n = 0;
    for (const char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    return n;
  }

  // A $ref's target: its fragment percent-decoded (RFC 6901's section 6),
  // then read as a JSON pointer. Null where it names nothing, or holds an
  // encoded '/' (a separator to the standard, a key's character to some).
  const Json* Resolve(const std::string& ref) const {
    if (ref == "#") return &root_;
    if (ref.rfind("#/", 0) != 0) return nullptr;
    std::string pointer;
    for (size_t i = 1; i < ref.size(); ++i) {
      if (ref[i] != '%') {
        pointer += ref[i];
        continue;
      }
      if (i + 2 >= ref.size() || !std::isxdigit(static_cast<uint8_t>(ref[i + 1])) ||
          !std::isxdigit(static_cast<uint8_t>(ref[i + 2]))) {
        return nullptr;
      }
      const char c = static_cast<char>(std::stoi(ref.substr(i + 1, 2), nullptr, 16));
      if (c == '/') return nullptr;
      pointer += c;
      i += 2;
    }
    try {
      const Json::json_pointer at(pointer);
      return root_.contains(at) ? &root_.at(at) : nullptr;
    } catch (const Json::exception&) {
      return nullptr;
    }
  }

  // `hops`: $refs followed since the last step into a child value (a loop
  // of them, which the compiler bounds, ends the check).
  bool Valid(const Json& schema, const Json& value, int hops) const {
    if (hops > 64) return true;
    if (schema.is_boolean()) return schema.get<bool>();
    if (!schema.is_object()) return true;
    if (auto it = schema.find("$ref"); it != schema.end() && it->is_string()) {
      const Json* target = Resolve(it->get<std::string>());
      if (target != nullptr && !Valid(*target, value, hops + 1)) return false;
    }
    if (auto it = schema.find("type"); it != schema.end()) {
      bool any = false;
      if (it->is_string()) any = IsType(it->get<std::string>(), value);
      if (it->is_array()) {
        for (const Json& t : *it)
          any = any || (t.is_string() && IsType(t.get<std::string>(), value));
      }
      if (!any) return false;
    }
    if (auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
      bool found = false;
      for (const Json& e : *it) found = found || Equal(e, value);
      if (!found) return false;
    }
    if (auto it = schema.find("const"); it != schema.end() && !Equal(*it, value)) return false;
    if (auto it = schema.find("allOf"); it != schema.end() && it->is_array()) {
      for (const Json& s : *it) {
        if (!Valid(s, value, hops)) return false;
      }
    }
    if (auto it = schema.find("anyOf"); it != schema.end() && it->is_array()) {
      bool any = false;
      for (const Json& s : *it) any = any || Valid(s, value, hops);
      if (!any) return false;
    }
    if (auto it = schema.find("oneOf"); it != schema.end() && it->is_array()) {
      int valid = 0;
      for (const Json& s : *it) valid += Valid(s, value, hops);
      if (valid != 1) return false;
    }
    if (IsNumber(value)) return ValidNumber(schema, NumberOf(value));
    if (value.is_string()) return ValidString(schema, value.get<std::string>());
    if (value.is_array()) {
      if (auto it = schema.find("minItems");
          it != schema.end() && it->is_number() && value.size() < it->get<double>()) {
        return false;
      }
      if (auto it = schema.find("maxItems");
          it != schema.end() && it->is_number() && value.size() > it->get<double>()) {
        return false;
      }
      if (auto it = schema.find("items"); it != schema.end()) {
        for (const Json& item : value) {
          if (!Valid(*it, item, 0)) return false;
        }
      }
    }
    if (value.is_object()) {  // a number returned above
      const Json* properties = nullptr;
      if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) {
        properties = &*it;
      }
      if (auto it = schema.find("required"); it != schema.end() && it->is_array()) {
        for (const Json& name : *it) {
          if (name.is_string() && !value.contains(name.get<std::string>())) return false;
        }
      }
      const auto additional = schema.find("additionalProperties");
      for (const auto& [key, item] : value.items()) {
        if (properties != nullptr && properties->contains(key)) {
          if (!Valid((*properties)[key], item, 0)) return false;
        } else if (additional != schema.end() && !Valid(*additional, item, 0)) {
          return false;
        }
      }
    }
    return true;
  }

  static bool ValidNumber(const Json& schema, const Decimal& v) {
    const auto bound = [&](const char* name) -> std::optional<Decimal> {
      auto it = schema.find(name);
      if (it == schema.end() || !it->is_number()) return std::nullopt;
      return SchemaNumber(*it);
    };
    if (auto b = bound("minimum"); b && Compare(v, *b) < 0) return false;
    if (auto b = bound("maximum"); b && Compare(v, *b) > 0) return false;
    if (auto b = bound("exclusiveMinimum"); b && Compare(v, *b) <= 0) return false;
    if (auto b = bound("exclusiveMaximum"); b && Compare(v, *b) >= 0) return false;
    if (auto m = bound("multipleOf"); m && IsMultiple(v, *m) == false) return false;
    return true;
  }

  static bool ValidString(const Json& schema, const std::string& s) {
    const size_t n = Characters(s);
    if (auto it = schema.find("minLength");
        it != schema.end() && it->is_number() && n < it->get<double>()) {
      return false;
    }
    if (auto it = schema.find("maxLength");
        it != schema.end() && it->is_number() && n > it->get<double>()) {
      return false;
    }
    if (auto it = schema.find("pattern");
        it != schema.end() && it->is_string() && EcmaComparable(it->get<std::string>())) {
      if (Pcre2Search(it->get<std::string>(), s, PCRE2_UTF) == false) return false;
    }
    return true;
  }

  const Json& root_;
};

}  // namespace cohost::fuzz
