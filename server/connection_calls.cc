#include "server/connection_calls.h"

#include <atomic>
#include <charconv>
#include <mutex>
#include <string>

#include "grpcpp/server_context.h"

namespace cohost::server {
namespace {

// Counts its call on its connection for as long as gRPC keeps it (until the
// call is done), and passes every step of the call on untouched. Its
// factory reads the call's connection from its peer; a synchronous service's
// (reflection's) context has no call yet when its interceptors are made, so
// that one reads it at the call's first step.
class CallCounter : public grpc::experimental::Interceptor {
 public:
  // `fd`: the call's connection, as its peer named it; -1 while its peer
  // is not known (read at the first step).
  CallCounter(ConnectionCalls* calls, grpc::experimental::ServerRpcInfo* info, int fd)
      : calls_(calls), info_(info), fd_(fd) {
    if (fd_ < 0) return;
    calls_->Begin(fd_);
    looked_.store(true, std::memory_order_relaxed);
  }
  ~CallCounter() override {
    if (fd_ >= 0) calls_->End(fd_);
  }
  CallCounter(const CallCounter&) = delete;
  CallCounter& operator=(const CallCounter&) = delete;

  // A stream's read and write may be intercepted on two threads at once.
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!looked_.load(std::memory_order_acquire)) Count();
    methods->Proceed();
  }

 private:
  void Count() {
    std::lock_guard<std::mutex> lock(mu_);
    if (looked_.load(std::memory_order_relaxed)) return;
    const std::string peer = info_->server_context()->peer();
    if (peer.empty()) return;  // not bound to its call yet
    fd_ = ConnectionCalls::DescriptorOf(peer);
    if (fd_ >= 0) calls_->Begin(fd_);
    looked_.store(true, std::memory_order_release);
  }

  ConnectionCalls* const calls_;
  grpc::experimental::ServerRpcInfo* const info_;  // gRPC's; outlives this
  std::mutex mu_;
  std::atomic<bool> looked_{false};  // the peer was read
  int fd_;                           // the connection counted, if any (set under mu_)
};

class CallCounterFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCounterFactory(ConnectionCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const std::string peer = info->server_context()->peer();
    if (peer.empty()) return new CallCounter(calls_, info, -1);  // not known yet
    const int fd = ConnectionCalls::DescriptorOf(peer);
    // Another kind of connection: nothing to count.
    return fd < 0 ? nullptr : new CallCounter(calls_, info, fd);
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
