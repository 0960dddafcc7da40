// JSON text written again, keys in the order the text has them (nlohmann's
// json sorts them; its ordered_json searches its keys on every insert, which
// is quadratic in an object's size): in one SAX pass, linear in the text.
// Two styles: compact (OpenAI's tool-call arguments; numbers as written) and
// transformers' `tojson` (what chat templates write of a client's tools and
// calls). Whole texts, or only the values at chosen paths of one (a request
// body's tool schemas, read in their order after the body was parsed).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cohost::runtime {

enum class JsonStyle {
  // No whitespace; numbers exactly as the text writes them.
  kCompact,
  // Python's json.dumps with ensure_ascii off: ", " and ": " between items,
  // floats as Python's repr (an integer past 64 bits is read as a float).
  kPython,
};

// `text` written in `style`; nullopt if it is not one JSON value (trailing
// text, malformed) or nests deeper than 64 levels.
std::optional<std::string> RewriteJson(std::string_view text, JsonStyle style);

// One step of a value's path from the document's root: an object's key, or
// an array's index (key empty).
struct JsonStep {
  std::string_view key;
  int64_t index = -1;  // >= 0: an array's item
};
using JsonPath = std::span<const JsonStep>;

// Calls `take(path, rewritten)` for each value whose path `want` says yes
// to, in the text's order (the values inside a taken one are not asked
// about). False if `text` is not JSON, as RewriteJson.
bool RewriteJsonValues(std::string_view text, JsonStyle style,
                       const std::function<bool(JsonPath)>& want,
                       const std::function<void(JsonPath, std::string)>& take);

// `s` as a JSON string, quotes included, UTF-8 as it is (Python's
// ensure_ascii off; control characters escaped).
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace cohost::runtime
