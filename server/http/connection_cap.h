// The connections of an evhttp server, counted and capped, for every HTTP
// port cohost opens (the OpenAI front door, /metrics). evhttp asks it for
// each new connection's bufferevent (a TLS one when it holds a context), and
// it gives the connection a close callback once evhttp has made it. At the
// cap the listener stops accepting: new connections wait in the kernel's
// backlog until one closes, so that clients cannot take every descriptor the
// process has (gRPC's, the model files'). Accepting also pauses for a moment
// after accept failed (out of descriptors: the listener would otherwise stay
// readable and spin the loop). With a maximum age, a connection still open
// that long after it was accepted is closed, whatever it is doing: on a port
// that only answers quick requests, a client sending its request a byte at a
// time (slowloris) holds a connection no longer than that. With a request
// timeout instead (a port that streams long replies), the limit runs only
// while a request is read: from the connection's opening, or from its last
// reply's end, until the whole request is in (RequestArrived), so that the
// same client holds it no longer than that either, and a long reply is
// never cut. While the connections are at the cap, a connection waiting for
// a request that has sent nothing for `request_timeout_at_cap` is closed
// (those already waiting when the cap is reached too): one kept alive
// between requests, or opened and left, gives its room to the ones waiting
// in the backlog within seconds, while one sending its request (a large
// body on a slow link) keeps the whole request timeout.
//
// Of the connections, one client address may hold at most its share
// (server/client_address.h says who one client is); more from it are closed
// as they come (counted against the cap for that moment: evhttp makes a
// connection before its address can be read).
//
// Everything runs on the loop thread of the event_base it is given, except
// open_connections(), which any thread may read.
#pragma once

#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;
struct evhttp;
struct evhttp_connection;
typedef struct ssl_ctx_st SSL_CTX;

namespace cohost::server::http {

// Once per process, before any event base of an HTTP port is made (every
// call after the first is free): libevent's locks, so that other threads can
// wake a loop, and SIGPIPE ignored, so that a write to a client that left is
// an error, not the process's end. INTERNAL when libevent has no pthreads.
absl::Status PrepareLibevent();

// A duration as the timeval libevent's timers take.
timeval ToTimeval(std::chrono::microseconds d);

struct ConnectionCapOptions {
  std::string name = "HTTP";      // leads Listen's errors: "metrics server: cannot listen ..."
  size_t max_connections = 4096;  // at least 1
  // Of them, at most this many from one client address (0: no such cap);
  // loopback clients are not counted unless `cap_loopback`.
  size_t max_connections_per_client = 0;
  bool cap_loopback = false;
  // SO_SNDBUF of each connection, in bytes (0: the kernel's own).
  int send_buffer = 0;
  // TLS on every connection when set; must outlive the cap.
  SSL_CTX* tls = nullptr;
  // Zero: connections live as long as evhttp keeps them. At most one of the
  // two is set.
  std::chrono::milliseconds max_age{0};
  std::chrono::milliseconds request_timeout{0};
  // With a request timeout: while the connections are at the cap, how long
  // a connection waiting for a request may send nothing (zero: no such
  // limit).
  std::chrono::milliseconds request_timeout_at_cap{0};
  // Called on the loop thread: after every change of the count (open, max),
  // when accepting pauses (at_cap: because of the cap, else after an accept
  // error), when a connection closed (after the count dropped), and when
  // one was closed at once because its address had its share.
  std::function<void(size_t open, size_t max)> on_count;
  std::function<void(bool at_cap)> on_pause;
  std::function<void(evhttp_connection*)> on_close;
  std::function<void()> on_per_client_refusal;
};

class ConnectionCap {
 public:
  // Binds `http` (made on `base`) to host:port and counts its connections
  // from then on. UNAVAILABLE when the address cannot be bound;
  // INVALID_ARGUMENT for a port outside [0, 65535] or a cap of 0; each
  // error led by options.name.
  static absl::StatusOr<std::unique_ptr<ConnectionCap>> Listen(event_base* base, evhttp* http,
                                                               const std::string& host, int port,
                                                               ConnectionCapOptions options);
  // Call on the loop thread or once it has ended, after Close and evhttp_free
  // (whose closing of the connections it counts).
  ~ConnectionCap();

  ConnectionCap(const ConnectionCap&) = delete;
  ConnectionCap& operator=(const ConnectionCap&) = delete;

  int port() const { return port_; }
  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  // The listener is about to go (evhttp_free frees it before it closes the
  // connections): accepting is never changed again.
  void Close() { listener_ = nullptr; }

  // With a request timeout: `conn` has a whole request in (its timer stops),
  // and its reply has been sent (the timer starts again for the next one).
  void RequestArrived(evhttp_connection* conn);
  void RequestDone(evhttp_connection* conn);

 private:
  ConnectionCap() = default;
  static bufferevent* OnNewConnection(event_base* base, void* self);
  static void OnAdopt(int, short, void* self);
  struct Accepted;
  // A connection evhttp made: counted per client (or refused), timed.
  void Adopt(const Accepted& a);
  static void OnAcceptError(evconnlistener* listener, void* evhttp_arg);
  static void OnAcceptRetry(int, short, void* self);
  static void OnClose(evhttp_connection* conn, void* self);
  static void OnTooOld(int, short, void* timer);
  void UpdateAccepting();
  struct AgeTimer;
  // With a request timeout: `t` waits for a request from now, until the
  // timeout, or at the cap until the shorter limit.
  void AwaitRequest(AgeTimer& t);
  // `t`'s timer ends at `deadline`.
  static void Schedule(AgeTimer& t, std::chrono::steady_clock::time_point deadline);
  // At `t`'s timer's end: whether its connection may wait on (the timer is
  // then set again), because the shorter limit of the cap ended but the
  // request timeout has not, and the cap was left or the request is still
  // arriving.
  bool WaitsOn(AgeTimer& t);

  ConnectionCapOptions options_;
  event_base* base_ = nullptr;
  evconnlistener* listener_ = nullptr;  // null once closed
  event* adopt_ = nullptr;              // runs right after evhttp accepted connections
  event* accept_retry_ = nullptr;       // ends a pause after accept failed
  int port_ = 0;
  // evhttp makes a connection's object only after asking for its
  // bufferevent (OnNewConnection), so the new ones wait here for OnAdopt.
  // Their bufferevents, and whether to close it at once (a TLS one could
  // not be made).
  struct Accepted {
    bufferevent* bev = nullptr;
    bool refuse = false;
  };
  std::vector<Accepted> accepted_;
  // With a maximum age or a request timeout: each connection's timer, and
  // what it closes.
  struct AgeTimer {
    ConnectionCap* cap = nullptr;
    evhttp_connection* connection = nullptr;
    event* timer = nullptr;
    // With a request timeout: the timer runs because a request is awaited,
    // since when, and when the timer ends.
    bool awaiting_request = false;
    std::chrono::steady_clock::time_point awaiting_since;
    std::chrono::steady_clock::time_point deadline;
    ~AgeTimer();
  };
  absl::flat_hash_map<evhttp_connection*, std::unique_ptr<AgeTimer>> age_timers_;
  // With a per-client share: each counted connection's client, and how
  // many each client has open.
  absl::flat_hash_map<evhttp_connection*, std::string> client_of_;
  absl::flat_hash_map<std::string, size_t> per_client_;
  bool accept_failing_ = false;  // accept failed (out of descriptors): pause
  bool accepting_ = true;
  bool full_ = false;            // at the cap
  std::atomic<size_t> open_{0};  // written on the loop thread only
};

}  // namespace cohost::server::http
