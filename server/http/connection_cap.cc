// ConnectionCap: evhttp's bufferevent factory, close callbacks and the
// listener's pauses.

#include "server/http/connection_cap.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/client_address.h"
#include "server/socket_port.h"

namespace cohost::server::http {
namespace {

// evhttp's factory for each new connection's bufferevent, with TLS: an
// OpenSSL one in accepting state (evhttp gives it the socket).
bufferevent* MakeTlsBufferevent(event_base* base, SSL_CTX* ssl_ctx) {
  SSL* ssl = SSL_new(ssl_ctx);
  if (ssl == nullptr) return nullptr;
  bufferevent* bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
  // Clients that close without a TLS close_notify are the norm.
  if (bev != nullptr) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

// The listener's error callback gets evhttp's argument, not ours: the cap
// that owns each listener.
std::mutex caps_mu;
absl::flat_hash_map<evconnlistener*, ConnectionCap*>& Caps() {
  static auto* caps = new absl::flat_hash_map<evconnlistener*, ConnectionCap*>();
  return *caps;
}

}  // namespace

absl::Status PrepareLibevent() {
  static const int threads_ok = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return evthread_use_pthreads();
  }();
  if (threads_ok != 0) return absl::InternalError("libevent has no pthreads support");
  return absl::OkStatus();
}

timeval ToTimeval(std::chrono::microseconds d) {
  return timeval{static_cast<time_t>(d.count() / 1'000'000),
                 static_cast<suseconds_t>(d.count() % 1'000'000)};
}

ConnectionCap::AgeTimer::~AgeTimer() {
  if (timer != nullptr) event_free(timer);
}

absl::StatusOr<std::unique_ptr<ConnectionCap>> ConnectionCap::Listen(event_base* base, evhttp* http,
                                                                     const std::string& host,
                                                                     int port,
                                                                     ConnectionCapOptions options) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": port ", port, " is outside [0, 65535]"));
  }
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": the connection cap must be at least 1"));
  }
  if (options.max_age.count() > 0 && options.request_timeout.count() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": a maximum age or a request timeout, not both"));
  }
  std::unique_ptr<ConnectionCap> cap(new ConnectionCap());
  cap->options_ = std::move(options);
  cap->base_ = base;
  cap->adopt_ = event_new(base, -1, 0, &ConnectionCap::OnAdopt, cap.get());
  cap->accept_retry_ = evtimer_new(base, &ConnectionCap::OnAcceptRetry, cap.get());
  if (cap->adopt_ == nullptr || cap->accept_retry_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(cap->options_.name, ": no listener events"));
  }
  evhttp_set_bevcb(http, &ConnectionCap::OnNewConnection, cap.get());
  evhttp_bound_socket* bound =
      evhttp_bind_socket_with_handle(http, host.c_str(), static_cast<ev_uint16_t>(port));
  if (bound == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(cap->options_.name, ": cannot listen on ", host, ":", port));
  }
  cap->listener_ = evhttp_bound_socket_get_listener(bound);
  {
    std::lock_guard<std::mutex> lock(caps_mu);
    Caps()[cap->listener_] = cap.get();
  }
  evconnlistener_set_error_cb(cap->listener_, &ConnectionCap::OnAcceptError);
  cap->port_ = LocalPort(evconnlistener_get_fd(evhttp_bound_socket_get_listener(bound)));
  cap->UpdateAccepting();  // publishes the count
  return cap;
}

ConnectionCap::~ConnectionCap() {
  {
    std::lock_guard<std::mutex> lock(caps_mu);
    for (auto it = Caps().begin(); it != Caps().end();) {
      if (it->second == this) {
        Caps().erase(it++);
      } else {
        ++it;
      }
    }
  }
  age_timers_.clear();
  for (const Accepted& a : accepted_) bufferevent_decref(a.bev);  // never adopted
  for (event* e : {adopt_, accept_retry_}) {
    if (e != nullptr) event_free(e);
  }
}

