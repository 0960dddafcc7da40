// What the libraries under the server write to the log when a client sends
// something malformed (protobuf: a string field that is not UTF-8; gRPC
// core: a header it cannot parse), one line a request: limited, so that a
// client cannot fill the operator's log, with a count of what was dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace cohost::server {

// At most `burst` lines in each window of `interval` (from the first line
// after the last window); the lines past them are counted.
class LogRateLimit {
 public:
  using Clock = std::chrono::steady_clock;
  LogRateLimit(Clock::duration interval, int burst) : interval_(interval), burst_(burst) {}

  // Whether a line at `now` may be written: the lines dropped since the last
  // one written (0 or more), or nullopt to drop this one. Thread-safe.
  std::optional<int64_t> Admit(Clock::time_point now);

 private:
  const Clock::duration interval_;
  const int burst_;
  std::mutex mu_;
  std::optional<Clock::time_point> window_;  // its start; guarded by mu_
  int written_ = 0;                          // in the window; guarded by mu_
  int64_t dropped_ = 0;                      // guarded by mu_
};

// Routes protobuf's and gRPC core's log lines to stderr through one
// LogRateLimit of 10 lines in 10 seconds; a protobuf FATAL line and a gRPC
// assertion (both end the process) are always written, and gRPC's lines
// are left alone while GRPC_VERBOSITY or GRPC_TRACE asks for them. Call once at
// start-up, before any server or channel exists (neither library's setter
// is thread-safe).
void LimitLibraryLogs();

}  // namespace cohost::server
