// JSON written again in its keys' order. See json_rewrite.h.

#include "runtime/tokenizer/json_rewrite.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace cohost::runtime {
namespace {

constexpr int kMaxDepth = 64;

void AppendJsonStringImpl(std::string_view s, std::string* out) {
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
  char exponent[16];
  std::snprintf(exponent, sizeof exponent, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  out->append(exponent);
}

// Writes each value as the SAX parser reads it, or only the values a
// selection wants (each handed over whole).
class Writer : public nlohmann::json_sax<nlohmann::json> {
 public:
  using Want = std::function<bool(JsonPath)>;
  using Take = std::function<void(JsonPath, std::string)>;

  // Without `want`, the whole text goes to *out.
  Writer(JsonStyle style, std::string* out, const Want* want, const Take* take)
      : python_(style == JsonStyle::kPython), whole_(out), want_(want), take_(take) {
    // path_'s keys are views of these: they must not move.
    levels_.reserve(kMaxDepth);
    path_.reserve(kMaxDepth);
  }

  bool null() override { return Scalar("null"); }
  bool boolean(bool v) override { return Scalar(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return Scalar(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Scalar(std::to_string(v)); }
  bool number_float(number_float_t v, const string_t& text) override {
    return Value([&](std::string* out) {
      if (python_) {
        AppendFloat(v, out);
      } else {
        out->append(text);
      }
    });
  }
  bool string(string_t& v) override {
    return Value([&](std::string* out) { AppendJsonStringImpl(v, out); });
  }
  bool binary(binary_t& /*v*/) override { return false; }  // not in JSON text
  bool start_object(std::size_t /*size*/) override { return Open('{', /*array=*/false); }
  bool key(string_t& v) override {
    Level& level = levels_.back();
    level.key = std::move(v);
    path_.back().key = level.key;
    if (out_ == nullptr) return true;
    if (!level.first) out_->append(python_ ? ", " : ",");
    level.first = false;
    AppendJsonStringImpl(level.key, out_);
    out_->append(python_ ? ": " : ":");
    level.after_key = true;
    return true;
  }
  bool end_object() override { return Close('}'); }
  bool start_array(std::size_t /*size*/) override { return Open('[', /*array=*/true); }
  bool end_array() override { return Close(']'); }
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*error*/) override {
    return false;
  }

 private:
  struct Level {
    bool array = false;
    bool first = true;       // no item written yet
    bool after_key = false;  // an object's next value follows its key
    int64_t next_index = 0;
    std::string key;
  };

  // At the start of a value: whether it is written (the writing starts
  // here when a selection wants it). Separates it from the one before.
  bool Begin() {
    if (out_ == nullptr) {
      if (!levels_.empty() && levels_.back().array) path_.back().index = levels_.back().next_index;
      if (!(*want_)(JsonPath(path_))) return false;
      out_ = &taken_;
      taken_.clear();
      taken_depth_ = levels_.size();
      return true;
    }
    if (levels_.size() > taken_depth_) {
      Level& level = levels_.back();
      if (level.after_key) {
        level.after_key = false;
      } else {
        if (!level.first) out_->append(python_ ? ", " : ",");
        level.first = false;
      }
    }
    return true;
  }
  // At a value's end: hands a taken one over.
  void End() {
    if (whole_ == nullptr && out_ != nullptr && levels_.size() == taken_depth_) {
      (*take_)(JsonPath(path_), std::move(taken_));
      out_ = nullptr;
    }
  }
  void Count() {
    if (!levels_.empty() && levels_.back().array) ++levels_.back().next_index;
  }
  // A scalar, written by `write`.
  template <typename Write>
  bool Value(const Write& write) {
    if (Begin()) {
      write(out_);
      End();
    }
    Count();
    return true;
  }
  bool Scalar(std::string_view text) {
    return Value([&](std::string* out) { out->append(text); });
  }
  bool Open(char bracket, bool array) {
    if (levels_.size() >= kMaxDepth) return false;
    if (Begin()) out_->push_back(bracket);
    Count();
    Level& level = levels_.emplace_back();
    level.array = array;
    path_.emplace_back();  // the step into its items
    return true;
  }
  bool Close(char bracket) {
    levels_.pop_back();
    path_.pop_back();
    if (out_ != nullptr) {
      out_->push_back(bracket);
      End();
    }
    return true;
  }

  const bool python_;
  std::string* const whole_;  // the whole text's writing, or null
  const Want* want_;
  const Take* take_;
  std::string* out_ = whole_;   // where the value being written goes, or null
  std::vector<Level> levels_;   // the open containers
  std::vector<JsonStep> path_;  // per open container, the step into its item (a key's view)
  std::string taken_;
  size_t taken_depth_ = 0;  // levels_ open around the taken value
};

bool Parse(std::string_view text, Writer* writer) {
  return nlohmann::json::sax_parse(text, writer, nlohmann::json::input_format_t::json,
                                   /*strict=*/true);
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) { AppendJsonStringImpl(s, out); }

std::optional<std::string> RewriteJson(std::string_view text, JsonStyle style) {
  std::string out;
  Writer writer(style, &out, nullptr, nullptr);
  if (!Parse(text, &writer)) return std::nullopt;
  return out;
}

bool RewriteJsonValues(std::string_view text, JsonStyle style,
                       const std::function<bool(JsonPath)>& want,
                       const std::function<void(JsonPath, std::string)>& take) {
  Writer writer(style, nullptr, &want, &take);
  return Parse(text, &writer);
}

}  // namespace cohost::runtime
