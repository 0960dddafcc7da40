// Whether a JSON value is valid under a JSON Schema, by the standard's rules
// (draft 2020-12), for the keywords cohost's schemas use: written apart from
// runtime/sampling, as the oracle json_schema_fuzz holds the grammar's
// documents to. Formats are not checked (annotations by the standard's
// default); patterns are searched by PCRE2 (JavaScript's \u, a '$' that
// ends only at the end, UTF-8), and one PCRE2 cannot take is not checked.
// Keywords it does not know are annotations. The document's numbers are
// read as written (ParseDocument: a double would round away what
// multipleOf and "integer" look at); bounds compare as long doubles
// (rounding is monotonic: a value within a bound is never found outside
// it), multipleOf and enum values exactly in decimal where the digits fit.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace cohost::fuzz {

// PCRE2's search of `pattern` in `text`; nullopt where it refuses the
// pattern or gives up (its match limit).
inline std::optional<bool> Pcre2Search(std::string_view pattern, std::string_view text,
                                       uint32_t flags = 0) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | flags, &error, &offset, nullptr);
  if (code == nullptr) return std::nullopt;
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(context, 100000);
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                             data, context);
  pcre2_match_data_free(data);
  pcre2_match_context_free(context);
  pcre2_code_free(code);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  return std::nullopt;
}

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

  // A decimal's digits and scale: value = digits * 10^-scale; nullopt past
  // what __int128 holds.
  struct Decimal {
    __int128 digits = 0;
    int scale = 0;
  };
  static std::optional<Decimal> ParseDecimal(const std::string& text, int max_digits = 30) {
    Decimal d;
    size_t i = 0;
    const bool negative = i < text.size() && text[i] == '-';
    if (negative) ++i;
    int significant = 0;
    bool fraction = false;
    for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
      if (text[i] == '.') {
        fraction = true;
        continue;
      }
      if (d.digits == 0 && text[i] == '0') {
        if (fraction) ++d.scale;
        continue;
      }
      if (++significant > max_digits) return std::nullopt;
      d.digits = d.digits * 10 + (text[i] - '0');
      if (fraction) ++d.scale;
    }
    if (i < text.size()) d.scale -= std::atoi(text.c_str() + i + 1);
    if (d.scale < -30 || d.scale > 30) return std::nullopt;
    for (; d.scale < 0; ++d.scale) d.digits *= 10;
    if (negative) d.digits = -d.digits;
    return d;
  }

  static bool IsNumber(const Json& value) {
    return value.is_object() && value.size() == 1 && value.contains(kNumberKey);
  }
  static const std::string& NumberText(const Json& value) {
    return value.at(kNumberKey).get_ref<const std::string&>();
  }
  static long double Approx(const std::string& text) { return std::strtold(text.c_str(), nullptr); }

  // The schema's number (a double, as the compiler reads it) and the
  // document's (as written) are one value; where the digits do not fit, as
  // long doubles.
  static bool SameNumber(const Json& schema_number, const std::string& text) {
    const std::optional<Decimal> a = ParseDecimal(schema_number.dump());
    const std::optional<Decimal> b = ParseDecimal(text);
    if (!a || !b) return Approx(schema_number.dump()) == Approx(text);
    __int128 x = a->digits, y = b->digits;
    for (int s = a->scale; s < b->scale; ++s) x *= 10;
    for (int s = b->scale; s < a->scale; ++s) y *= 10;
    return x == y;
  }

  // A schema's value (enum, const) equals the document's, numbers by value.
  static bool Equal(const Json& want, const Json& value) {
    if (IsNumber(value)) return want.is_number() && SameNumber(want, NumberText(value));
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

  // value / multiple is an integer; nullopt where the digits do not fit.
  static std::optional<bool> IsMultiple(const std::string& value, const Json& multiple) {
    const std::optional<Decimal> v = ParseDecimal(value);
    const std::optional<Decimal> m = ParseDecimal(multiple.dump());
    if (!v || !m || m->digits == 0) return std::nullopt;
    __int128 a = v->digits, b = m->digits;
    for (int s = v->scale; s < m->scale; ++s) a *= 10;
    for (int s = m->scale; s < v->scale; ++s) b *= 10;
    return a % b == 0;
  }

  static bool IsType(const std::string& type, const Json& value) {
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "boolean") return value.is_boolean();
    if (type == "null") return value.is_null();
    if (type == "number") return IsNumber(value);
    if (type == "integer") {
      if (!IsNumber(value)) return false;
      const std::optional<Decimal> d = ParseDecimal(NumberText(value));
      if (!d) {  // as a long double: its rounding keeps an integer one
        const long double v = Approx(NumberText(value));
        return std::floor(v) == v;
      }
      __int128 digits = d->digits;
      for (int s = 0; s < d->scale; ++s, digits /= 10) {
        if (digits % 10 != 0) return false;
      }
      return true;
    }
    return false;
  }

  static size_t Characters(const std::string& s) {
    size_t n = 0;
    for (const char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    return n;
  }

  const Json* Resolve(const std::string& ref) const {
    if (ref == "#") return &root_;
    if (ref.rfind("#/", 0) != 0) return nullptr;
    try {
      const Json::json_pointer pointer(ref.substr(1));
      return root_.contains(pointer) ? &root_.at(pointer) : nullptr;
    } catch (const Json::exception&) {
      return nullptr;
    }
  }

  bool Valid(const Json& schema, const Json& value, int depth) const {
    if (depth > 64) return true;  // a $ref loop: what the compiler bounds
    if (schema.is_boolean()) return schema.get<bool>();
    if (!schema.is_object()) return true;
    if (auto it = schema.find("$ref"); it != schema.end() && it->is_string()) {
      const Json* target = Resolve(it->get<std::string>());
      if (target != nullptr && !Valid(*target, value, depth + 1)) return false;
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
        if (!Valid(s, value, depth + 1)) return false;
      }
    }
    if (auto it = schema.find("anyOf"); it != schema.end() && it->is_array()) {
      bool any = false;
      for (const Json& s : *it) any = any || Valid(s, value, depth + 1);
      if (!any) return false;
    }
    if (auto it = schema.find("oneOf"); it != schema.end() && it->is_array()) {
      int valid = 0;
      for (const Json& s : *it) valid += Valid(s, value, depth + 1);
      if (valid != 1) return false;
    }
    if (IsNumber(value)) return ValidNumber(schema, NumberText(value));
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
          if (!Valid(*it, item, depth + 1)) return false;
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
          if (!Valid((*properties)[key], item, depth + 1)) return false;
        } else if (additional != schema.end() && !Valid(*additional, item, depth + 1)) {
          return false;
        }
      }
    }
    return true;
  }

  static bool ValidNumber(const Json& schema, const std::string& value) {
    const long double v = Approx(value);
    const auto bound = [&](const char* name) -> std::optional<long double> {
      auto it = schema.find(name);
      if (it == schema.end() || !it->is_number()) return std::nullopt;
      return Approx(it->dump());
    };
    if (auto b = bound("minimum"); b && v < *b) return false;
    if (auto b = bound("maximum"); b && v > *b) return false;
    if (auto b = bound("exclusiveMinimum"); b && v <= *b) return false;
    if (auto b = bound("exclusiveMaximum"); b && v >= *b) return false;
    if (auto it = schema.find("multipleOf"); it != schema.end() && it->is_number()) {
      if (IsMultiple(value, *it) == false) return false;
    }
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
    if (auto it = schema.find("pattern"); it != schema.end() && it->is_string()) {
      if (Pcre2Search(it->get<std::string>(), s, PCRE2_UTF) == false) return false;
    }
    return true;
  }

  const Json& root_;
};

}  // namespace cohost::fuzz
