// GrpcListener: bind, the accept loop on poll(2), the preface check and the
// hand-over to gRPC.

#include "server/grpc_listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/server.h"
#include "grpcpp/server_posix.h"
#include "server/client_address.h"
#include "server/socket_port.h"

namespace cohost::server {
namespace {

// RFC 9113 3.4: what every HTTP/2 client sends first.
constexpr std::string_view kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
// Accepts per wake-up at most, so that waiting connections are looked at too.
constexpr int kAcceptBurst = 256;
constexpr auto kSweepEvery = std::chrono::seconds(1);
constexpr auto kSweepAtCap = std::chrono::milliseconds(100);
constexpr auto kAcceptErrorLogEvery = std::chrono::seconds(60);
// At the cap: after finding no connection idle enough to shed, look again
// this much later; after shedding one, shed no other until gRPC has closed
// it (the sweep sees it gone) or this long has passed.
constexpr auto kShedRetry = std::chrono::milliseconds(250);
constexpr auto kShedSettle = std::chrono::seconds(1);

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(static_cast<uint16_t>(port));
  }
}

// A listening socket on `ai` (its port set to `port`), or -errno. An IPv6
// one takes IPv4 too unless `v6_only` (set either way: the system's default
// is a sysctl).
int ListenOn(const addrinfo& ai, int port, bool v6_only) {
  const int fd = socket(ai.ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai.ai_family == AF_INET6) {
    const int only = v6_only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, ai.ai_addr, ai.ai_addrlen);
  SetPort(reinterpret_cast<sockaddr*>(&addr), port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), ai.ai_addrlen) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    const int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

// Listening sockets on every address `node` resolves to (null: the
// wildcards), on `port` (0: the first one's, for all), appended to `fds`.
// `dual_stack`: a lone IPv6 address takes IPv4 too. Returns the port, or
// -errno when none could be bound; an address that could not be bound
// beside others is logged.
int ListenOnAll(const char* node, int port, bool dual_stack, std::vector<int>* fds) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(node, "0", &hints, &found) != 0) return -EADDRNOTAVAIL;
  const bool several = found != nullptr && found->ai_next != nullptr;
  int error = EAFNOSUPPORT;  // when no address is IPv4 or IPv6
  const size_t before = fds->size();
  size_t usable = 0;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    ++usable;
    const int fd = ListenOn(*ai, port, several || !dual_stack);
    if (fd < 0) {
      error = -fd;
      continue;
    }
    if (port == 0) port = LocalPort(fd);  // the rest take the same port
    fds->push_back(fd);
  }
  const size_t bound = fds->size() - before;
  freeaddrinfo(found);
  if (bound == 0) return -error;
  if (bound < usable) {
    std::fprintf(stderr,
                 "cohost: gRPC port: %s resolves to %zu addresses; %zu could not listen on port "
                 "%d (%s), serving on the others\n",
                 node == nullptr ? "the wildcard" : node, usable, usable - bound, port,
                 std::strerror(error));
  }
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcListener>> GrpcListener::Bind(const std::string& host, int port,
                                                                 GrpcListenerOptions options) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("gRPC port ", port, " is outside [0, 65535]"));
  }
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("the gRPC connection cap must be at least 1");
  }
  std::unique_ptr<GrpcListener> l(new GrpcListener());
  l->options_ = std::move(options);
  const std::string name = host.size() > 2 && host.front() == '[' && host.back() == ']'
                               ? host.substr(1, host.size() - 2)
                               : host;
  // A wildcard binds as gRPC's own listener did: one dual-stack IPv6
  // socket, or IPv4 alone where the host has no IPv6.
  int bound_port = -EADDRNOTAVAIL;
  if (name == "0.0.0.0" || name == "::") {
    bound_port = ListenOnAll("::", port, /*dual_stack=*/true, &l->listen_fds_);
    if (bound_port < 0) bound_port = ListenOnAll("0.0.0.0", port, false, &l->listen_fds_);
  } else {
    bound_port = ListenOnAll(name.empty() ? nullptr : name.c_str(), port, false, &l->listen_fds_);
  }
  if (bound_port < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", std::strerror(-bound_port)));
  }
  l->port_ = bound_port;
  l->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->wake_fd_ < 0) return absl::ResourceExhaustedError("gRPC listener: no eventfd");
  return l;
}

GrpcListener::~GrpcListener() { Stop(); }

