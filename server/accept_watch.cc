// AcceptWatch: /proc/net/tcp's accept queues, and the timeout over them.

#include "server/accept_watch.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace cohost::server {
namespace {

constexpr int kListen = 0x0A;  // TCP_LISTEN in /proc/net/tcp's "st" column

// Adds the accept queues of `table`'s listening sockets on `port`; whether
// the table could be read.
bool AddBacklog(const char* table, int port, bool* found, int64_t* total) {
  std::ifstream in(table);
  if (!in) return false;
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    // "sl local_address rem_address st tx_queue:rx_queue ...": for a
    // listening socket, rx_queue is its accept queue's length.
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues;
    if (!(fields >> slot >> local >> remote >> state >> queues)) continue;
    const size_t colon = local.rfind(':');
    const size_t split = queues.find(':');
    if (colon == std::string::npos || split == std::string::npos) continue;
    if (std::stoi(state, nullptr, 16) != kListen) continue;
    if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
    *found = true;
    *total += std::stoll(queues.substr(split + 1), nullptr, 16);
  }
  return true;
}

}  // namespace

std::optional<int64_t> ListenBacklog(int port) {
  bool found = false;
  int64_t total = 0;
  const bool v4 = AddBacklog("/proc/net/tcp", port, &found, &total);
  const bool v6 = AddBacklog("/proc/net/tcp6", port, &found, &total);
  if ((!v4 && !v6) || !found) return std::nullopt;
  return total;
}

bool AcceptWatch::Update(Clock::time_point now) {
  const std::optional<int64_t> waiting = ListenBacklog(port_);
  if (!waiting || *waiting == 0) {
    waiting_since_.reset();
  } else if (!waiting_since_) {
    waiting_since_ = now;
  }
  const bool accepting = !waiting_since_ || now - *waiting_since_ < timeout_;
  if (accepting != accepting_.exchange(accepting, std::memory_order_relaxed)) {
    std::fprintf(stderr,
                 accepting ? "cohost: port %d accepts connections again\n"
                           : "cohost: port %d has stopped accepting connections (they have waited "
                             "in its queue past the timeout; gRPC's TLS listener stops for good "
                             "once the process runs out of descriptors): health is NOT_SERVING "
                             "until it accepts again; restart the server\n",
                 port_);
  }
  return accepting;
}

}  // namespace cohost::server
