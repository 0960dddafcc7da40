// MetricsHttpServer on libevent's evhttp: binds first (so port 0 resolves and
// errors surface in Start), then runs the loop on its own thread.

#include "server/metrics_http.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/http/connection_cap.h"
#include "server/http/whole_reply.h"

namespace cohost::server {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4";

// Every reply closes its connection: a scraper's next request comes on a
// new one, so the maximum age (ConnectionCap) only ever ends a slow client,
// never a reply being written.
void Reply(evhttp_request* req, int code, const char* reason, const char* type,
           std::string_view body) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", type);
  evhttp_add_header(headers, "Connection", "close");
  http::SendWholeReply(req, code, reason, body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, RenderFn render, HealthFn healthy,
    const MetricsHttpOptions& options) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("metrics port %d is outside [0, 65535]", port));
  }
  if (render == nullptr) return absl::InvalidArgumentError("no metrics render function");
  RETURN_IF_ERROR(http::PrepareLibevent());

  std::unique_ptr<MetricsHttpServer> self(new MetricsHttpServer());
  self->render_ = std::move(render);
  self->healthy_ = std::move(healthy);
  self->base_ = event_base_new();
  if (self->base_ == nullptr) return absl::InternalError("metrics server: no event loop");
  self->http_ = evhttp_new(self->base_);
  if (self->http_ == nullptr) return absl::InternalError("metrics server: no HTTP server");
  // GET only: nothing large is ever legitimate.
  evhttp_set_max_body_size(self->http_, 64 << 10);
  evhttp_set_max_headers_size(self->http_, 16 << 10);
  evhttp_set_timeout(self->http_, options.io_timeout_seconds);
  evhttp_set_allowed_methods(self->http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(self->http_, &MetricsHttpServer::OnRequest, self.get());
  http::ConnectionCapOptions cap;
  cap.name = "metrics server";
  cap.max_connections = options.max_connections;
  cap.max_age = options.max_connection_age;
  ASSIGN_OR_RETURN(self->cap_, http::ConnectionCap::Listen(self->base_, self->http_, host, port,
                                                           std::move(cap)));
  self->port_ = self->cap_->port();
  self->stop_ = event_new(self->base_, -1, 0, &MetricsHttpServer::OnStop, self.get());
  if (self->stop_ == nullptr) return absl::InternalError("metrics server: no stop event");
  self->thread_ =
      std::thread([base = self->base_] { event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY); });
  return self;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

// Not while Stop runs on another thread (it resets cap_).
size_t MetricsHttpServer::open_connections() const {
  return cap_ != nullptr ? cap_->open_connections() : 0;
}

void MetricsHttpServer::Stop() {
  if (base_ == nullptr) return;
  if (thread_.joinable()) {
    event_active(stop_, EV_TIMEOUT, 0);  // thread-safe: the base has locks
    thread_.join();
  }
  // The loop is gone: nothing runs callbacks any more.
  if (cap_ != nullptr) cap_->Close();        // evhttp_free frees its listener first
  if (http_ != nullptr) evhttp_free(http_);  // closes every connection
  cap_.reset();
  if (stop_ != nullptr) event_free(stop_);
  event_base_free(base_);
  base_ = nullptr;
  http_ = nullptr;
  stop_ = nullptr;
}

void MetricsHttpServer::OnStop(int, short, void* self) {
  event_base_loopbreak(static_cast<MetricsHttpServer*>(self)->base_);
}

void MetricsHttpServer::OnRequest(evhttp_request* req, void* self) {
  auto* s = static_cast<MetricsHttpServer*>(self);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const std::string_view p = path != nullptr ? path : "";
  if (p == "/metrics") {
    Reply(req, HTTP_OK, "OK", kMetricsContentType, s->render_());
    return;
  }
  if (p == "/healthz") {
    const bool ok = s->healthy_ == nullptr || s->healthy_();
    Reply(req, ok ? HTTP_OK : HTTP_SERVUNAVAIL, ok ? "OK" : "Service Unavailable", "text/plain",
          ok ? "ok\n" : "not serving\n");
    return;
  }
  Reply(req, HTTP_NOTFOUND, "Not Found", "text/plain", "not found\n");
}

}  // namespace cohost::server
