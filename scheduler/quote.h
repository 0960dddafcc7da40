// Untrusted text (a tenant named by a client, operator text in a config)
// quoted for an error message: escaped, so that control bytes and quotes
// cannot garble the message, and cut to 64 bytes.
#pragma once

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cohost::scheduler {

inline std::string Quote(absl::string_view s) {
  constexpr size_t kMaxShown = 64;
  const bool cut = s.size() > kMaxShown;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMaxShown)), cut ? "\"..." : "\"");
}

}  // namespace cohost::scheduler
