// Raw TCP on 127.0.0.1 for tests that need what an HTTP client library hides:
// connections that send nothing, half a request, or leave mid-reply.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cohost::testing {

// A connection to 127.0.0.1:`port`: the socket, or -1. A positive
// `receive_buffer` sets SO_RCVBUF first (a small window: a slow reader).
inline int ConnectLoopback(int port, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A socket listening on 127.0.0.1 on a port the OS picks (in *port), or -1.
inline int ListenLoopback(int* port, int backlog = 16) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Whether the peer closes `fd` (its reads end) within `timeout`, looked at
// at least once; what arrives before is thrown away.
inline bool ClosedByPeerWithin(int fd, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  do {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 0, 50))) <= 0) continue;
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

// All of `bytes`, or false (never a SIGPIPE).
inline bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// What arrives on `fd` until `wanted` is in it, the peer closes, or `timeout`
// passes.
inline std::string ReadUntil(int fd, std::string_view wanted, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  std::string got;
  char buf[4096];
  while (got.find(wanted) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Out of descriptors, for a server in this process: lowers the soft
// open-files limit to just above the descriptors in use, takes every one
// left, connects a socket made before to 127.0.0.1:`port` (the kernel
// completes the handshake; the server's accept finds no descriptor), runs
// `while_starved` (its result in `*result`), then gives everything back. The
// connected socket, or -1.
inline int ConnectWhileOutOfDescriptors(int port, const std::function<bool()>& while_starved,
                                        bool* result) {
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0) return -1;
  rlimit was{};
  if (::getrlimit(RLIMIT_NOFILE, &was) != 0) {
    ::close(client);
    return -1;
  }
  rlimit low = was;
  low.rlim_cur = static_cast<rlim_t>(client) + 64;
  if (low.rlim_cur >= was.rlim_cur || ::setrlimit(RLIMIT_NOFILE, &low) != 0) {
    ::close(client);
    return -1;
  }
  std::vector<int> fillers;
  for (int fd; (fd = ::dup(client)) >= 0;) fillers.push_back(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  *result = while_starved();
  for (int fd : fillers) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &was);
  if (!connected) {
    ::close(client);
    return -1;
  }
  return client;
}

}  // namespace cohost::testing
