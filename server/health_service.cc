// grpc.health.v1.Health: statuses in a map, Check and Watch over it, and the
// key check for per-model names.

#include "server/health_service.h"

#include <atomic>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/client_address.h"
#include "server/connection_calls.h"
#include "server/grpc_auth.h"
#include "server/grpc_status.h"
#include "server/raw_message.h"

namespace cohost::server {

namespace {

// A Watch refused before it began: finished once, with the refusal (a
// cancel changes nothing: OnCancel does not finish it again).
class RefusedWatch final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedWatch(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// The client key (ClientKey) of a call's peer: "fd:N" for a connection
// cohost's listener handed over (read from the socket, open while the call
// is), else the address gRPC's own listener names (TLS; PeerUriClientKey).
std::string ClientOfPeer(std::string_view peer, bool count_loopback) {
  if (const int fd = ConnectionCalls::DescriptorOf(peer); fd >= 0) {
    return PeerClientKey(fd, count_loopback);
  }
  return PeerUriClientKey(peer, count_loopback);
}

}  // namespace

// One Watch stream: the latest status waiting to be written, and whether a
// write is in flight. The service owns it: Update is called under the
// service's mutex, and OnDone only marks the watcher done (it must not take
// that mutex: gRPC may run it inside a Start call made under it); the
// service deletes done watchers under its mutex.
class HealthService::Watcher final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  Watcher(std::string name, std::string client)
      : name_(std::move(name)), client_(std::move(client)) {}

  void Update(Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ = status;
      if (writing_ || ending_) return;
      writing_ = true;  // until OnWriteDone: the stream cannot finish meanwhile
      out_ = Serialized(status);
      last_ = status;
    }
    StartWrite(&out_);
  }

  void OnWriteDone(bool ok) override {
    bool write = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ok || ending_) {
        writing_ = false;
        ending_ = true;
      } else if (pending_ != last_) {
        out_ = Serialized(pending_);
        last_ = pending_;
        write = true;
      } else {
        writing_ = false;
        return;
      }
    }
    if (write) {
      StartWrite(&out_);
    } else {
      Finish(grpc::Status::CANCELLED);
    }
  }

  // The client left (or the server is shutting down): finish now, or once
  // the write in flight is done.
  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ending_) return;
      ending_ = true;
      if (writing_) return;
    }
    Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override { done_.store(true, std::memory_order_release); }

  const std::string& name() const { return name_; }
  const std::string& client() const { return client_; }  // empty: not counted
  bool done() const { return done_.load(std::memory_order_acquire); }

 private:
  const std::string name_;
  const std::string client_;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  static grpc::ByteBuffer Serialized(Status status) {
    Response response;
    response.set_status(status);
    return SerializeMessage(response);
  }

  grpc::ByteBuffer out_;  // what the write in flight sends; changed only between writes
  Status pending_ = Response::UNKNOWN, last_ = Response::UNKNOWN;
  bool writing_ = false;
  bool ending_ = false;  // cancelled, or a write failed: Finish is called or due
};

HealthService::HealthService(const auth::ApiKeys* keys, size_t max_watches,
                             size_t max_watches_per_client, bool count_loopback)
    : keys_(keys),
      max_watches_(max_watches),
      max_watches_per_client_(max_watches_per_client),
      count_loopback_(count_loopback) {
  serving_[""] = true;
}

HealthService::~HealthService() {
  // The server is gone: every stream is done.
  for (const auto& [name, watcher] : watchers_) delete watcher;
}

void HealthService::DeleteDoneWatchers() {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (it->second->done()) {
      if (const std::string& client = it->second->client(); !client.empty()) {
        if (auto held = per_client_.find(client);
            held != per_client_.end() && --held->second == 0) {
          per_client_.erase(held);
        }
      }
      delete it->second;
      it = watchers_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status HealthService::Authorize(const grpc::CallbackServerContext& context,
                                      const std::string& name) const {
  if (name.empty()) return absl::OkStatus();
  return AuthenticateCall(context, *keys_, auth::Role::kUser).status();
}

HealthService::Status HealthService::StatusOf(const std::string& name) const {
  auto it = serving_.find(name);
  if (it == serving_.end()) return Response::SERVICE_UNKNOWN;
  return it->second ? Response::SERVING : Response::NOT_SERVING;
}

void HealthService::Set(const std::string& name, bool serving) {
  serving_[name] = serving;
  const Status status = StatusOf(name);
  auto [first, last] = watchers_.equal_range(name);
  for (auto it = first; it != last; ++it) it->second->Update(status);
}

void HealthService::SetServingStatus(const std::string& service_name, bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  DeleteDoneWatchers();
  Set(service_name, serving);
}

void HealthService::SetServingStatus(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  DeleteDoneWatchers();
  for (auto& [name, unused] : serving_) Set(name, serving);
}

void HealthService::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  DeleteDoneWatchers();
  for (auto& [name, unused] : serving_) Set(name, false);
  shut_down_ = true;
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer* request_bytes,
                                               grpc::ByteBuffer* response_bytes) {
  absl::StatusOr<Request> request = ParseMessage<Request>(*request_bytes);
  absl::Status status = request.status();
  if (status.ok()) status = Authorize(*context, request->service());
  Response response;
  if (status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    const Status s = StatusOf(request->service());
    if (s == Response::SERVICE_UNKNOWN) {
      status = absl::NotFoundError("unknown service");
    } else {
      response.set_status(s);
    }
  }
  return FinishUnary(context, status, response, response_bytes);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HealthService::Watch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes) {
  absl::StatusOr<Request> request = ParseMessage<Request>(*request_bytes);
  absl::Status status = request.status();
  if (status.ok()) status = Authorize(*context, request->service());
  if (!status.ok()) return new RefusedWatch(ToGrpcStatus(status));
  std::string client = ClientOfPeer(context->peer(), count_loopback_);
  std::lock_guard<std::mutex> lock(mu_);
  DeleteDoneWatchers();  // a sweep bounded by the cap
  if (watchers_.size() >= max_watches_) {
    return new RefusedWatch(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("the server holds ", max_watches_, " health watches, its limit"))));
  }
  if (!client.empty()) {
    // Counted only once admitted: a refused client leaves no entry.
    const auto held = per_client_.find(client);
    if ((held == per_client_.end() ? 0 : held->second) >= max_watches_per_client_) {
      return new RefusedWatch(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
          "this client holds ", max_watches_per_client_, " health watches, its limit"))));
    }
    ++per_client_[client];
  }
  auto* watcher = new Watcher(request->service(), std::move(client));
  watchers_.emplace(request->service(), watcher);
  watcher->Update(StatusOf(request->service()));
  return watcher;
}

}  // namespace cohost::server
