// The one rule for a model path a network client names (LoadModel): it must
// lie under the operator's model root (`cohost serve --model-root DIR`), and
// the answer to a bad one says nothing about the server's files. Paths from
// flags and the configuration file are the operator's and are not checked here.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cohost::scheduler {

// The real path of `requested` (relative to `root`), or:
//   PERMISSION_DENIED when `root` is empty (loading over the API is off);
//   INVALID_ARGUMENT for an empty, absolute or overlong path, a NUL byte, or a
//     ".." component;
//   NOT_FOUND, in the same words whatever the cause, when it does not resolve
//     to an existing file or directory under the root (missing, unreadable, or
//     a symbolic link leading out of it).
// `root` must be an existing directory (its real path is taken here too).
absl::StatusOr<std::string> ResolveClientModelPath(const std::string& root,
                                                   std::string_view requested);

// `message` with the root's real path (and the separator after it) removed,
// so that loader errors about a client-named file do not show where the
// server keeps its models.
std::string WithoutRoot(const std::string& root, std::string_view message);

}  // namespace cohost::scheduler
