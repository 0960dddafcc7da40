// Reading a small operator-named file (a key file, a PEM) whole, without
// reading more than a bound of it. Errors begin with `what` (the flag, or
// what the file is) and name the path.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cohost::server::auth {

// NOT_FOUND when it cannot be opened; INVALID_ARGUMENT when it holds more than
// max_bytes.
absl::StatusOr<std::string> ReadSmallFile(std::string_view what, const std::string& path,
                                          size_t max_bytes);

}  // namespace cohost::server::auth
