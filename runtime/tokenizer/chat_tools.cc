#include "runtime/tokenizer/chat_tools.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "nlohmann/json.hpp"

namespace cohost::runtime {
namespace {

void AppendString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out->append(escaped);
        } else {
          out->push_back(c);  // UTF-8 as it is (ensure_ascii off)
        }
    }
  }
  out->push_back('"');
}

// Python's repr of a float: the shortest digits that read back, fixed where
// the exponent is in [-4, 16) (with ".0" when whole), else d.ddde+XX.
void AppendFloat(double v, std::string* out) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  if (ec != std::errc()) {
    out->append("0.0");
    return;
  }
  const std::string_view sci(buf, static_cast<size_t>(end - buf));  // [-]d[.ddd]e[+-]XX
  const size_t e = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (const char c : sci.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
    if (c != '.') digits.push_back(c);
  }
  const int exp = std::atoi(std::string(sci.substr(e + 1)).c_str());
  if (negative) out->push_back('-');
  if (exp >= -4 && exp < 16) {
    const int point = exp + 1;  // digits before the decimal point
    if (point <= 0) {
      out->append("0.");
      out->append(static_cast<size_t>(-point), '0');
      out->append(digits);
    } else if (static_cast<size_t>(point) >= digits.size()) {
      out->append(digits);
      out->append(static_cast<size_t>(point) - digits.size(), '0');
      out->append(".0");
    } else {
      out->append(digits, 0, static_cast<size_t>(point));
      out->push_back('.');
      out->append(digits, static_cast<size_t>(point));
    }
    return;
  }
  out->push_back(digits[0]);
  if (digits.size() > 1) {
    out->push_back('.');
    out->append(digits, 1);
  }
  char exponent[8];
  std::snprintf(exponent, sizeof exponent, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  out->append(exponent);
}

// Writes each value as the SAX parser reads it: linear in the text, keys in
// their order (an ordered_json would search its keys on every insert).
class PythonWriter : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit PythonWriter(std::string* out) : out_(out) {}

  bool null() override { return Scalar("null"); }
  bool boolean(bool v) override { return Scalar(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return Scalar(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Scalar(std::to_string(v)); }
  bool number_float(number_float_t v, const string_t& /*text*/) override {
    Separate();
    AppendFloat(v, out_);
    return true;
  }
  bool string(string_t& v) override {
    Separate();
    AppendString(v, out_);
    return true;
  }
  bool binary(binary_t& /*v*/) override { return false; }  // not in JSON text
  bool start_object(std::size_t /*size*/) override { return Open('{'); }
  bool key(string_t& v) override {
    Separate();
    AppendString(v, out_);
    out_->append(": ");
    after_key_ = true;
    return true;
  }
  bool end_object() override { return Close('}'); }
  bool start_array(std::size_t /*size*/) override { return Open('['); }
  bool end_array() override { return Close(']'); }
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*error*/) override {
    return false;
  }

 private:
  // ", " before every item but a container's first and a key's value.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
    } else if (!first_.empty()) {
      if (!first_.back()) out_->append(", ");
      first_.back() = false;
    }
  }
  bool Scalar(std::string_view text) {
    Separate();
    out_->append(text);
    return true;
  }
  bool Open(char bracket) {
    Separate();
    out_->push_back(bracket);
    first_.push_back(true);
    return true;
  }
  bool Close(char bracket) {
    first_.pop_back();
    out_->push_back(bracket);
    return true;
  }

  std::string* out_;
  std::vector<bool> first_;  // per open container: no item written yet
  bool after_key_ = false;
};

// Whether the text's brackets (outside strings) nest deeper than `limit`:
// such text is left as it is, not parsed and written recursively.
bool NestsDeeper(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

}  // namespace

std::string PythonJson(std::string_view json_text) {
  if (NestsDeeper(json_text, 64)) return std::string(json_text);
  std::string out;
  PythonWriter writer(&out);
  if (!nlohmann::json::sax_parse(json_text, &writer, nlohmann::json::input_format_t::json,
                                 /*strict=*/true)) {
    return std::string(json_text);
  }
  return out;
}

std::string ToolJson(const ChatTool& tool) {
  std::string out = R"({"type": "function", "function": {"name": )";
  AppendString(tool.name, &out);
  if (!tool.description.empty()) {
    out.append(R"(, "description": )");
    AppendString(tool.description, &out);
  }
  if (!tool.parameters.empty()) {
    out.append(R"(, "parameters": )");
    out.append(PythonJson(tool.parameters));
  }
  out.append("}}");
  return out;
}

}  // namespace cohost::runtime
