// The /metrics endpoint: a small HTTP server on its own port, apart from the
// gRPC port, that answers GET /metrics with a Prometheus text page and GET
// /healthz with liveness. One libevent loop thread serves every connection,
// so a client that sends its request slowly holds no thread; the
// connections are capped, and each lives at most a few seconds
// (http::ConnectionCap), so such clients cannot keep scrapes out either.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_request;

namespace cohost::server {
namespace http {
class ConnectionCap;
}

struct MetricsHttpOptions {
  size_t max_connections = 64;  // scrapers and probes: a handful
  // A connection still open this long after it was accepted is closed.
  std::chrono::milliseconds max_connection_age{10'000};
  int io_timeout_seconds = 5;  // a stalled read or write
};

class MetricsHttpServer {
 public:
  using RenderFn = std::function<std::string()>;  // the /metrics body
  using HealthFn = std::function<bool()>;         // /healthz: 200 when true, else 503

  // Listens on host:port (port 0: a free port, see port()) and serves until
  // Stop(). UNAVAILABLE when the address cannot be bound; INVALID_ARGUMENT for
  // a port outside [0, 65535] or no render function. render (and healthy, when
  // given) run on the server's loop thread and must be thread-safe.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, RenderFn render, HealthFn healthy = nullptr,
      const MetricsHttpOptions& options = {});
  ~MetricsHttpServer();  // Stop()

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  // Connections open now (any thread; for tests).
  size_t open_connections() const;
  // Closes the listening socket and every connection, and joins the loop.
  // Idempotent.
  void Stop();

 private:
  MetricsHttpServer() = default;
  static void OnRequest(evhttp_request* req, void* self);
  static void OnStop(int, short, void* self);

  RenderFn render_;
  HealthFn healthy_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* stop_ = nullptr;
  std::unique_ptr<http::ConnectionCap> cap_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cohost::server
