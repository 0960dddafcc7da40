// The one rule for a model path a network client names (LoadModel): it must
// lie under the operator's model root (`cohost serve --model-root DIR`), and
// the answer to a bad one says nothing about the server's files. Paths from
// flags and the configuration file are the operator's and are not checked here.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cohost::scheduler {

// A file's path as given, from the operator or a client: non-empty, no NUL
// (which would silently cut it short where it is opened), at most
// kMaxModelPathLength bytes. INVALID_ARGUMENT, calling it `what`, otherwise.
absl::Status CheckFilePath(std::string_view file, std::string_view what = "the path");

// The real path of `requested` (relative to `root`, or absolute), or:
//   PERMISSION_DENIED when `root` is empty (loading by path over the API is
//     off; the server's configured models still load by name);
//   INVALID_ARGUMENT for an empty or overlong path, or a NUL byte
//     (CheckFilePath, "the model path");
//   PERMISSION_DENIED, in the same words whatever the cause, when it does not
//     resolve to an existing file or directory under the root (outside it, a
//     ".." component, a symbolic link out of it, missing, unreadable), so that
//     the answer says nothing about what exists on the server.
// `root` must be an existing directory (its real path is taken here too).
absl::StatusOr<std::string> ResolveClientModelPath(const std::string& root,
                                                   std::string_view requested);

// `message` with the root's real path (and the separator after it) removed,
// so that loader errors about a client-named file do not show where the
// server keeps its models.
std::string WithoutRoot(const std::string& root, std::string_view message);

// `message` with a model's `path` (as configured, and its real path) shown
// as its last component only: what a load failure tells a client (a failed
// model's requests, its state for a user key), since the operator's paths
// are not the client's to see. Admins see the reason whole.
std::string WithoutModelPath(std::string_view message, const std::string& path);

}  // namespace cohost::scheduler