void GrpcListener::Start(grpc::Server* server) {
  server_ = server;
  thread_ = std::thread([this] { Loop(); });
}

void GrpcListener::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  for (const Waiting& w : waiting_) close(w.fd);
  waiting_.clear();
  for (const Handed& h : handed_) {
    if (h.own >= 0) close(h.own);  // gRPC's own descriptor stays open
  }
  handed_.clear();
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

void GrpcListener::Loop() {
  std::vector<pollfd> polls;
  Clock::time_point last_sweep = Clock::now();
  while (!stop_.load()) {
    const Clock::time_point now = Clock::now();
    bool full = Count() >= options_.max_connections;
    if (now - last_sweep >= (full ? Clock::duration(kSweepAtCap) : kSweepEvery)) {
      SweepHanded();
      last_sweep = now;
    }
    std::erase_if(waiting_, [&](const Waiting& w) {
      if (w.deadline > now) return false;
      Drop(w.fd, "silent");
      Forget(w.client);
      return true;
    });
    PublishCount();
    full = Count() >= options_.max_connections;
    const bool accepting = !full && now >= accept_resume_;
    if (!accepting && !paused_ && options_.on_pause) options_.on_pause(full);
    paused_ = !accepting;
    // At the cap, a connection waiting to be accepted may take the room of
    // an idle one.
    const bool may_shed = full && options_.use_of != nullptr && now >= shed_next_;

    polls.clear();
    polls.push_back({wake_fd_, POLLIN, 0});
    if (accepting || may_shed) {
      for (int fd : listen_fds_) polls.push_back({fd, POLLIN, 0});
    }
    const size_t first_waiting = polls.size();
    Clock::time_point until = last_sweep + (full ? Clock::duration(kSweepAtCap) : kSweepEvery);
    if (!accepting && !full) until = std::min(until, accept_resume_);
    for (const Waiting& w : waiting_) {
      polls.push_back({w.fd, POLLIN, 0});
      until = std::min(until, w.deadline);
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(until - now);
    if (poll(polls.data(), polls.size(), static_cast<int>(std::max<int64_t>(wait.count(), 0))) <
        0) {
      if (errno != EINTR) std::this_thread::sleep_for(options_.accept_retry);  // out of memory
      continue;
    }
    if (polls[0].revents != 0) {
      uint64_t ignored = 0;
      (void)!read(wake_fd_, &ignored, sizeof ignored);
    }
    // The waiting connections first: accepting adds to them.
    std::vector<Waiting> still;
    for (size_t i = 0; i < waiting_.size(); ++i) {
      if (polls[first_waiting + i].revents == 0 || !CheckPreface(waiting_[i])) {
        still.push_back(waiting_[i]);
      }
    }
    waiting_.swap(still);
    for (size_t i = 1; i < first_waiting; ++i) {
      if (polls[i].revents == 0) continue;
      const Clock::time_point at = Clock::now();
      if (Count() < options_.max_connections) {
        AcceptAll(polls[i].fd, at);
      } else if (may_shed && at >= shed_next_) {
        // Connections gRPC closed since the last sweep make room already.
        SweepHanded();
        if (Count() < options_.max_connections) {
          AcceptAll(polls[i].fd, at);
        } else {
          shed_next_ = at + (ShedIdle(at) ? Clock::duration(kShedSettle) : kShedRetry);
        }
      }
    }
  }
}

void GrpcListener::AcceptAll(int listen_fd, Clock::time_point now) {
  for (int i = 0; i < kAcceptBurst && Count() < options_.max_connections; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                           SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      std::string client = options_.max_connections_per_client > 0
                               ? ClientKey(peer, options_.cap_loopback)
                               : std::string();
      if (!client.empty()) {
        size_t& open = per_client_[client];
        if (open >= options_.max_connections_per_client) {
          Drop(fd, "per_client");
          continue;
        }
        ++open;
      }
      // Each token is its own small write: no Nagle delay (as gRPC's own
      // listener sets).
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // poll wakes once the whole preface is in (or at EOF), not at its
      // first byte.
      const int whole = static_cast<int>(kPreface.size());
      const bool lowat = setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &whole, sizeof whole) == 0;
      waiting_.push_back({fd, now + options_.preface_timeout, lowat, std::move(client)});
      continue;
    }
    switch (errno) {
      case EAGAIN:
        return;
      // The connection went before it was accepted, or a network error
      // Linux passes on (accept(2)): the next one may be fine.
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case EPERM:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case ENETUNREACH:
        continue;
      default:
        break;
    }
    // Out of descriptors or memory (or anything else): pause, never stop.
    const int error = errno;
    accept_resume_ = now + options_.accept_retry;
    if (last_error_log_ == Clock::time_point() || now - last_error_log_ >= kAcceptErrorLogEvery) {
      last_error_log_ = now;
      std::fprintf(stderr, "cohost: gRPC port: accept failed (%s); accepting again in %lld ms\n",
                   std::strerror(error), static_cast<long long>(options_.accept_retry.count()));
    }
    return;
  }
}

