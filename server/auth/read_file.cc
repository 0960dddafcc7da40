// Bounded whole-file reads.

#include "server/auth/read_file.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace cohost::server::auth {

absl::StatusOr<std::string> ReadSmallFile(std::string_view what, const std::string& path,
                                          size_t max_bytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    // A directory opens, and reads as empty. (A pipe is read: --api-key-file
    // <(vault ...).)
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " ", path, ": a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat(std::string(what), " ", path, ": cannot be read"));
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " ", path, ": over ", max_bytes, " bytes"));
  }
  return text;
}

}  // namespace cohost::server::auth
