// The evhttp server: routing, keys, and the calls in flight.

#include "server/http/http_front_door.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random_id.h"
#include "common/status_macros.h"
#include "scheduler/admission.h"
#include "server/http/completion_call.h"
#include "server/http/connection_cap.h"
#include "server/http/loop_offload.h"
#include "server/http/openai_format.h"
#include "server/http/openai_request.h"
#include "server/http/openai_tools.h"
#include "server/http/reply.h"
#include "server/request_builder.h"

namespace cohost::server::http {
namespace {

// GET /v1/models/{id}: the rest of the path is a model's name.
constexpr std::string_view kModelPrefix = "/v1/models/";

std::optional<std::string_view> Header(evhttp_request* req, const char* name) {
  const char* v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
  if (v == nullptr) return std::nullopt;
  return std::string_view(v);
}

std::string NewResponseId(Endpoint endpoint) {
  return absl::StrFormat("%s-%016x", endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl",
                         RandomId64());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFrontDoor>> HttpFrontDoor::Start(const StreamDeps& deps,
                                                                    const HttpOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("the HTTP port must be in [0, 65535], got ", options.port));
  }
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("the HTTP connection cap must be at least 1");
  }
  if (!options.cors_origin.empty()) RETURN_IF_ERROR(ValidCorsOrigin(options.cors_origin));
  RETURN_IF_ERROR(PrepareLibevent());  // engine threads wake the loop