bool GrpcListener::CheckPreface(const Waiting& w) {
  char head[kPreface.size()];
  const ssize_t n = recv(w.fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n <= 0) {  // the client left, or reset
    close(w.fd);
    Forget(w.client);
    return true;
  }
  if (std::string_view(head, static_cast<size_t>(n)) != kPreface.substr(0, n)) {
    Drop(w.fd, "not_http2");
    Forget(w.client);
    return true;
  }
  // Part of it: the rest is on its way (poll wakes when it is in). Without
  // the low-water mark poll would not wait for it: handed over as it is.
  if (static_cast<size_t>(n) < kPreface.size() && w.whole_preface) return false;
  const int one = 1;
  if (w.whole_preface) setsockopt(w.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);  // gRPC's now
  HandOver(w);
  return true;
}

void GrpcListener::HandOver(const Waiting& w) {
  struct stat st {};
  if (fstat(w.fd, &st) != 0) {
    close(w.fd);
    Forget(w.client);
    return;
  }
  // Known before gRPC has it: from then on it may close it at any moment.
  handed_.push_back({w.fd, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                     w.client, fcntl(w.fd, F_DUPFD_CLOEXEC, 0), Clock::now()});
  grpc::AddInsecureChannelFromFd(server_, w.fd);
}

void GrpcListener::Forget(const std::string& client) {
  if (client.empty()) return;
  auto it = per_client_.find(client);
  if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

void GrpcListener::Drop(int fd, std::string_view reason) {
  if (options_.on_drop) options_.on_drop(reason);  // counted before the client sees the close
  close(fd);
}

// A handed-over connection is closed once its descriptor is closed or names
// another file: gRPC closed it (and the number may have been reused since).
// (While the listener holds its duplicate, the socket's inode cannot name
// another.)
void GrpcListener::SweepHanded() {
  std::erase_if(handed_, [&](const Handed& h) {
    struct stat st {};
    const bool gone = fstat(h.fd, &st) != 0 || static_cast<uint64_t>(st.st_dev) != h.dev ||
                      static_cast<uint64_t>(st.st_ino) != h.ino;
    if (!gone) return false;
    Forget(h.client);
    if (h.own >= 0) close(h.own);
    if (h.shed) shed_next_ = Clock::time_point();  // its room is free: the next may go
    return true;
  });
}

bool GrpcListener::ShedIdle(Clock::time_point now) {
  Handed* idlest = nullptr;
  Clock::time_point idlest_since;
  for (Handed& h : handed_) {
    if (h.own < 0 || h.shed) continue;
    const ConnectionUse use = options_.use_of(h.fd);
    if (use.calls > 0) continue;
    // An earlier connection's last call on the same number counts for nothing.
    const Clock::time_point since = std::max(h.handed_at, use.last_end);
    if (now - since < options_.shed_idle_after) continue;
    if (idlest == nullptr || since < idlest_since) {
      idlest = &h;
      idlest_since = since;
    }
  }
  if (idlest == nullptr) return false;
  // gRPC reads the end of the stream, fails the connection and closes its
  // descriptor; a call begun in the moment since it was looked at fails
  // with it (UNAVAILABLE), as on any lost connection.
  if (options_.on_drop) options_.on_drop("idle_at_cap");
  shutdown(idlest->own, SHUT_RDWR);
  idlest->shed = true;
  return true;
}

void GrpcListener::PublishCount() {
  const size_t open = Count();
  open_.store(open, std::memory_order_relaxed);
  if (open == published_) return;
  published_ = open;
  if (options_.on_count) options_.on_count(open, options_.max_connections);
}

}  // namespace cohost::server
