// API keys: who a caller is (tenant) and what it may do (role), for both
// front doors. Keys come from --api-key-file and COHOST_API_KEY; with none
// configured every caller is allowed (the server then binds loopback by
// default and warns otherwise). Keys are kept only as SHA-256 digests and
// compared in constant time; no error or log line ever contains one.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cohost::server::auth {

// Where a caller's credential and claimed tenant travel: gRPC metadata keys,
// and HTTP header names (which match case-insensitively).
inline constexpr char kAuthorizationHeader[] = "authorization";
inline constexpr char kTenantHeader[] = "x-cohost-tenant";

enum class Role { kUser, kAdmin };  // admin may also do everything a user may

std::string_view RoleName(Role role);

struct Principal {
  std::string tenant;  // empty: the default tenant
  Role role = Role::kUser;
};

// The calls that need no key, whatever is configured (README's exempt list):
// grpc.health.v1, gRPC reflection (the public API's schema only), GET /health
// and the metrics port.
class ApiKeys {
 public:
  static constexpr size_t kMinKeyBytes = 16;
  static constexpr size_t kMaxKeyBytes = 256;
  static constexpr size_t kMaxKeys = 10'000;

  // The key file: one key per line, `KEY [tenant=NAME] [role=user|admin]`;
  // blank lines and lines starting with '#' are skipped. A key is 16..256
  // printable ASCII bytes without spaces; each field at most once, NAME not
  // empty. Errors name `source` and the line, never the key. Default role:
  // user; default tenant: none.
  static absl::StatusOr<ApiKeys> Parse(std::string_view text, std::string_view source);
  // A file with no keys (or a directory) is INVALID_ARGUMENT: asked for
  // keys, the server never runs without any.
  static absl::StatusOr<ApiKeys> FromFile(const std::string& path);
  // What the server runs with: `file`'s keys (when given) plus `env_key`
  // (COHOST_API_KEY's value when set and non-empty), an admin key.
  static absl::StatusOr<ApiKeys> Load(const std::optional<std::string>& file, const char* env_key);

  // Adds one key (COHOST_API_KEY's is an admin key without a tenant).
  // INVALID_ARGUMENT for a malformed or repeated key.
  absl::Status Add(std::string_view key, Principal principal);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // The tenants the keys name, each once.
  std::vector<std::string> Tenants() const;

  // Checks the credential a caller presented: an `authorization` value,
  // "Bearer KEY" (or the bare key). With no keys configured, anyone is a
  // tenant-less admin. UNAUTHENTICATED when the value is missing or matches
  // no key; PERMISSION_DENIED when the key's role is below `needed`.
  absl::StatusOr<Principal> Authenticate(std::optional<std::string_view> authorization,
                                         Role needed) const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    Digest digest;
    Principal principal;
  };
  // Index of the matching entry, found without an early exit.
  std::optional<size_t> Match(std::string_view key) const;

  std::vector<Entry> entries_;
};

// Whether `host` (a listen address) is reachable from this machine only:
// 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackHost(std::string_view host);

// The tenant a request runs as: the key's when keys are configured (a
// different `claimed` one is PERMISSION_DENIED), else the claimed one.
// INVALID_ARGUMENT for a claimed name that breaks the tenant name rule
// (common/tenant_name.h). The one home of the tenant rule for both front
// doors.
absl::StatusOr<std::string> ResolveTenant(const ApiKeys& keys, const Principal& principal,
                                          std::optional<std::string_view> claimed);

}  // namespace cohost::server::auth
