// Whether a listening port still accepts, seen from outside the code that
// accepts on it: the kernel's accept queue for the port (/proc/net/tcp and
// tcp6) staying non-empty for a timeout means that nobody accepts. It is for
// gRPC's own listener (the TLS port: server/grpc_listener.h says why the
// plaintext one is cohost's), which, in gRPC 1.51, stops accepting for good
// after one accept fails for want of descriptors. Health then says so, so
// that whoever supervises the server restarts it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "absl/container/flat_hash_set.h"

namespace cohost::server {

// Connections waiting in the accept queue of the listening TCP sockets on
// `port` (every address, IPv4 and IPv6, any process), or nullopt when none
// is found or /proc cannot be read.
std::optional<int64_t> ListenBacklog(int port);

class AcceptWatch {
 public:
  using Clock = std::chrono::steady_clock;
  // Watches this process's listening sockets on `port`, as they are now.
  AcceptWatch(int port, Clock::duration timeout);

  // Reads the queue at `now`: whether the port counts as accepting. It does
  // not once its queue has held connections for the timeout without
  // emptying or shrinking; a queue that cannot be read changes nothing.
  bool Update(Clock::time_point now);
  // The last Update's answer; any thread.
  bool accepting() const { return accepting_.load(std::memory_order_relaxed); }
  int port() const { return port_; }

 private:
  const int port_;
  const Clock::duration timeout_;
  absl::flat_hash_set<uint64_t> listeners_;         // their socket inodes
  std::optional<Clock::time_point> waiting_since_;  // the queue non-empty since
  std::optional<int64_t> last_waiting_;             // what the last read found
  std::atomic<bool> accepting_{true};
};

}  // namespace cohost::server