  std::unique_ptr<HttpFrontDoor> d(new HttpFrontDoor());
  d->deps_ = deps;
  d->options_ = options;
  d->started_unix_ = static_cast<int64_t>(std::time(nullptr));
  d->base_ = event_base_new();
  if (d->base_ == nullptr) return absl::InternalError("cannot create an event loop");
  d->http_ = evhttp_new(d->base_);
  evhttp_set_max_body_size(d->http_, static_cast<ev_ssize_t>(options.max_body_bytes));
  evhttp_set_max_headers_size(d->http_, static_cast<ev_ssize_t>(options.max_header_bytes));
  evhttp_set_timeout(d->http_, options.io_timeout_seconds);
  evhttp_set_default_content_type(d->http_, "application/json");
  // Every method a client may try on a resource reaches OnRequest, which
  // answers those an endpoint does not take with a JSON 405 and Allow
  // (libevent's own refusal is a 501 in HTML). TRACE and CONNECT stay
  // libevent's.
  evhttp_set_allowed_methods(d->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
  evhttp_set_gencb(d->http_, &HttpFrontDoor::OnRequest, d.get());
  if (options.tls.enabled()) {
    absl::StatusOr<auth::SslCtxPtr> ctx = auth::MakeServerSslContext(options.tls);
    if (!ctx.ok()) return ctx.status();
    d->ssl_ctx_ = *std::move(ctx);
  }
  ConnectionCapOptions cap;
  cap.max_connections = options.max_connections;
  cap.max_connections_per_client = options.max_connections_per_client;
  cap.cap_loopback = options.cap_loopback_clients;
  cap.send_buffer = options.socket_send_buffer;
  cap.request_timeout = options.request_timeout;
  cap.request_timeout_at_cap = options.request_timeout_at_cap;
  cap.tls = d->ssl_ctx_.get();
  ServerMetrics* metrics = deps.metrics;
  if (metrics != nullptr) {
    cap.on_count = [metrics](size_t open, size_t max) {
      metrics->SetConnections(ServerMetrics::Port::kHttp, static_cast<int64_t>(open),
                              static_cast<int64_t>(max));
    };
    cap.on_pause = [metrics](bool at_cap) {
      metrics->RecordAcceptPause(ServerMetrics::Port::kHttp, at_cap);
    };
    cap.on_per_client_refusal = [metrics] { metrics->RecordHttpConnectionPastItsShare(); };
  }
  HttpFrontDoor* door = d.get();
  cap.on_close = [door](evhttp_connection* conn) { door->OnConnectionClose(conn); };
  ASSIGN_OR_RETURN(d->cap_, ConnectionCap::Listen(d->base_, d->http_, options.host, options.port,
                                                  std::move(cap)));
  d->port_ = d->cap_->port();
  d->wake_ = event_new(d->base_, -1, 0, &HttpFrontDoor::OnWake, d.get());
  d->stop_check_ = evtimer_new(d->base_, &HttpFrontDoor::OnStopCheck, d.get());
  d->liveness_ = event_new(d->base_, -1, EV_PERSIST, &HttpFrontDoor::OnLivenessTick, d.get());
  const timeval tick = ToTimeval(options.liveness_interval);
  event_add(d->liveness_, &tick);
  d->waker_ = std::make_shared<Waker>(d->wake_);
  d->offload_ = std::make_unique<LoopOffload>(d->base_, options.prepare_threads);
  d->thread_ =
      std::thread([door = d.get()] { event_base_loop(door->base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  return d;
}

HttpFrontDoor::~HttpFrontDoor() { Stop(std::chrono::milliseconds(0)); }

void HttpFrontDoor::Stop(std::chrono::milliseconds grace) {
  if (stopped_ || base_ == nullptr) return;
  stopped_ = true;
  // A front door whose Start failed has no loop, and only some of its parts.
  if (thread_.joinable()) {
    // Published to the loop by event_active's lock.
    stop_deadline_ = std::chrono::steady_clock::now() + grace;
    event_active(stop_check_, EV_TIMEOUT, 0);
    thread_.join();
  }
  // The loop is gone: nothing runs callbacks any more. The preparing threads
  // end their jobs (whose requests nothing answers now) before the loop's
  // base goes.
  offload_.reset();
  if (waker_ != nullptr) waker_->Close();
  by_connection_.clear();
  if (cap_ != nullptr) cap_->Close();        // evhttp_free frees its listener first
  if (http_ != nullptr) evhttp_free(http_);  // closes every connection
  cap_.reset();
  for (event* e : {wake_, stop_check_, liveness_}) {
    if (e != nullptr) event_free(e);
  }
  event_base_free(base_);
  base_ = nullptr;
}

void HttpFrontDoor::OnStopCheck(int, short, void* self) {
  auto* d = static_cast<HttpFrontDoor*>(self);
  d->stopping_ = true;
  if ((!d->live_.empty() || !d->preparing_.empty()) &&
      std::chrono::steady_clock::now() < d->stop_deadline_) {
    timeval tick{0, 10'000};
    evtimer_add(d->stop_check_, &tick);
    return;
  }
  for (auto& [ptr, live] : d->live_) {
    live.call->Cancel();
    live.call->ReleaseModel();
  }
  d->live_.clear();
  d->by_connection_.clear();
  d->draining_.clear();
  for (auto& [connection, p] : d->preparing_) Abandon(*p);
  d->preparing_.clear();  // evhttp_free answers nothing: their connections close
  event_base_loopbreak(d->base_);
}

namespace {

// The client closed its side (its FIN arrived, whatever bytes of it are
// still unread: a pipelined request, TLS's close_notify), or the connection
// broke. evhttp reads nothing while a request is being answered, so it does
// not see this itself.
bool ClientLeft(evhttp_connection* connection) {
  pollfd p{bufferevent_getfd(evhttp_connection_get_bufferevent(connection)), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// Whether `req`'s body's end is ambiguous, so that another reader of the
// stream (a proxy) may frame the next request differently than evhttp did
// (RFC 9112 6.3, 6.1: smuggling): two lengths or codings, a length beside a
// coding, a coding on HTTP/1.0, a coding evhttp does not take as chunked (it
// compares the stored value, leading spaces dropped, to "chunked" exactly,
// and reads no body otherwise: a tab before it, say), or a body on a method
// evhttp reads none for (GET, HEAD, DELETE, OPTIONS: it would take the
// body's bytes for the next request).
bool AmbiguousFraming(evhttp_request* req) {
  int lengths = 0, codings = 0;
  bool empty_length = true, chunked = true;
  for (const evkeyval* h = evhttp_request_get_input_headers(req)->tqh_first; h != nullptr;
       h = h->next.tqe_next) {
    if (absl::EqualsIgnoreCase(h->key, "Content-Length")) {
      ++lengths;
      const std::string_view v = h->value;
      empty_length &= !v.empty() && v.find_first_not_of('0') == std::string_view::npos;
    } else if (absl::EqualsIgnoreCase(h->key, "Transfer-Encoding")) {
      ++codings;
      chunked &= absl::EqualsIgnoreCase(h->value, "chunked");
    }
  }
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  const bool reads_body =
      method == EVHTTP_REQ_POST || method == EVHTTP_REQ_PUT || method == EVHTTP_REQ_PATCH;
  const bool http10 = req->major == 1 && req->minor == 0;
  return lengths > 1 || codings > 1 || (lengths == 1 && codings == 1) || !chunked ||
         (codings == 1 && http10) || (!reads_body && (codings == 1 || !empty_length));
}

// HTTP/1.x is served, a later 1.x as 1.1 (RFC 9112, section 2.3); any other
// major version gets 505 and the connection closes. evhttp writes the
// request's own version in its reply's status line, so the reply is set to
// 1.1 first ("HTTP/0.1 404" or "HTTP/1.7 200" otherwise). True where the
// request is answered here.
bool RefusedVersion(evhttp_request* req) {
  // evhttp keeps them as chars (a version past 127 wraps): read unsigned.
  const int major = static_cast<unsigned char>(req->major);
  const int minor = static_cast<unsigned char>(req->minor);
  if (major == 1 && minor <= 1) return false;
  req->major = 1;
  req->minor = 1;
  if (major == 1) return false;
  evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
  SendJson(req, 505,
           ErrorBody(absl::InvalidArgumentError(absl::StrCat(
               "HTTP/", major, ".", minor, " is not supported: use HTTP/1.1 or HTTP/1.0"))));
  return true;
}

}  // namespace

void HttpFrontDoor::OnLivenessTick(int, short, void* self) {
  auto* d = static_cast<HttpFrontDoor*>(self);
  // Held: ending a call's reply may close its connection and Forget it from
  // inside ClientLeft.
  std::vector<std::shared_ptr<CompletionCall>> gone;
  for (const auto& [call, live] : d->live_) {
    if (ClientLeft(live.connection)) gone.push_back(live.call);
  }
  for (const std::shared_ptr<CompletionCall>& call : gone) {
    call->ClientLeft();
    d->Forget(call.get());
  }
  // Whole replies: no longer watched once under the bound; a new deadline
  // with each drain_progress_bytes drained; past their deadline, counted and their
  // connection shut (its close callback then ends it).
  const auto now = std::chrono::steady_clock::now();
  std::vector<evhttp_connection*> drained, stalled;
  for (auto& [connection, draining] : d->draining_) {
    const size_t unsent = UnsentBytes(connection);
    if (unsent <= d->deps_.limits.max_backlog_bytes) {
      drained.push_back(connection);
    } else if (unsent + d->deps_.limits.drain_progress_bytes <= draining.unsent) {
      draining.unsent = unsent;
      draining.deadline = now + d->deps_.limits.write_stall_timeout;
    } else if (now >= draining.deadline) {
      stalled.push_back(connection);
    }
  }
  for (evhttp_connection* connection : drained) d->draining_.erase(connection);
  for (evhttp_connection* connection : stalled) {
    d->draining_[connection].call->RecordSlowReader();
    d->draining_.erase(connection);
    ShutDown(connection);
  }
  // A request still being prepared has nothing to end: its connection goes
  // (the close callback forgets it, and its result is dropped).
  std::vector<evhttp_connection*> left;
  for (const auto& [connection, p] : d->preparing_) {
    if (ClientLeft(connection)) left.push_back(connection);
  }
  for (evhttp_connection* connection : left) evhttp_connection_free(connection);
}

void HttpFrontDoor::OnWake(int, short, void* self) {
  auto* d = static_cast<HttpFrontDoor*>(self);
  for (const std::shared_ptr<CompletionCall>& call : d->waker_->TakeAll()) {
    if (call->Pump()) d->Forget(call.get());
  }
}

size_t HttpFrontDoor::open_connections() const {
  return cap_ != nullptr ? cap_->open_connections() : 0;
}

void HttpFrontDoor::OnConnectionClose(evhttp_connection* conn) {
  draining_.erase(conn);
  if (auto it = preparing_.find(conn); it != preparing_.end()) {
    Abandon(*it->second);  // its request is freed with the connection
    preparing_.erase(it);
  }
  auto it = by_connection_.find(conn);
  if (it == by_connection_.end()) return;
  // Held while it ends (the call may outlive its entry meanwhile).
  const auto live = live_.find(it->second);
  if (live == live_.end()) return;
  const std::shared_ptr<CompletionCall> call = live->second.call;
  call->ClientGone();
  Forget(call.get(), /*closing=*/true);
}

void HttpFrontDoor::Forget(CompletionCall* call, bool closing) {
  auto it = live_.find(call);
  if (it == live_.end()) return;
  std::shared_ptr<CompletionCall> held = std::move(it->second.call);
  bool drains = false;
  // Only if it is still this call's (a kept-alive connection's next call
  // may have taken it since).
  if (auto c = by_connection_.find(it->second.connection);
      c != by_connection_.end() && c->second == call) {
    by_connection_.erase(c);
    const size_t unsent = closing ? 0 : UnsentBytes(it->second.connection);
    if (unsent > deps_.limits.max_backlog_bytes) {
      draining_[it->second.connection] = {
          std::chrono::steady_clock::now() + deps_.limits.write_stall_timeout, unsent, held};
      drains = true;
    }
  }
  live_.erase(it);
  held->ReleaseModel();  // here, on the loop thread, never on an engine's
  // Its tenant streams close now, or, for a reply past the backlog bound,
  // once it drains (the draining entry holds the call).
  if (!drains) held->CloseStreams();
}

void HttpFrontDoor::RecordError(const absl::Status& status, std::string_view model) {
  if (deps_.metrics != nullptr) {
    deps_.metrics->RecordError(model, absl::StatusCodeToString(status.code()));
  }
}

namespace {

// A list of header names (RFC 9110 tokens) and the commas and spaces between
// them, of a header's length: what a preflight's answer may echo.
bool HeaderNameList(std::string_view list) {
  if (list.empty() || list.size() > 1024) return false;
  return std::all_of(list.begin(), list.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == ',' ||
           c == ' ' || c == '.';
  });
}

}  // namespace

absl::Status ValidCorsOrigin(std::string_view origin) {
  if (origin == "*") return absl::OkStatus();
  const auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("--http-cors-origin: ", why));
  };
  std::string_view rest = origin;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return bad("expected \"*\" or an origin that starts with http:// or https://");
  }
  if (rest.empty() || rest.size() > 253 + 6) return bad("expected a host after the scheme");
  // Browsers send origins lower-case, without the scheme's default port.
  std::string_view host = rest, port;
  if (host.front() == '[') {  // an IPv6 address
    const size_t end = host.find(']');
    if (end == std::string_view::npos) return bad("an IPv6 host needs its closing ]");
    port = host.substr(end + 1);
    host = host.substr(1, end - 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
        })) {
      return bad("an IPv6 host is hex digits, colons and dots");
    }
  } else {
    const size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      port = host.substr(colon);
      host = host.substr(0, colon);
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::islower(static_cast<unsigned char>(c)) != 0 ||
                 std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-';
        })) {
      return bad("an origin is scheme://host[:port], the host lower-case, without a path");
    }
  }
  if (!port.empty()) {
    port.remove_prefix(1);  // the ':'
    int value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || error != std::errc() || end != port.data() + port.size() || value < 1 ||
        value > 65535 || port.front() == '0') {
      return bad("the port must be a number in [1, 65535]");
    }
    if ((value == 443 && origin.starts_with("https:")) ||
        (value == 80 && origin.starts_with("http:"))) {
      return bad("leave the scheme's default port out, as browsers do");
    }
  }
  return absl::OkStatus();
}

