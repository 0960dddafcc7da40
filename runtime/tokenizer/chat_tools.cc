#include "runtime/tokenizer/chat_tools.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "nlohmann/json.hpp"

namespace cohost::runtime {
namespace {

using Ordered = nlohmann::ordered_json;

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

void Append(const Ordered& v, std::string* out) {
  switch (v.type()) {
    case Ordered::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.items()) {
        if (!first) out->append(", ");
        first = false;
        AppendString(key, out);
        out->append(": ");
        Append(value, out);
      }
      out->push_back('}');
      return;
    }
    case Ordered::value_t::array: {
      out->push_back('[');
      for (size_t i = 0; i < v.size(); ++i) {
        if (i > 0) out->append(", ");
        Append(v[i], out);
      }
      out->push_back(']');
      return;
    }
    case Ordered::value_t::string:
      return AppendString(v.get_ref<const std::string&>(), out);
    case Ordered::value_t::number_float:
      return AppendFloat(v.get<double>(), out);
    default:  // null, booleans and integers are written alike
      out->append(v.dump());
  }
}

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
  const Ordered parsed = Ordered::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::string(json_text);
  std::string out;
  Append(parsed, &out);
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
