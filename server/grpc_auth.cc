// Metadata lookups for API keys and tenants.

#include "server/grpc_auth.h"

namespace cohost::server {

std::optional<std::string_view> ClientMetadata(const grpc::CallbackServerContext& context,
                                               std::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return std::nullopt;
  return std::string_view(it->second.data(), it->second.size());
}

absl::StatusOr<auth::Principal> AuthenticateCall(const grpc::CallbackServerContext& context,
                                                 const auth::ApiKeys& keys, auth::Role needed) {
  return keys.Authenticate(ClientMetadata(context, auth::kAuthorizationHeader), needed);
}

absl::StatusOr<std::string> CallTenant(const grpc::CallbackServerContext& context,
                                       const auth::ApiKeys& keys,
                                       const auth::Principal& principal) {
  return auth::ResolveTenant(keys, principal, ClientMetadata(context, auth::kTenantHeader));
}

}  // namespace cohost::server
