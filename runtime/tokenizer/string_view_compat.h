// Debian's Abseil is built with its own absl::string_view (not an alias of
// std::string_view); this converts at the few places our std::string_view
// meets Abseil's string functions and heterogeneous hash-map lookups.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace cohost::runtime {

inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace cohost::runtime
