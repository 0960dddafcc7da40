#include "scheduler/model_path.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "scheduler/model_config_file.h"

namespace cohost::scheduler {
namespace {

// realpath(3), or "" when it fails.
std::string RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&free)> resolved(realpath(path.c_str(), nullptr), &free);
  return resolved == nullptr ? std::string() : std::string(resolved.get());
}

}  // namespace

absl::Status CheckFilePath(std::string_view file, std::string_view noun) {
  const absl::string_view what(noun.data(), noun.size());
  if (file.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (file.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL byte"));
  }
  if (file.size() > kMaxModelPathLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", file.size(), " bytes long; at most ", kMaxModelPathLength, " are allowed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveClientModelPath(const std::string& root,
                                                   std::string_view requested) {
  if (root.empty()) {
    return absl::PermissionDeniedError(
        "loading models by path over the API is off (the operator enables it with --model-root "
        "DIR); the server's configured models load by name with an empty path");
  }
  if (absl::Status s = CheckFilePath(requested, "the model path"); !s.ok()) return s;
  const absl::string_view path(requested.data(), requested.size());
  // Outside the root, through "..", through a symbolic link out of it, or
  // missing: one answer, so that it tells nothing about what exists.
  const absl::Status denied = absl::PermissionDeniedError(absl::StrCat(
      "\"", absl::CHexEscape(path.substr(0, 256)), "\" is not a model under the model root"));
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return denied;
  }
  const std::string real_root = RealPath(root);
  if (real_root.empty()) return denied;  // the operator's root went away
  const std::string real =
      RealPath(path.front() == '/' ? std::string(path) : absl::StrCat(real_root, "/", path));
  // (The root "/" holds every path: its prefix is itself.)
  const std::string prefix = real_root == "/" ? real_root : real_root + "/";
  if (real.empty() || real.rfind(prefix, 0) != 0) return denied;
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    return denied;
  }
  return real;
}

std::string WithoutModelPath(std::string_view message, const std::string& path) {
  std::string out(message);
  std::string_view trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  if (trimmed.empty()) return out;
  const size_t slash = trimmed.rfind('/');
  const std::string last(slash == std::string_view::npos ? trimmed : trimmed.substr(slash + 1));
  // The real path and the absolute one first: they may contain the
  // configured one (a relative path), whose directories would then stay.
  std::error_code ec;
  const std::string absolute =
      std::filesystem::absolute(std::filesystem::path(std::string(trimmed)), ec)
          .lexically_normal()
          .string();
  for (const std::string& shown :
       {RealPath(std::string(trimmed)), ec ? std::string() : absolute, std::string(trimmed)}) {
    if (!shown.empty() && shown != last) out = absl::StrReplaceAll(out, {{shown, last}});
  }
  return out;
}

std::string WithoutRoot(const std::string& root, std::string_view message) {
  const std::string real_root = RealPath(root);
  std::string out(message);
  // The root "/" holds every path: stripping it would mangle each one.
  if (real_root.empty() || real_root == "/") return out;
  return absl::StrReplaceAll(out, {{real_root + "/", ""}, {real_root, "<model root>"}});
}

}  // namespace cohost::scheduler