void HttpFrontDoor::OnRequest(evhttp_request* req, void* self) {
  auto* d = static_cast<HttpFrontDoor*>(self);
  // The request is in: its connection's read deadline stops until the reply
  // has been sent.
  d->cap_->RequestArrived(evhttp_request_get_connection(req));
  // evhttp reads a connection's next request only once the last reply is
  // all sent: its drain watch is over.
  d->draining_.erase(evhttp_request_get_connection(req));
  evhttp_request_set_on_complete_cb(req, &HttpFrontDoor::OnReplySent, d);
  const char* raw_path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  const std::string_view path = raw_path == nullptr ? "" : raw_path;
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  if (!d->options_.cors_origin.empty()) {
    // On every reply, errors included (a browser hides a reply without it).
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Access-Control-Allow-Origin", d->options_.cors_origin.c_str());
    evhttp_add_header(out, "Access-Control-Expose-Headers", "Retry-After");
  }
  if (RefusedVersion(req)) return;
  if (AmbiguousFraming(req)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    return SendError(req,
                     absl::InvalidArgumentError(
                         "the request's length is ambiguous: more than one Content-Length or "
                         "Transfer-Encoding, both, a coding other than chunked or on HTTP/1.0, "
                         "or a body on a method that takes none"),
                     0);
  }
  if (!d->options_.cors_origin.empty() && method == EVHTTP_REQ_OPTIONS) {  // a preflight
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    // The headers the page asked for (OpenAI's SDKs send their own), where
    // they are header names; else the ones this API reads.
    const char* asked =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Access-Control-Request-Headers");
    evhttp_add_header(out, "Access-Control-Allow-Headers",
                      asked != nullptr && HeaderNameList(asked)
                          ? asked
                          : "authorization, content-type, x-cohost-tenant");
    evhttp_add_header(out, "Access-Control-Max-Age", "600");
    evhttp_send_reply(req, 204, "No Content", nullptr);
    return;
  }
  const bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
  const bool post = method == EVHTTP_REQ_POST;
  if (path == "/v1/chat/completions" || path == "/v1/completions") {
    if (!post) return SendMethodNotAllowed(req, "POST");
    return d->HandleCompletion(
        req, static_cast<int>(path == "/v1/completions" ? Endpoint::kCompletions
                                                        : Endpoint::kChatCompletions));
  }
  if (path == "/v1/models" || path.starts_with(kModelPrefix)) {
    if (!get) return SendMethodNotAllowed(req, "GET, HEAD");
    return d->HandleModels(
        req, path == "/v1/models" ? std::nullopt : std::optional(path.substr(kModelPrefix.size())));
  }
  if (path == "/health") {
    if (!get) return SendMethodNotAllowed(req, "GET, HEAD");
    return d->HandleHealth(req);
  }
  SendError(req, absl::NotFoundError("no such endpoint"), 0);
}

