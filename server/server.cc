// Builds and runs the gRPC server; drains it on request.

#include "server/server.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace cohost::server {

std::string HostPort(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return ipv6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

namespace {

void ApplyLimits(const ServerOptions& o, grpc::ServerBuilder& b) {
  b.SetMaxReceiveMessageSize(o.max_receive_message_bytes);
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, o.keepalive_time_ms);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o.keepalive_timeout_ms);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                       o.keepalive_permit_without_calls ? 1 : 0);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                       o.min_recv_ping_interval_without_data_ms);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, o.max_ping_strikes);
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, o.max_connection_idle_ms);
  // With TLS, gRPC's listener: its handshake's time limit (else 120 s).
  b.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                       static_cast<int>(o.preface_timeout.count()));
}

GrpcListenerOptions ListenerOptions(const ServerOptions& o, ServerMetrics* metrics,
                                    const ConnectionCalls* calls) {
  GrpcListenerOptions l;
  l.use_of = [calls](int fd) { return calls->UseOf(fd); };
  l.shed_idle_after = o.shed_idle_after;
  l.max_connections = o.max_connections;
  l.max_connections_per_client = o.max_connections_per_client;
  l.cap_loopback = o.cap_loopback_clients;
  l.preface_timeout = o.preface_timeout;
  if (metrics == nullptr) return l;
  using Port = ServerMetrics::Port;
  l.on_count = [metrics](size_t open, size_t max) {
    metrics->SetConnections(Port::kGrpc, static_cast<int64_t>(open), static_cast<int64_t>(max));
  };
  l.on_pause = [metrics](bool at_cap) { metrics->RecordAcceptPause(Port::kGrpc, at_cap); };
  l.on_drop = [metrics](std::string_view reason) { metrics->RecordGrpcConnectionDropped(reason); };
  return l;
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const auth::TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls.mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({tls.private_key_pem, tls.cert_chain_pem});
  options.pem_root_certs = tls.client_ca_pem;
  return grpc::SslServerCredentials(options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(scheduler::Router* router,
                                                      ServerMetrics* metrics,
                                                      const ServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be in [0, 65535], got ", options.port));
  }
  std::unique_ptr<Server> s(new Server());
  s->router_ = router;
  s->options_ = options;

  // Process-wide switches, read when the builder is created. Health is
  // cohost's own service (server/health_service.h), not gRPC's default.
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  // The watchdog exists before the service can call it; it starts once the
  // server (and so its health service) does.
  s->watchdog_ =
      std::make_unique<HealthWatchdog>(router, options.health_interval, options.stall_timeout);
  StreamDeps deps{router, metrics, &s->options_.api_keys, options.stream};
  s->service_ =
      std::make_unique<InferenceService>(deps, options.model_root, options.configured_models,
                                         [watchdog = s->watchdog_.get()] { watchdog->Poke(); });

  grpc::ServerBuilder builder;
  const std::string requested = HostPort(options.host, options.port);
  int bound_port = 0;
  if (options.tls.enabled()) {
    builder.AddListeningPort(requested, Credentials(options.tls), &bound_port);
  } else {
    s->connection_calls_ = std::make_unique<ConnectionCalls>();
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counters;
    counters.push_back(s->connection_calls_->InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(counters));
    absl::StatusOr<std::unique_ptr<GrpcListener>> listener = GrpcListener::Bind(
        options.host, options.port, ListenerOptions(options, metrics, s->connection_calls_.get()));
    if (!listener.ok()) return listener.status();
    s->listener_ = *std::move(listener);
    bound_port = s->listener_->port();
  }
  ApplyLimits(options, builder);
  builder.RegisterService(s->service_.get());
  s->health_ = std::make_unique<HealthService>(
      &s->options_.api_keys, s->options_.max_health_watches,
      s->options_.max_health_watches_per_client, s->options_.cap_loopback_clients);
  builder.RegisterService(s->health_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", requested));
  }
  s->port_ = bound_port;
  s->address_ = HostPort(options.host, bound_port);
  if (s->listener_ != nullptr) s->listener_->Start(s->server_.get());

  if (options.tls.enabled()) s->watchdog_->WatchAccepts(bound_port, options.accept_stall_timeout);
  s->watchdog_->Start(s->health_.get());
  return s;
}

Server::~Server() {
  if (watchdog_) watchdog_->Stop();  // it uses the health service
  if (listener_) listener_->Stop();  // it hands connections to the server
  if (stopped_ || server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

int Server::Drain(std::chrono::milliseconds drain_timeout) {
  if (stopped_) return 0;
  stopped_ = true;
  watchdog_->ShutdownHealth();
  router_->StartDraining();
  const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
  while (router_->num_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int aborted = router_->num_in_flight();
  if (aborted > 0) router_->AbortAll();  // their streams end with UNAVAILABLE
  // Streams still writing (or health watches) get a grace period, then are
  // cancelled. New connections stop here, as gRPC's own listener's would.
  if (listener_) listener_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace);
  server_->Wait();
  return aborted;
}

}  // namespace cohost::server