bufferevent* ConnectionCap::OnNewConnection(event_base* base, void* self) {
  auto* c = static_cast<ConnectionCap*>(self);
  Accepted accepted;
  if (c->options_.tls != nullptr) {
    accepted.bev = MakeTlsBufferevent(base, c->options_.tls);
    // Never plain HTTP on a TLS port: a plain one, closed once adopted.
    accepted.refuse = accepted.bev == nullptr;
  }
  if (accepted.bev == nullptr) {
    accepted.bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  // Out of memory: evhttp makes a plain one of its own (served uncounted,
  // and on a TLS port unencrypted: libevent 2.1 offers no way to refuse).
  if (accepted.bev == nullptr) return nullptr;
  // Held until OnAdopt: evhttp frees it at once if it cannot make the
  // connection (out of memory).
  bufferevent_incref(accepted.bev);
  c->accepted_.push_back(accepted);
  // Runs once this accept callback returns, before the loop polls again:
  // nothing but that can have closed the connection by then.
  event_active(c->adopt_, EV_READ, 0);
  c->open_.fetch_add(1, std::memory_order_relaxed);
  c->UpdateAccepting();
  return accepted.bev;
}

void ConnectionCap::OnAdopt(int, short, void* self) {
  auto* c = static_cast<ConnectionCap*>(self);
  std::vector<Accepted> accepted;
  accepted.swap(c->accepted_);
  for (const Accepted& a : accepted) {
    c->Adopt(a);
    bufferevent_decref(a.bev);  // OnNewConnection's hold
  }
}

void ConnectionCap::Adopt(const Accepted& a) {
  // evhttp's callbacks carry its connection object.
  void* conn = nullptr;
  bufferevent_getcb(a.bev, nullptr, nullptr, nullptr, &conn);
  auto* evcon = static_cast<evhttp_connection*>(conn);
  if (evcon == nullptr) {
    // evhttp could not make the connection (out of memory) after asking for
    // its bufferevent, and freed it (our hold keeps it readable): nothing
    // will close it through us.
    open_.fetch_sub(1, std::memory_order_relaxed);
    UpdateAccepting();
    return;
  }
  evhttp_connection_set_closecb(evcon, &ConnectionCap::OnClose, this);
  if (options_.send_buffer > 0) {
    setsockopt(bufferevent_getfd(a.bev), SOL_SOCKET, SO_SNDBUF, &options_.send_buffer,
               sizeof options_.send_buffer);
  }
  if (a.refuse) {
    evhttp_connection_free(evcon);  // runs the close callback
    return;
  }
  if (options_.max_connections_per_client > 0) {
    std::string client = PeerClientKey(bufferevent_getfd(a.bev), options_.cap_loopback);
    if (!client.empty()) {
      size_t& open = per_client_[client];
      if (open >= options_.max_connections_per_client) {
        if (options_.on_per_client_refusal) options_.on_per_client_refusal();
        evhttp_connection_free(evcon);  // runs the close callback
        return;
      }
      ++open;
      client_of_[evcon] = std::move(client);
    }
  }
  if (options_.max_age.count() > 0 || options_.request_timeout.count() > 0) {
    auto age = std::make_unique<AgeTimer>();
    age->cap = this;
    age->connection = evcon;
    age->timer = evtimer_new(base_, &ConnectionCap::OnTooOld, age.get());
    if (age->timer == nullptr) return;  // out of memory: it lives as evhttp keeps it
    if (options_.max_age.count() > 0) {
      const timeval after = ToTimeval(options_.max_age);
      evtimer_add(age->timer, &after);
    } else {
      AwaitRequest(*age);
    }
    age_timers_[evcon] = std::move(age);
  }
}

void ConnectionCap::RequestArrived(evhttp_connection* conn) {
  if (options_.request_timeout.count() == 0) return;
  auto it = age_timers_.find(conn);
  if (it == age_timers_.end()) return;
  evtimer_del(it->second->timer);
  it->second->awaiting_request = false;
}

void ConnectionCap::RequestDone(evhttp_connection* conn) {
  if (options_.request_timeout.count() == 0) return;
  auto it = age_timers_.find(conn);
  if (it != age_timers_.end()) AwaitRequest(*it->second);
}

void ConnectionCap::AwaitRequest(AgeTimer& t) {
  const auto now = std::chrono::steady_clock::now();
  t.awaiting_request = true;
  t.awaiting_since = now;
  const std::chrono::milliseconds at_cap = options_.request_timeout_at_cap;
  Schedule(t, now + (full_ && at_cap.count() > 0 ? std::min(options_.request_timeout, at_cap)
                                                 : options_.request_timeout));
}

void ConnectionCap::Schedule(AgeTimer& t, std::chrono::steady_clock::time_point deadline) {
  t.deadline = deadline;
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline - std::chrono::steady_clock::now());
  const timeval after = ToTimeval(std::max(left, std::chrono::microseconds(0)));
  evtimer_add(t.timer, &after);
}

