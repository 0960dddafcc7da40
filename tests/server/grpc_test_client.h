// Client-side helpers for the server's end-to-end tests: a blocking Generate
// that collects the whole stream, the grpc.health.v1 Check and reflection
// list_services calls (hand-encoded: Debian ships no C++ stubs for their
// protos), and a loopback TCP proxy whose connections a test can cut, to play
// a client that vanishes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cohost/v1/inference.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::testing {

struct StreamResult {
  grpc::Status status;
  std::vector<v1::GenerateResponse> messages;
  std::string text;  // all deltas concatenated
  std::vector<int32_t> token_ids;
  std::multimap<std::string, std::string> trailers;

  const v1::GenerateResponse& last() const { return messages.back(); }
};

// A channel to 127.0.0.1:`port` on its own TCP connection (a local subchannel
// pool), with `args` besides.
inline std::shared_ptr<grpc::Channel> OwnLoopbackChannel(int port,
                                                         grpc::ChannelArguments args = {}) {
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

struct CallOptions {
  std::optional<std::chrono::milliseconds> timeout;
  std::string tenant;
  // The caller's context (to TryCancel from another thread); one is made
  // when null.
  grpc::ClientContext* context = nullptr;
};

inline StreamResult Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& request,
                             const CallOptions& options = {}) {
  grpc::ClientContext own;
  grpc::ClientContext& ctx = options.context != nullptr ? *options.context : own;
  if (options.timeout) ctx.set_deadline(std::chrono::system_clock::now() + *options.timeout);
  if (!options.tenant.empty()) ctx.AddMetadata("x-cohost-tenant", options.tenant);
  StreamResult r;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub.Generate(&ctx, request);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    r.text += msg.text();
    r.token_ids.insert(r.token_ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    r.messages.push_back(msg);
  }
  r.status = reader->Finish();
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    r.trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return r;
}

// grpc.health.v1.Health/Check. Returns the serving status (1 SERVING,
// 2 NOT_SERVING) or the call's error.
inline absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                       const std::string& service) {
  // HealthCheckRequest { string service = 1; }
  std::string req = "\x0a";
  req.push_back(static_cast<char>(service.size()));  // names here are < 128 bytes
  req += service;
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse { ServingStatus status = 1; }: absent means 0 (UNKNOWN).
  if (bytes.size() >= 2 && bytes[0] == '\x08') return static_cast<int>(bytes[1]);
  return 0;
}

// grpc.reflection.v1alpha.ServerReflection: one list_services request; the
// raw bytes of the response (service names appear in it verbatim), or the
// call's error.
inline absl::StatusOr<std::string> ReflectionListServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok = false;
  auto step = [&] { return cq.Next(&tag, &ok) && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step()) return absl::UnavailableError("cannot start the reflection call");
  // ServerReflectionRequest { string list_services = 7; } with an empty value.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  if (!step()) return absl::UnavailableError("cannot write the reflection request");
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  const bool got = step();
  call->WritesDone(reinterpret_cast<void*>(4));
  step();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  if (!got) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

// Forwards every connection made to 127.0.0.1:port() to 127.0.0.1:target.
// CutAll() closes both ends of every connection, as a crashed client would.
class TcpProxy {
 public:
  explicit TcpProxy(int target) : target_(target) {
    listen_fd_ = ListenLoopback(&port_);
    if (listen_fd_ < 0) return;
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TcpProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    CutAll();
    if (accept_thread_.joinable()) accept_thread_.join();
    for (std::thread& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listen_fd_);
  }

  int port() const { return port_; }

  void CutAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      const int server = ConnectLoopback(target_);
      if (server < 0) {
        ::close(client);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(client);
      fds_.push_back(server);
      pumps_.emplace_back([client, server] { Pump(client, server); });
    }
  }

  static void Pump(int a, int b) {
    char buf[16384];
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    for (;;) {
      if (::poll(p, 2, 200) < 0) break;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (p[i].revents == 0) continue;
        const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        done = n <= 0 || !WriteAll(p[1 - i].fd, buf, static_cast<size_t>(n));
      }
      if (done) break;
    }
    // Closed by the destructor, so that CutAll never meets a reused fd.
    ::shutdown(a, SHUT_RDWR);
    ::shutdown(b, SHUT_RDWR);
  }

  static bool WriteAll(int fd, const char* data, size_t n) {
    while (n > 0) {
      // send, not write: a peer cut by CutAll must fail the call, not raise SIGPIPE.
      const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  int target_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
};

}  // namespace cohost::testing
