// The local port of a bound socket (the OS picks one for port 0): the one
// reading of getsockname that every listener here makes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

namespace cohost::server {

// 0 when it cannot be read.
inline int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace cohost::server
