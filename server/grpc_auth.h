// The gRPC side of API keys: reads the `authorization` and `x-cohost-tenant`
// metadata of a call and applies auth::ApiKeys' rules to them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "server/auth/api_keys.h"

namespace cohost::server {

// The value of metadata `key`, if the client sent it.
std::optional<std::string_view> ClientMetadata(const grpc::CallbackServerContext& context,
                                               std::string_view key);

// UNAUTHENTICATED / PERMISSION_DENIED as auth::ApiKeys::Authenticate.
absl::StatusOr<auth::Principal> AuthenticateCall(const grpc::CallbackServerContext& context,
                                                 const auth::ApiKeys& keys, auth::Role needed);

// The tenant of a call: auth::ResolveTenant over its x-cohost-tenant.
absl::StatusOr<std::string> CallTenant(const grpc::CallbackServerContext& context,
                                       const auth::ApiKeys& keys, const auth::Principal& principal);

}  // namespace cohost::server
