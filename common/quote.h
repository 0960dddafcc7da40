// Untrusted text (a tenant named by a client, operator text in a config, a
// model file's strings) quoted for an error message: escaped, so that
// control bytes and quotes cannot garble the message, and cut to
// `max_shown` bytes.
#pragma once

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cohost {

inline std::string Quote(absl::string_view s, size_t max_shown = 64) {
  const bool cut = s.size() > max_shown;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, max_shown)), cut ? "\"..." : "\"");
}

}  // namespace cohost
