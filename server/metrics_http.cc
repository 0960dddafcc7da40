// MetricsHttpServer over cpp-httplib: binds first (so port 0 resolves and
// errors surface in Start), then runs the accept loop on its own thread.

#include "server/metrics_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"

namespace cohost::server {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4";
constexpr int kWorkerThreads = 2;  // scrapes are rare and cheap

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& host,
                                                                            int port,
                                                                            RenderFn render,
                                                                            HealthFn healthy) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("metrics port %d is outside [0, 65535]", port));
  }
  if (render == nullptr) return absl::InvalidArgumentError("no metrics render function");

  std::unique_ptr<MetricsHttpServer> self(new MetricsHttpServer());
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *self->server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the
  // same port and silently take half the scrapes; REUSEADDR alone keeps quick
  // restarts working and makes a taken port an error.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s.set_payload_max_length(64 << 10);  // GET only: nothing large is ever legitimate
  s.set_read_timeout(5);
  s.set_write_timeout(5);
  s.set_keep_alive_timeout(5);
  s.Get("/metrics", [render = std::move(render)](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), kMetricsContentType);
  });
  s.Get("/healthz",
        [healthy = std::move(healthy)](const httplib::Request&, httplib::Response& res) {
          const bool ok = healthy == nullptr || healthy();
          res.status = ok ? 200 : 503;
          res.set_content(ok ? "ok\n" : "not serving\n", "text/plain");
        });

  if (port == 0) {
    port = s.bind_to_any_port(host);
    if (port < 0) {
      return absl::UnavailableError(
          absl::StrFormat("metrics server: cannot listen on %s (any port)", host));
    }
  } else if (!s.bind_to_port(host, port)) {
    return absl::UnavailableError(
        absl::StrFormat("metrics server: cannot listen on %s:%d", host, port));
  }
  self->port_ = port;
  auto exited = std::make_shared<std::atomic<bool>>(false);
  self->thread_ = std::thread([&s, exited] {
    s.listen_after_bind();
    exited->store(true);
  });
  // stop() only takes effect once the accept loop runs, so Start returns only
  // then: a Stop right after Start can never miss it.
  while (!s.is_running()) {
    if (exited->load()) {
      self->Stop();
      return absl::InternalError("metrics server: the accept loop ended at once");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return self;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cohost::server
