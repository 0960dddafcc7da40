// The gRPC server object: cohost.v1.Inference, grpc.health.v1 (with the
// progress watchdog) and reflection on one port, with explicit transport
// limits and, in plaintext, cohost's own capped listener; and the
// drain-then-shutdown sequence that SIGTERM triggers.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "scheduler/router.h"
#include "server/auth/tls.h"
#include "server/connection_calls.h"
#include "server/generate_reactor.h"
#include "server/grpc_listener.h"
#include "server/health_service.h"
#include "server/health_watchdog.h"
#include "server/inference_service.h"
#include "server/metrics.h"

namespace cohost::server {

// "host:port", an IPv6 host in brackets: how addresses are written to gRPC
// and in the server's log.
std::string HostPort(const std::string& host, int port);

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: the OS picks a free port (see Server::port())

  // Transport limits.
  int max_receive_message_bytes = 4 << 20;  // a request: prompt text or ids, stop strings
  int max_concurrent_streams = 1024;        // per HTTP/2 connection
  // grpc.health.v1 Watch streams open at once, server-wide (the empty name
  // takes no key); past it a Watch is RESOURCE_EXHAUSTED.
  size_t max_health_watches = 16384;
  // Of them, from one client address (loopback clients aside unless
  // cap_loopback_clients): so that one client cannot take them all.
  size_t max_health_watches_per_client = 1024;
  int keepalive_time_ms = 60'000;     // ping idle connections this often...
  int keepalive_timeout_ms = 20'000;  // ...and drop them if no ack comes in this time
  bool keepalive_permit_without_calls = true;
  // Clients may ping this often without data; faster pings count as strikes.
  int min_recv_ping_interval_without_data_ms = 10'000;
  int max_ping_strikes = 2;
  // A connection with no call for this long is closed (GOAWAY; a client
  // reconnects on its next call), so that connections opened and left do
  // not hold the process's descriptors for good.
  int max_connection_idle_ms = 600'000;
  // Plaintext connections are accepted by cohost (server/grpc_listener.h):
  // at most this many (at the cap new ones wait in the kernel's backlog),
  // and each must start speaking HTTP/2 within the preface timeout. With TLS,
  // gRPC's own listener takes them: no cap, and the timeout bounds its TLS
  // handshake.
  size_t max_connections = 4096;
  // Of them, at most this many from one client address, loopback clients
  // (a proxy beside the server) aside; more are closed at once. 0: no cap.
  size_t max_connections_per_client = 2048;
  // At the cap, a new connection takes the room of one with no call for at
  // least this long (GrpcListenerOptions::shed_idle_after).
  std::chrono::milliseconds shed_idle_after{5'000};
  bool cap_loopback_clients = false;  // tests: count loopback clients too
  std::chrono::milliseconds preface_timeout{10'000};

  StreamLimits stream;

  // With keys, every call but reflection and health's "" needs one (auth/;
  // per-model health names: server/health_service.h).
  auth::ApiKeys api_keys;
  // Off unless it holds a certificate; with a client CA, mutual TLS.
  auth::TlsConfig tls;

  // LoadModel may name files under this directory only (relative paths);
  // empty: LoadModel may only (re)load `configured_models` by name.
  // Checked by scheduler::ResolveClientModelPath.
  std::string model_root;
  // The models of the server's configuration (flags, --config): LoadModel of
  // one of these names with an empty path (or its own) loads it as configured,
  // with or without a model root.
  std::vector<scheduler::ModelSpec> configured_models;

  // Health: how often engines are checked, and how long one may hold work
  // without finishing a step before it is NOT_SERVING.
  std::chrono::milliseconds health_interval{500};
  std::chrono::milliseconds stall_timeout{10'000};
  // With TLS (gRPC's own listener): connections waiting this long in the
  // port's accept queue mean it no longer accepts (AcceptWatch); the server
  // is then NOT_SERVING (Server::accepting).
  std::chrono::milliseconds accept_stall_timeout{10'000};
  // After the drain: how long streams whose request ended may take to write
  // their last messages before the server cancels them.
  std::chrono::milliseconds shutdown_grace{2'000};
};

class Server {
 public:
  // Router and metrics must outlive the server.
  static absl::StatusOr<std::unique_ptr<Server>> Start(scheduler::Router* router,
                                                       ServerMetrics* metrics,
                                                       const ServerOptions& options);
  ~Server();  // shuts down at once if Drain did not run

  int port() const { return port_; }
  const std::string& address() const { return address_; }  // host:port as bound
  // Whether the port accepts connections (with TLS, gRPC's listener may
  // stop for good: AcceptWatch); any thread. The other front doors' health
  // follows it.
  bool accepting() const { return watchdog_->accepting(); }

  // Graceful stop: health goes NOT_SERVING everywhere, the Router refuses new
  // requests (UNAVAILABLE), in-flight requests get up to drain_timeout to
  // finish, then the rest are aborted and the server shuts down. Returns the
  // number of requests aborted. Safe to call once, from any thread.
  int Drain(std::chrono::milliseconds drain_timeout);

 private:
  Server() = default;

  scheduler::Router* router_ = nullptr;
  ServerOptions options_;
  int port_ = 0;
  std::string address_;
  // Destroyed in reverse: the grpc::Server goes before the services and the
  // watchdog they call.
  std::unique_ptr<HealthWatchdog> watchdog_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<HealthService> health_;
  // Plaintext: the calls on each connection, which the listener sheds by
  // (its interceptors end with the grpc::Server's calls).
  std::unique_ptr<ConnectionCalls> connection_calls_;
  std::unique_ptr<grpc::Server> server_;
  // Plaintext: the port (stopped before the grpc::Server shuts down).
  std::unique_ptr<GrpcListener> listener_;
  bool stopped_ = false;
};

}  // namespace cohost::server
