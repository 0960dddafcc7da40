// The /metrics endpoint: a small HTTP server on its own port (cpp-httplib)
// that answers GET /metrics with a Prometheus text page and GET /healthz with
// liveness, on two worker threads, apart from the gRPC port.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace cohost::server {

class MetricsHttpServer {
 public:
  using RenderFn = std::function<std::string()>;  // the /metrics body
  using HealthFn = std::function<bool()>;         // /healthz: 200 when true, else 503

  // Listens on host:port (port 0: a free port, see port()) and serves until
  // Stop(). UNAVAILABLE when the address cannot be bound; INVALID_ARGUMENT for
  // a port outside [0, 65535] or no render function. render (and healthy, when
  // given) run on the server's threads and must be thread-safe.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                  RenderFn render,
                                                                  HealthFn healthy = nullptr);
  ~MetricsHttpServer();  // Stop()

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  // Closes the listening socket, finishes requests being served, joins.
  // Idempotent.
  void Stop();

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cohost::server
