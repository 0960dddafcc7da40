#include "server/connection_calls.h"

#include <charconv>
#include <string>

#include "grpcpp/server_context.h"

namespace cohost::server {
namespace {

// Counts its call on its connection for as long as gRPC keeps it (until the
// call is done), and passes every step of the call on untouched.
class CallCounter : public grpc::experimental::Interceptor {
 public:
  CallCounter(ConnectionCalls* calls, int fd) : calls_(calls), fd_(fd) { calls_->Begin(fd_); }
  ~CallCounter() override { calls_->End(fd_); }
  CallCounter(const CallCounter&) = delete;
  CallCounter& operator=(const CallCounter&) = delete;

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  ConnectionCalls* const calls_;
  const int fd_;
};

class CallCounterFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCounterFactory(ConnectionCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const int fd = ConnectionCalls::DescriptorOf(info->server_context()->peer());
    return fd < 0 ? nullptr : new CallCounter(calls_, fd);
  }

 private:
  ConnectionCalls* const calls_;
};

}  // namespace

int ConnectionCalls::DescriptorOf(std::string_view peer) {
  constexpr std::string_view kPrefix = "fd:";
  if (!peer.starts_with(kPrefix)) return -1;
  peer.remove_prefix(kPrefix.size());
  int fd = -1;
  const auto [end, error] = std::from_chars(peer.data(), peer.data() + peer.size(), fd);
  if (error != std::errc() || end != peer.data() + peer.size() || fd < 0) return -1;
  return fd;
}

ConnectionUse ConnectionCalls::UseOf(int fd) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = uses_.find(fd);
  return it == uses_.end() ? ConnectionUse{} : it->second;
}

void ConnectionCalls::Begin(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  ++uses_[fd].calls;
}

void ConnectionCalls::End(int fd) {
  const ConnectionUse::Clock::time_point now = ConnectionUse::Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  ConnectionUse& use = uses_[fd];
  --use.calls;
  use.last_end = now;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ConnectionCalls::InterceptorFactory() {
  return std::make_unique<CallCounterFactory>(this);
}

}  // namespace cohost::server
