// A JSON file a command-line flag names (--json-schema, --tools): read whole
// up to a bound, and parsed with its nesting bounded, so that a huge or
// pathologically deep file is an error naming the flag rather than memory
// or stack exhausted (the clients do not link the loader's bounded parser).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace cohost::tools {

// A request's bound on the server (ServerOptions::max_receive_message_bytes).
inline constexpr size_t kMaxJsonFileBytes = size_t{4} << 20;
// Nesting deeper than any schema the server takes (runtime::kMaxSchemaDepth).
inline constexpr int kMaxJsonFileDepth = 64;

// The file's text: NOT_FOUND "<flag> <path>: cannot be read", or
// INVALID_ARGUMENT past kMaxJsonFileBytes.
absl::StatusOr<std::string> ReadFlagFile(std::string_view flag, const std::string& path);

// INVALID_ARGUMENT "<flag> <path>: not JSON", with why.
absl::Status NotFlagJson(std::string_view flag, const std::string& path, bool too_deep);

// `text` as JSON (nlohmann::ordered_json keeps the keys' order):
// NotFlagJson where it is not, or nests past kMaxJsonFileDepth. The
// parser's own stack is its heap; what it builds (and what later dumps or
// destroys it, recursively) is cut at the bound.
template <typename Json>
absl::StatusOr<Json> ParseFlagJson(std::string_view flag, const std::string& path,
                                   const std::string& text) {
  bool too_deep = false;
  const typename Json::parser_callback_t bounded =
      [&too_deep](int depth, typename Json::parse_event_t /*event*/, Json& /*parsed*/) {
        if (depth > kMaxJsonFileDepth) too_deep = true;
        return depth <= kMaxJsonFileDepth;
      };
  Json parsed = Json::parse(text, bounded, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || too_deep) return NotFlagJson(flag, path, too_deep);
  return parsed;
}

}  // namespace cohost::tools
