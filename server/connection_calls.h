// The calls in flight on each connection that the plaintext gRPC listener
// (server/grpc_listener.h) handed to gRPC, counted by a server interceptor
// that sees every call (from its first step: before it, a call is not
// counted): the listener, at its cap, sheds only a connection with none.
// gRPC names a connection it was given as a descriptor "fd:N" (a call's
// ServerContext::peer), N being the descriptor the listener handed over;
// calls on other connections (TLS: gRPC's own listener) are not counted.
// Were a later gRPC to name them otherwise, no call would be counted:
// tests/server/grpc_listener_test.cc fails then.
#pragma once

#include <memory>
#include <mutex>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/grpc_listener.h"

namespace cohost::server {

class ConnectionCalls {
 public:
  // N of a peer "fd:N", or -1 for any other.
  static int DescriptorOf(std::string_view peer);

  // Any thread.
  ConnectionUse UseOf(int fd) const;
  void Begin(int fd);
  void End(int fd);

  // For ServerBuilder::experimental().SetInterceptorCreators: each call
  // Begins when gRPC creates its interceptor (a synchronous service's: at
  // the call's first step) and Ends when gRPC destroys it, with the call.
  // This object must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  mutable std::mutex mu_;
  // By descriptor; an entry stays when its connection closes (a later one
  // on the same number starts from it: GrpcListener takes the later of its
  // hand-over and the entry's last end). At most one per descriptor number.
  absl::flat_hash_map<int, ConnectionUse> uses_;  // guarded by mu_
};

}  // namespace cohost::server
