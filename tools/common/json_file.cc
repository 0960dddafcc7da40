// A flag's JSON file, read and parsed within bounds. See json_file.h.

#include "tools/common/json_file.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace cohost::tools {
namespace {

absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::string> ReadFlagFile(std::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return absl::NotFoundError(absl::StrCat(View(flag), " ", path, ": cannot be read"));
  }
  std::string text;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxJsonFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(View(flag), " ", path, ": over ", kMaxJsonFileBytes >> 20, " MiB"));
    }
  }
  return text;
}

absl::Status NotFlagJson(std::string_view flag, const std::string& path, bool too_deep) {
  return absl::InvalidArgumentError(
      absl::StrCat(View(flag), " ", path, ": not JSON", too_deep ? " (nested too deep)" : ""));
}

}  // namespace cohost::tools