void HttpFrontDoor::OnReplySent(evhttp_request* req, void* self) {
  static_cast<HttpFrontDoor*>(self)->cap_->RequestDone(evhttp_request_get_connection(req));
}

void HttpFrontDoor::HandleHealth(evhttp_request* req) {
  bool serving = false;
  if (!stopping_ && !deps_.router->draining() &&
      (!options_.grpc_accepting || options_.grpc_accepting())) {
    for (const scheduler::ModelSummary& m : deps_.router->ListModels()) serving |= m.serving;
  }
  SendJson(req, serving ? 200 : 503,
           serving ? R"({"status":"ok"})" : R"({"status":"unavailable"})");
}

void HttpFrontDoor::HandleModels(evhttp_request* req, std::optional<std::string_view> id) {
  absl::StatusOr<auth::Principal> caller =
      deps_.keys->Authenticate(Header(req, auth::kAuthorizationHeader), auth::Role::kUser);
  if (!caller.ok()) {
    RecordError(caller.status());
    return SendError(req, caller.status(), 0);
  }
  if (id) {
    // The rest of the path, percent-decoded ("org%2Fname" and "org/name"
    // alike); a name with a NUL in it names no model.
    const std::string escaped(*id);
    size_t size = 0;
    char* decoded = evhttp_uridecode(escaped.c_str(), /*decode_plus=*/0, &size);
    const std::string name = decoded != nullptr ? std::string(decoded, size) : escaped;
    std::free(decoded);
    const absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> model = deps_.router->Find(name);
    if (!model.ok()) return SendError(req, model.status(), 0);
    return SendJson(req, 200, ModelBody(name, started_unix_));
  }
  std::vector<std::string> names;
  for (const scheduler::ModelSummary& m : deps_.router->ListModels()) names.push_back(m.name);
  SendJson(req, 200, ModelListBody(names, started_unix_));
}

