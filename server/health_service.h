// grpc.health.v1.Health, served by cohost instead of gRPC's default service
// so that the per-model names answer only with an API key: unauthenticated,
// a client learns whether the server is serving ("", which load balancers and
// Kubernetes probe) and nothing about which models it holds. Without keys
// configured, every name answers as before.
//
// Check: SERVING / NOT_SERVING, NOT_FOUND for a name never set. Watch: the
// status at once (SERVICE_UNKNOWN for a name never set), then each change,
// until the client cancels or the server shuts down; a watcher that reads
// slowly gets the latest status, not every one in between. Shutdown() turns
// every name NOT_SERVING and ignores later changes (the drain).
//
// HealthWatchdog sets the statuses through grpc::HealthCheckServiceInterface.
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/auth/api_keys.h"

namespace cohost::server {

// Both methods registered raw (server/raw_message.h): an unparsable request
// is INVALID_ARGUMENT.
using HealthCallbackBase = grpc::health::v1::Health::WithRawCallbackMethod_Check<
    grpc::health::v1::Health::WithRawCallbackMethod_Watch<grpc::health::v1::Health::Service>>;

class HealthService final : public HealthCallbackBase, public grpc::HealthCheckServiceInterface {
 public:
  using Request = grpc::health::v1::HealthCheckRequest;
  using Response = grpc::health::v1::HealthCheckResponse;

  // `keys` must outlive the service. "" starts SERVING, as gRPC's default.
  // At most `max_watches` Watch streams are open at once: the empty name
  // takes no key, and each stream holds memory (RESOURCE_EXHAUSTED past it).
  // Of them, at most `max_watches_per_client` from one client address, so
  // that one client cannot take them all and leave the load balancers that
  // watch the server reading it as down; loopback clients (a proxy beside
  // the server) are not counted unless `count_loopback` (ClientKey).
  explicit HealthService(const auth::ApiKeys* keys, size_t max_watches = 16384,
                         size_t max_watches_per_client = 1024, bool count_loopback = false);
  ~HealthService() override;

  void SetServingStatus(const std::string& service_name, bool serving) override;
  void SetServingStatus(bool serving) override;
  void Shutdown() override;

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;

 private:
  class Watcher;
  using Status = Response::ServingStatus;

  // OK for "", or for any name with a valid key (or no keys configured).
  absl::Status Authorize(const grpc::CallbackServerContext& context, const std::string& name) const;
  // Under mu_: a name's status; setting it, to its watchers too; and the
  // sweep of watchers whose streams ended (once per public call).
  Status StatusOf(const std::string& name) const;
  void Set(const std::string& name, bool serving);
  void DeleteDoneWatchers();

  const auth::ApiKeys* keys_;
  const size_t max_watches_;
  const size_t max_watches_per_client_;
  const bool count_loopback_;
  mutable std::mutex mu_;
  std::map<std::string, bool> serving_;  // guarded by mu_
  bool shut_down_ = false;               // guarded by mu_
  // Every registered watcher, by name; done ones until the next
  // DeleteDoneWatchers. Guarded by mu_.
  std::multimap<std::string, Watcher*> watchers_;
  // The watchers in watchers_ by client key (ClientKey), those not counted
  // aside. Guarded by mu_.
  std::map<std::string, size_t> per_client_;
};

}  // namespace cohost::server