bool ConnectionCap::WaitsOn(AgeTimer& t) {
  if (!t.awaiting_request) return false;  // a maximum age
  const auto now = std::chrono::steady_clock::now();
  const auto whole = t.awaiting_since + options_.request_timeout;
  if (now >= whole) return false;
  const std::chrono::milliseconds at_cap = options_.request_timeout_at_cap;
  if (!full_ || at_cap.count() == 0) {
    Schedule(t, whole);
    return true;
  }
  // Still at the cap: on only while the request arrives, a short limit at a
  // time (its last bytes came within it; the kernel's count, in ms).
  tcp_info info{};
  socklen_t size = sizeof info;
  const int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(t.connection));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0 ||
      std::chrono::milliseconds(info.tcpi_last_data_recv) >= at_cap) {
    return false;
  }
  Schedule(t, std::min(whole, now + at_cap));
  return true;
}

void ConnectionCap::OnTooOld(int, short, void* arg) {
  auto* t = static_cast<AgeTimer*>(arg);
  if (t->cap->WaitsOn(*t)) return;
  // Frees the connection; its close callback frees this timer.
  evhttp_connection_free(t->connection);
}

// Accepting pauses while the connections are at the cap, or for a moment
// after accept failed.
void ConnectionCap::UpdateAccepting() {
  if (listener_ == nullptr) return;
  const size_t open = open_.load(std::memory_order_relaxed);
  if (options_.on_count) options_.on_count(open, options_.max_connections);
  const bool full = open >= options_.max_connections;
  if (full && !full_ && options_.request_timeout_at_cap.count() > 0) {
    // Reaching the cap: the connections already waiting for a request get
    // the shorter limit too, from now (WaitsOn lets the ones still sending
    // theirs go on).
    const auto sooner = std::chrono::steady_clock::now() + options_.request_timeout_at_cap;
    for (auto& [conn, t] : age_timers_) {
      if (t->awaiting_request && t->deadline > sooner) Schedule(*t, sooner);
    }
  }
  full_ = full;
  const bool accept = !full && !accept_failing_;
  if (accept == accepting_) return;
  accepting_ = accept;
  if (accept) {
    evconnlistener_enable(listener_);
    return;
  }
  evconnlistener_disable(listener_);
  if (options_.on_pause) options_.on_pause(/*at_cap=*/full);
}

void ConnectionCap::OnAcceptError(evconnlistener* listener, void*) {
  ConnectionCap* c = nullptr;
  {
    std::lock_guard<std::mutex> lock(caps_mu);
    auto it = Caps().find(listener);
    if (it == Caps().end()) return;
    c = it->second;
  }
  c->accept_failing_ = true;
  c->UpdateAccepting();
  const timeval pause{0, 100'000};
  evtimer_add(c->accept_retry_, &pause);
}

void ConnectionCap::OnAcceptRetry(int, short, void* self) {
  auto* c = static_cast<ConnectionCap*>(self);
  c->accept_failing_ = false;
  c->UpdateAccepting();
}

void ConnectionCap::OnClose(evhttp_connection* conn, void* self) {
  auto* c = static_cast<ConnectionCap*>(self);
  if (auto client = c->client_of_.find(conn); client != c->client_of_.end()) {
    auto open = c->per_client_.find(client->second);
    if (open != c->per_client_.end() && --open->second == 0) c->per_client_.erase(open);
    c->client_of_.erase(client);
  }
  c->age_timers_.erase(conn);  // frees its timer, even from inside the timer's callback
  c->open_.fetch_sub(1, std::memory_order_relaxed);
  c->UpdateAccepting();
  if (c->options_.on_close) c->options_.on_close(conn);
}

}  // namespace cohost::server::http
