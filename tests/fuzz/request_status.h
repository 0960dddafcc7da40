// What a request target holds a built request's answer to: OK, or an error
// that is the client's (INVALID_ARGUMENT, FAILED_PRECONDITION for a chat
// the model cannot format, OUT_OF_RANGE past its context) and names no file
// of the server's.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "tests/fuzz/fuzz_target.h"

namespace cohost::fuzz {

inline void CheckClientError(const absl::Status& status, const std::string& model_path) {
  if (status.ok()) return;
  FUZZ_CHECK(absl::IsInvalidArgument(status) || absl::IsFailedPrecondition(status) ||
                 absl::IsOutOfRange(status),
             "%s", status.ToString().c_str());
  // The model's folder (absolute, or however COHOST_FUZZ_MODEL names it).
  const std::string dir = model_path.substr(0, model_path.rfind('/') + 1);
  FUZZ_CHECK(dir.empty() || status.message().find(dir) == std::string::npos,
             "names a server path: %s", status.ToString().c_str());
}

}  // namespace cohost::fuzz