// One completion request on its way to the engine: what the loop thread
// read of it, then what a preparing thread made of it.
struct HttpFrontDoor::Preparing {
  enum State { kQueued, kRunning, kAbandoned };
  std::atomic<int> state{kQueued};  // kQueued -> kRunning (a thread), or -> kAbandoned (the loop)
  evhttp_request* req = nullptr;    // the loop thread's alone; freed if the connection closes
  evhttp_connection* connection = nullptr;
  Endpoint endpoint = Endpoint::kChatCompletions;
  runtime::Clock::time_point arrival;
  auth::Principal caller;
  std::optional<std::string> claimed_tenant;  // the header's
  std::string body;
  // Made by Prepare.
  absl::Status status;
  std::string model_name;             // "" until the request names a model that exists
  std::optional<std::string> tenant;  // set: a refusal counts against it too
  std::shared_ptr<scheduler::ServedModel> model;
  CompletionRequest parsed;
  runtime::GenerateRequest built;
};

void HttpFrontDoor::HandleCompletion(evhttp_request* req, int endpoint) {
  auto p = std::make_shared<Preparing>();
  p->arrival = runtime::Clock::now();
  // Keys first, so that an unknown caller learns nothing else.
  absl::StatusOr<auth::Principal> caller =
      deps_.keys->Authenticate(Header(req, auth::kAuthorizationHeader), auth::Role::kUser);
  absl::Status refused = caller.status();
  if (refused.ok() && (stopping_ || deps_.router->draining())) {
    refused = absl::UnavailableError("the server is shutting down; retry elsewhere");
  }
  if (!refused.ok()) {
    RecordError(refused);
    return SendError(req, refused, deps_.router->limits().retry_pushback_ms);
  }
  p->req = req;
  p->connection = evhttp_request_get_connection(req);
  p->endpoint = static_cast<Endpoint>(endpoint);
  p->caller = *std::move(caller);
  if (std::optional<std::string_view> claimed = Header(req, auth::kTenantHeader)) {
    p->claimed_tenant = std::string(*claimed);
  }
  evbuffer* in = evhttp_request_get_input_buffer(req);
  p->body.resize(evbuffer_get_length(in));
  evbuffer_remove(in, p->body.data(), p->body.size());
  preparing_[p->connection] = p;
  offload_->Run([this, p]() -> LoopOffload::Continuation {
    int queued = Preparing::kQueued;
    if (!p->state.compare_exchange_strong(queued, Preparing::kRunning)) return {};  // abandoned
    Prepare(*p);
    return [this, p] { Prepared(*p); };
  });
}

