// A client's address as the key its share of a port's connections is
// counted by (GrpcListener, ConnectionCap): the one rule of who "one client"
// is on every port.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cohost::server {

// An IPv4 address's bytes (an IPv4-mapped IPv6 one's too: a dual-stack
// socket's IPv4 clients are the same clients); an IPv6 address's /64 prefix
// (a host usually has a whole /64 to take addresses from, a new one for each
// connection if it likes); empty, so not counted, for a loopback address (a
// proxy beside the server speaks for many) unless `count_loopback`, and for
// anything but IPv4 and IPv6.
inline std::string ClientKey(const sockaddr_storage& addr, bool count_loopback) {
  const unsigned char* bytes = nullptr;
  size_t size = 0;
  if (addr.ss_family == AF_INET) {
    bytes = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr);
    size = 4;
  } else if (addr.ss_family == AF_INET6) {
    const in6_addr& a6 = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
    bytes = a6.s6_addr;
    size = 8;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      bytes += 12;
      size = 4;
    } else if (IN6_IS_ADDR_LOOPBACK(&a6) && !count_loopback) {
      return "";
    }
  } else {
    return "";
  }
  if (size == 4 && bytes[0] == 127 && !count_loopback) return "";
  return std::string(reinterpret_cast<const char*>(bytes), size);
}

// The key of the client a gRPC peer URI names: "ipv4:A:P", "ipv6:[A]:P"
// (the brackets maybe escaped, %5B and %5D); empty for anything else.
inline std::string PeerUriClientKey(std::string_view peer, bool count_loopback) {
  sockaddr_storage addr{};
  std::string host;
  if (peer.starts_with("ipv4:")) {
    peer.remove_prefix(5);
    host = std::string(peer.substr(0, peer.rfind(':')));
    addr.ss_family = AF_INET;
    if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr) != 1) {
      return "";
    }
  } else if (peer.starts_with("ipv6:")) {
    peer.remove_prefix(5);
    size_t open = 0, close = 0;
    if (peer.starts_with("[")) {
      open = 1;
      close = peer.find(']');
    } else if (peer.starts_with("%5B")) {
      open = 3;
      close = peer.find("%5D");
    } else {
      return "";
    }
    if (close == std::string_view::npos) return "";
    host = std::string(peer.substr(open, close - open));
    addr.ss_family = AF_INET6;
    if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr) !=
        1) {
      return "";
    }
  } else {
    return "";
  }
  return ClientKey(addr, count_loopback);
}

// The key of the client connected on socket `fd`; empty when it cannot be read.
inline std::string PeerClientKey(int fd, bool count_loopback) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  return ClientKey(addr, count_loopback);
}

}  // namespace cohost::server
