// The OpenAI-compatible HTTP front door: POST /v1/chat/completions and
// /v1/completions (streamed as server-sent events or whole), GET /v1/models
// and GET /health, on libevent's evhttp, beside the gRPC port and over the
// same Router. One event-loop thread serves every connection: it
// authenticates and submits requests, and writes what the engines produce, so
// thousands of idle or streaming connections cost no threads; parsing and
// tokenizing, which a long prompt makes slow, run on a few threads beside it
// (LoopOffload).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/auth/api_keys.h"
#include "server/auth/tls.h"
#include "server/http/completion_call.h"
#include "server/http/openai_request.h"
#include "server/stream_deps.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

namespace cohost::server::http {

class CompletionCall;
class ConnectionCap;
class LoopOffload;
class Waker;

// OK for "*" or an origin, scheme://host[:port] with scheme http or https
// and no path; INVALID_ARGUMENT naming what is wrong (it becomes a header).
absl::Status ValidCorsOrigin(std::string_view origin);

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: the OS picks one (see port())
  size_t max_body_bytes = size_t{4} << 20;
  size_t max_header_bytes = size_t{64} << 10;
  // What each completion call is given: the bound of a whole reply, and
  // whether a chat's think block is split from its answer.
  CallOptions call;
  // A connection that sends nothing for this long while its request is read
  // is closed (also bounds a stalled write).
  int io_timeout_seconds = 60;
  // Browsers' cross-origin access (CORS): empty, none (a preflight is a
  // 405); else the origin allowed, "*" or one like "https://app.example",
  // sent on every reply, and OPTIONS preflights are answered (204).
  // ValidCorsOrigin checks it.
  std::string cors_origin;
  // A connection must send each request in whole within this long of opening
  // or of its previous reply's end, or it is closed: a client sending a byte
  // at a time, each within the io timeout, holds it no longer (slowloris).
  std::chrono::milliseconds request_timeout{60'000};
  // While the connections are at the cap, a connection waiting for a
  // request that sends nothing for this long is closed (those already
  // waiting too): one kept alive between requests, or opened and left,
  // makes room for new ones; one still sending its request keeps the whole
  // request timeout. Zero: no such limit.
  std::chrono::milliseconds request_timeout_at_cap{5'000};
  // Connections open at once. At the cap the listener stops accepting: new
  // connections wait in the kernel's backlog until one closes, so that
  // clients cannot take every descriptor the process has (gRPC's, the model
  // files').
  size_t max_connections = 4096;
  // Of them, at most this many from one client address, loopback clients
  // (a proxy beside the server) aside; more are closed at once. 0: no cap.
  size_t max_connections_per_client = 0;
  bool cap_loopback_clients = false;  // tests: count loopback clients too
  // SO_SNDBUF of each connection, in bytes (0: the kernel's own, which grows
  // to megabytes); tests make it small to see what evhttp holds unsent.
  int socket_send_buffer = 0;
  // How often connections waiting for output are checked for a client that
  // left (evhttp only notices when it writes); its request is then aborted.
  std::chrono::milliseconds liveness_interval{200};
  // Off unless it holds a certificate; with a client CA, mutual TLS.
  auth::TlsConfig tls;
  // Threads that parse and tokenize requests (LoopOffload), off the loop.
  int prepare_threads = 2;
  // Whether the gRPC port accepts (Server::accepting): GET /health is 503
  // while it does not. Unset: not asked.
  std::function<bool()> grpc_accepting;
  // Tests: runs on a preparing thread before each request is parsed.
  std::function<void()> on_prepare;
};

class HttpFrontDoor {
 public:
  // Listens and starts the loop thread. UNAVAILABLE when the address cannot
  // be bound. `deps` must outlive the front door.
  static absl::StatusOr<std::unique_ptr<HttpFrontDoor>> Start(const StreamDeps& deps,
                                                              const HttpOptions& options);
  ~HttpFrontDoor();  // Stop(0)

  HttpFrontDoor(const HttpFrontDoor&) = delete;
  HttpFrontDoor& operator=(const HttpFrontDoor&) = delete;

  int port() const { return port_; }
  // Connections open now (any thread; for tests and metrics).
  size_t open_connections() const;

  // Stops accepting work, lets calls still writing finish for up to `grace`,
  // ends the rest (UNAVAILABLE), and joins the loop. Idempotent. Run it after
  // the Router has drained, so that no new generation starts meanwhile.
  void Stop(std::chrono::milliseconds grace);

 private:
  HttpFrontDoor() = default;

  // Loop thread.
  static void OnRequest(evhttp_request* req, void* self);
  static void OnReplySent(evhttp_request* req, void* self);
  static void OnWake(int, short, void* self);
  // A connection closed (ConnectionCap's hook): its call, if any, ends.
  void OnConnectionClose(evhttp_connection* conn);
  static void OnStopCheck(int, short, void* self);
  static void OnLivenessTick(int, short, void* self);
  // A completion request: checked on the loop thread (key, drain), parsed and
  // tokenized on a preparing thread (Prepare), started back on the loop
  // thread (Prepared) unless its connection closed meanwhile.
  struct Preparing;
  void HandleCompletion(evhttp_request* req, int endpoint);
  void Prepare(Preparing& p) const;  // a preparing thread
  void Prepared(Preparing& p);
  // GET /v1/models (id: none) or /v1/models/{id}.
  void HandleModels(evhttp_request* req, std::optional<std::string_view> id);
  void HandleHealth(evhttp_request* req);
  // Loop thread: the call is over. Unless its connection is `closing`, a
  // whole reply it left over the backlog bound unsent is watched (draining_).
  void Forget(CompletionCall* call, bool closing = false);
  void RecordError(const absl::Status& status, std::string_view model = "");

  StreamDeps deps_;
  HttpOptions options_;
  int port_ = 0;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* wake_ = nullptr;
  event* stop_check_ = nullptr;
  event* liveness_ = nullptr;
  auth::SslCtxPtr ssl_ctx_;  // with TLS; outlives every connection
  std::unique_ptr<ConnectionCap> cap_;
  std::shared_ptr<Waker> waker_;
  std::unique_ptr<LoopOffload> offload_;
  std::thread thread_;
  bool stopped_ = false;  // Stop's caller only

  // Loop thread only: the calls in flight, and each one's connection.
  struct Live {
    std::shared_ptr<CompletionCall> call;
    evhttp_connection* connection = nullptr;
  };
  absl::flat_hash_map<CompletionCall*, Live> live_;
  // Loop thread only: connections whose whole reply was over the backlog
  // bound (StreamLimits::max_backlog_bytes) unsent when its call ended, and
  // the call, for the count. evhttp's write timeout restarts with every byte
  // a client reads, so a client reading a byte a second would hold a reply
  // of tens of MB for good: until the reply is under the bound, it must
  // drain StreamLimits::drain_progress_bytes every write_stall_timeout, else
  // the connection is shut, as a stream's is.
  struct Draining {
    std::chrono::steady_clock::time_point deadline;  // for the next drain_progress_bytes
    size_t unsent = 0;                               // when the deadline was set
    std::shared_ptr<CompletionCall> call;
  };
  absl::flat_hash_map<evhttp_connection*, Draining> draining_;
  absl::flat_hash_map<evhttp_connection*, CompletionCall*> by_connection_;
  // Loop thread only: the request each connection has being prepared (a
  // closed connection's address may come back for another).
  absl::flat_hash_map<evhttp_connection*, std::shared_ptr<Preparing>> preparing_;
  // Loop thread only: marks a request being prepared as abandoned, its body
  // freed at once if no thread has started on it (its client left, or the
  // door stops): nothing is parsed or tokenized for a client that is gone.
  static void Abandon(Preparing& p);
  int64_t started_unix_ = 0;
  std::chrono::steady_clock::time_point stop_deadline_;
  bool stopping_ = false;  // set on the loop thread by the stop check
};

}  // namespace cohost::server::http