void HttpFrontDoor::Prepare(Preparing& p) const {
  if (options_.on_prepare) options_.on_prepare();
  absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(p.body, p.endpoint);
  p.body = std::string();
  if (!parsed.ok()) {
    p.status = parsed.status();
    return;
  }
  absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> model =
      deps_.router->Find(parsed->request.model());
  if (!model.ok()) {
    p.status = model.status();
    return;
  }
  p.model_name = (*model)->name();
  // The key decides the tenant; without keys, the header or the body's
  // `user` may name one.
  std::optional<std::string_view> claimed = p.claimed_tenant;
  if (!claimed && deps_.keys->empty() && parsed->user) claimed = *parsed->user;
  absl::StatusOr<std::string> tenant = auth::ResolveTenant(*deps_.keys, p.caller, claimed);
  if (!tenant.ok()) {
    p.status = tenant.status();
    return;
  }
  p.tenant = *tenant;
  // A chat's reasoning is split off unless the operator turned the parser
  // off (its JSON then follows the think block: JsonPhaseOf).
  parsed->request.set_split_reasoning(options_.call.split_reasoning &&
                                      parsed->endpoint == Endpoint::kChatCompletions);
  absl::StatusOr<runtime::GenerateRequest> built = BuildGenerateRequest(
      parsed->request, (*model)->tokenizer(), (*model)->request_limits(), &parsed->tools);
  if (!built.ok()) {
    p.status = InBodyTerms(built.status());
    return;
  }
  if (parsed->tools.fallback != ForcedFallback::kNone && deps_.metrics != nullptr) {
    deps_.metrics->RecordForcedCallFallback((*model)->name(),
                                            ForcedFallbackName(parsed->tools.fallback));
  }
  built->tenant = *std::move(tenant);
  p.model = *std::move(model);
  p.parsed = *std::move(parsed);
  p.built = *std::move(built);
}

void HttpFrontDoor::Abandon(Preparing& p) {
  int queued = Preparing::kQueued;
  if (p.state.compare_exchange_strong(queued, Preparing::kAbandoned)) p.body = std::string();
}

void HttpFrontDoor::Prepared(Preparing& p) {
  auto it = preparing_.find(p.connection);
  if (it == preparing_.end() || it->second.get() != &p) return;  // the client left
  preparing_.erase(it);
  if (p.status.ok() && (stopping_ || deps_.router->draining())) {
    p.status = absl::UnavailableError("the server is shutting down; retry elsewhere");
  }
  if (!p.status.ok()) {
    if (p.tenant && deps_.metrics != nullptr) {
      deps_.metrics->RecordTenantRefusal(*p.tenant, absl::StatusCodeToString(p.status.code()),
                                         scheduler::RefusalReason(p.status));
    }
    RecordError(p.status, p.model_name);
    return SendError(p.req, p.status, deps_.router->limits().retry_pushback_ms);
  }
  auto call = std::make_shared<CompletionCall>(p.req, deps_, waker_, offload_.get(), options_.call,
                                               p.arrival);
  // On failure the call has answered (and recorded) it.
  if (!call->Start(std::move(p.model), p.parsed, p.built, NewResponseId(p.parsed.endpoint)).ok()) {
    return;
  }
  CompletionCall* key = call.get();
  by_connection_[p.connection] = key;
  live_[key] = Live{std::move(call), p.connection};
}

}  // namespace cohost::server::http
