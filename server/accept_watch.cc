// AcceptWatch: /proc/net/tcp's accept queues, and the timeout over them.

#include "server/accept_watch.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"

namespace cohost::server {
namespace {

constexpr uint64_t kListen = 0x0A;  // TCP_LISTEN in /proc/net/tcp's "st" column

// The sockets of this process: their inodes, from /proc/self/fd's links.
absl::flat_hash_set<uint64_t> OwnSockets() {
  absl::flat_hash_set<uint64_t> inodes;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return inodes;
  while (const dirent* e = readdir(dir)) {
    char target[64];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string_view t(target, static_cast<size_t>(n));
    uint64_t inode = 0;
    if (t.starts_with("socket:[") && t.ends_with("]") &&
        absl::SimpleAtoi(absl::string_view(t.data() + 8, t.size() - 9), &inode)) {
      inodes.insert(inode);
    }
  }
  closedir(dir);
  return inodes;
}

// Calls `each(inode, queued)` for every listening socket of `table` on
// `port`; whether the table could be read.
template <typename Each>
bool ForEachListener(const char* table, int port, Each each) {
  std::ifstream in(table);
  if (!in) return false;
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    // "sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt
    // uid timeout inode ...": for a listening socket, rx_queue is its
    // accept queue's length. Numbers in hex but the inode.
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode)) {
      continue;
    }
    const size_t colon = local.rfind(':');
    const size_t split = queues.find(':');
    uint64_t st = 0, local_port = 0, queued = 0, ino = 0;
    if (colon == std::string::npos || split == std::string::npos ||
        !absl::SimpleHexAtoi(state, &st) ||
        !absl::SimpleHexAtoi(local.substr(colon + 1), &local_port) ||
        !absl::SimpleHexAtoi(queues.substr(split + 1), &queued) || !absl::SimpleAtoi(inode, &ino)) {
      continue;
    }
    if (st == kListen && local_port == static_cast<uint64_t>(port)) each(ino, queued);
  }
  return true;
}

// The accept queues of `sockets` on `port`: their sum, or nullopt when the
// tables cannot be read or none of them is there.
std::optional<int64_t> Backlog(int port, const absl::flat_hash_set<uint64_t>* sockets) {
  bool found = false;
  int64_t total = 0;
  auto add = [&](uint64_t inode, uint64_t queued) {
    if (sockets != nullptr && !sockets->contains(inode)) return;
    found = true;
    total += static_cast<int64_t>(queued);
  };
  const bool v4 = ForEachListener("/proc/net/tcp", port, add);
  const bool v6 = ForEachListener("/proc/net/tcp6", port, add);
  if ((!v4 && !v6) || !found) return std::nullopt;
  return total;
}

}  // namespace

std::optional<int64_t> ListenBacklog(int port) { return Backlog(port, nullptr); }

AcceptWatch::AcceptWatch(int port, Clock::duration timeout) : port_(port), timeout_(timeout) {
  // This process's listening sockets on the port, once: another process's
  // on the same port (SO_REUSEPORT, another address) is not ours to judge.
  const absl::flat_hash_set<uint64_t> own = OwnSockets();
  auto keep = [&](uint64_t inode, uint64_t) {
    if (own.contains(inode)) listeners_.insert(inode);
  };
  ForEachListener("/proc/net/tcp", port, keep);
  ForEachListener("/proc/net/tcp6", port, keep);
}

bool AcceptWatch::Update(Clock::time_point now) {
  // Unreadable (out of descriptors, the very case watched for) or not
  // found: what was seen last stands.
  const std::optional<int64_t> waiting =
      listeners_.empty() ? std::nullopt : Backlog(port_, &listeners_);
  if (waiting) {
    // Empty, or fewer than last time: someone accepts.
    if (*waiting == 0 || (last_waiting_ && *waiting < *last_waiting_)) {
      waiting_since_.reset();
    } else if (!waiting_since_) {
      waiting_since_ = now;
    }
    last_waiting_ = *waiting;
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
