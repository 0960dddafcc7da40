// Protobuf's and gRPC core's log lines, limited (library_logs.h).

#include "server/library_logs.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace cohost::server {
namespace {

LogRateLimit& Limit() {
  static LogRateLimit* limit = new LogRateLimit(std::chrono::seconds(10), 10);  // never destroyed
  return *limit;
}

void Write(char level, const char* file, int line, const char* message, bool always = false) {
  std::optional<int64_t> dropped = Limit().Admit(LogRateLimit::Clock::now());
  if (!dropped && !always) return;
  dropped = dropped.value_or(0);
  if (*dropped > 0) {
    std::fprintf(stderr, "%c %s:%d] %s (and %lld more library log lines dropped)\n", level, file,
                 line, message, static_cast<long long>(*dropped));
  } else {
    std::fprintf(stderr, "%c %s:%d] %s\n", level, file, line, message);
  }
}

void ProtobufLine(google::protobuf::LogLevel level, const char* file, int line,
                  const std::string& message) {
  // A fatal one is protobuf's own invariant: it aborts after this returns.
  const bool fatal = level == google::protobuf::LOGLEVEL_FATAL;
  Write(fatal                                       ? 'F'
        : level >= google::protobuf::LOGLEVEL_ERROR ? 'E'
                                                    : 'W',
        file, line, message.c_str(), fatal);
}

void GrpcLine(gpr_log_func_args* args) {
  const char level = args->severity == GPR_LOG_SEVERITY_ERROR  ? 'E'
                     : args->severity == GPR_LOG_SEVERITY_INFO ? 'I'
                                                               : 'D';
  // GPR_ASSERT's line comes just before its abort.
  const bool assertion = std::string_view(args->message).starts_with("assertion failed");
  Write(level, args->file, args->line, args->message, assertion);
}

}  // namespace

std::optional<int64_t> LogRateLimit::Admit(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!window_ || now - *window_ >= interval_) {
    window_ = now;
    written_ = 0;
  }
  if (written_ >= burst_) {
    ++dropped_;
    return std::nullopt;
  }
  ++written_;
  const int64_t dropped = dropped_;
  dropped_ = 0;
  return dropped;
}

void LimitLibraryLogs() {
  google::protobuf::SetLogHandler(&ProtobufLine);
  // Someone tracing gRPC (GRPC_VERBOSITY, GRPC_TRACE) wants all of it.
  if (std::getenv("GRPC_VERBOSITY") == nullptr && std::getenv("GRPC_TRACE") == nullptr) {
    gpr_set_log_function(&GrpcLine);
  }
}

}  // namespace cohost::server
