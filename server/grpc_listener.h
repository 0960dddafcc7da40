// The plaintext gRPC port, accepted by cohost rather than by gRPC, for three
// things gRPC's own listener (1.51) does not do:
// - it survives running out of descriptors: gRPC's stops accepting for good
//   after one failed accept, so a flood of idle connections would end the
//   port until a restart. Here accepting pauses for a moment and resumes.
// - it caps the connections: at the cap new ones wait in the kernel's backlog
//   until one closes, as on the HTTP ports (server/http/connection_cap.h), so
//   that clients cannot take every descriptor the process has. One waiting
//   there makes room: the connection with no call in flight for the longest
//   (at least `shed_idle_after`) is shut down, so that connections opened
//   and left idle (a leak, or a flood from many addresses) hold the port for
//   seconds, not for gRPC's idle limit of minutes. Its client reconnects on
//   its next call.
// - a connection must send HTTP/2's whole client preface within a timeout,
//   or it is closed; one that starts with anything else (HTTP/1, a TLS
//   hello) is closed at once. Only then is it handed to gRPC
//   (grpc::AddInsecureChannelFromFd), which serves it with the server's
//   channel arguments (keepalive, idle and stream limits) but, from a
//   descriptor, with no handshake deadline of its own.
// A wildcard host (0.0.0.0, ::) binds one dual-stack socket, as gRPC's own
// listener does.
//
// A connection handed over is gRPC's to close. It counts as open until then:
// the listener knows each by its descriptor and the socket's inode, and
// re-checks them every second (every 100 ms at the cap). It keeps a
// duplicate of each descriptor, so that the socket it shuts down is that
// connection's even if gRPC closed it a moment before and the number was
// reused; the duplicate is closed when the sweep finds gRPC's gone.
//
// gRPC can take only plaintext connections this way: with TLS the server
// keeps gRPC's listener (server/server.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace grpc {
class Server;
}

namespace cohost::server {

// The calls on one handed-over connection (server/connection_calls.h).
struct ConnectionUse {
  using Clock = std::chrono::steady_clock;
  int calls = 0;               // in flight
  Clock::time_point last_end;  // when the last one ended; epoch: none has
};

struct GrpcListenerOptions {
  size_t max_connections = 4096;  // at least 1
  // Of them, at most this many from one client address (0: no such cap), so
  // that one client (a bug that opens a channel per call, a flood) cannot
  // take them all; more from it are closed at once. Loopback clients (a
  // proxy beside the server, which speaks for many) are not counted unless
  // `cap_loopback`.
  size_t max_connections_per_client = 0;
  bool cap_loopback = false;
  // How long a new connection may stay silent before it is closed.
  std::chrono::milliseconds preface_timeout{10'000};
  // How long accepting pauses after accept failed (out of descriptors).
  std::chrono::milliseconds accept_retry{100};
  // The calls on the connection gRPC serves on a descriptor; any thread may
  // call it. Without it no connection is shed at the cap.
  std::function<ConnectionUse(int fd)> use_of;
  // At the cap, with a connection waiting, a connection with no call for at
  // least this long (since it was handed over, or its last call ended) is
  // shut down to make room.
  std::chrono::milliseconds shed_idle_after{5'000};
  // Called on the listener's thread: after every change of the count, when
  // accepting pauses (at_cap: because of the cap, else after an accept
  // error), and when a connection is closed before it was handed over
  // (reason "silent": the timeout passed; "not_http2": it spoke something
  // else; "per_client": its address had its share), or shed after it was
  // ("idle_at_cap").
  std::function<void(size_t open, size_t max)> on_count;
  std::function<void(bool at_cap)> on_pause;
  std::function<void(std::string_view reason)> on_drop;
};

class GrpcListener {
 public:
  // Binds every address `host` resolves to, on `port` (0: one the OS picks,
  // the same for all). UNAVAILABLE when none can be bound; INVALID_ARGUMENT
  // for a port outside [0, 65535] or a cap of 0. Accepts nothing until Start.
  static absl::StatusOr<std::unique_ptr<GrpcListener>> Bind(const std::string& host, int port,
                                                            GrpcListenerOptions options);
  ~GrpcListener();  // Stop

  GrpcListener(const GrpcListener&) = delete;
  GrpcListener& operator=(const GrpcListener&) = delete;

  int port() const { return port_; }
  // Connections accepted and not yet closed; any thread.
  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }

  // Accepts on a thread of its own and hands connections to `server`, which
  // must be started and stay up until Stop returns.
  void Start(grpc::Server* server);
  // Stops accepting, closes the listening sockets and the connections not yet
  // handed over, and joins. Those handed over stay gRPC's. Idempotent.
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  struct Waiting {  // accepted, not yet handed over
    int fd = -1;
    Clock::time_point deadline;
    bool whole_preface = false;  // poll waits for all of it (SO_RCVLOWAT)
    std::string client;          // its address's key; empty: not counted per client
  };
  struct Handed {  // handed to gRPC: open while fd still names this socket
    int fd = -1;
    uint64_t dev = 0;
    uint64_t ino = 0;
    std::string client;
    int own = -1;  // the listener's duplicate of fd; -1 if dup failed (never shed)
    Clock::time_point handed_at;
    bool shed = false;  // shut down to make room; gRPC has yet to close it
  };

  GrpcListener() = default;
  void Loop();
  void AcceptAll(int listen_fd, Clock::time_point now);
  // Whether the connection is done waiting: handed over or closed.
  bool CheckPreface(const Waiting& w);
  void HandOver(const Waiting& w);
  // A connection of `client`'s is gone.
  void Forget(const std::string& client);
  void Drop(int fd, std::string_view reason);
  void SweepHanded();
  // At the cap with a connection waiting: shuts down the handed-over
  // connection idle longest, if one is idle enough. Whether it did.
  bool ShedIdle(Clock::time_point now);
  void PublishCount();
  size_t Count() const { return waiting_.size() + handed_.size(); }

  GrpcListenerOptions options_;
  std::vector<int> listen_fds_;
  int wake_fd_ = -1;  // an eventfd: Stop's wake-up
  int port_ = 0;
  grpc::Server* server_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;  // Stop against itself
  bool stopped_ = false;

  // The listener thread's own.
  std::vector<Waiting> waiting_;
  std::vector<Handed> handed_;
  absl::flat_hash_map<std::string, size_t> per_client_;  // open connections by client key
  Clock::time_point accept_resume_;                      // after an accept error: not before this
  Clock::time_point last_error_log_;  // accept errors are logged once a minute at most
  Clock::time_point shed_next_;       // at the cap: no connection is shed before this
  bool paused_ = false;               // accepting is paused (published once per pause)
  size_t published_ = SIZE_MAX;
  std::atomic<size_t> open_{0};
};

}  // namespace cohost::server
