// Parsing the key file, and constant-time key checks over SHA-256 digests.

#include "server/auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tenant_name.h"
#include "server/auth/read_file.h"

namespace cohost::server::auth {
namespace {

constexpr size_t kMaxKeyFileBytes = size_t{4} << 20;

bool IsKeyByte(char c) { return c > ' ' && c < 0x7f; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Strip(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// The whitespace-separated fields of a line.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (!(line = Strip(line)).empty()) {
    size_t end = 0;
    while (end < line.size() && !IsSpace(line[end])) ++end;
    out.push_back(line.substr(0, end));
    line.remove_prefix(end);
  }
  return out;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (!s->starts_with(prefix)) return false;
  s->remove_prefix(prefix.size());
  return true;
}

// "Bearer KEY" (any case, any spaces) -> "KEY"; anything else as is.
std::string_view WithoutBearer(std::string_view value) {
  value = Strip(value);
  constexpr std::string_view kBearer = "bearer";
  if (value.size() <= kBearer.size() || !IsSpace(value[kBearer.size()])) return value;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if ((value[i] | 0x20) != kBearer[i]) return value;
  }
  return Strip(value.substr(kBearer.size()));
}

absl::Status CheckKey(std::string_view key) {
  if (key.size() < ApiKeys::kMinKeyBytes || key.size() > ApiKeys::kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a key must be ", ApiKeys::kMinKeyBytes, "..",
                                                   ApiKeys::kMaxKeyBytes, " bytes, this one is ",
                                                   key.size()));
  }
  for (char c : key) {
    if (!IsKeyByte(c)) {
      return absl::InvalidArgumentError("a key may hold only printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Role> ParseRole(std::string_view name) {
  if (name == "user") return Role::kUser;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError("role must be user or admin");
}

}  // namespace

std::string_view RoleName(Role role) { return role == Role::kAdmin ? "admin" : "user"; }

absl::Status ApiKeys::Add(std::string_view key, Principal principal) {
  if (absl::Status s = CheckKey(key); !s.ok()) return s;
  if (absl::Status s = ValidateTenantName(principal.tenant); !s.ok()) return s;
  if (Match(key).has_value()) return absl::InvalidArgumentError("the same key is given twice");
  if (entries_.size() >= kMaxKeys) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxKeys, " keys"));
  }
  Entry e;
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), e.digest.data());
  e.principal = std::move(principal);
  entries_.push_back(std::move(e));
  return absl::OkStatus();
}

absl::StatusOr<ApiKeys> ApiKeys::Parse(std::string_view text, std::string_view source) {
  ApiKeys keys;
  int line_number = 0;
  while (!text.empty()) {
    const size_t eol = std::min(text.find('\n'), text.size());
    std::string_view line = Strip(text.substr(0, eol));
    text.remove_prefix(std::min(eol + 1, text.size()));
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(source), ":", line_number, ": ", s.message()));
    };
    const std::vector<std::string_view> fields = Fields(line);
    Principal principal;
    bool has_tenant = false, has_role = false;
    const auto once = [&](bool* seen, std::string_view field) -> absl::Status {
      if (*seen) return absl::InvalidArgumentError(std::string(field) + " is given twice");
      *seen = true;
      return absl::OkStatus();
    };
    for (size_t i = 1; i < fields.size(); ++i) {
      std::string_view f = fields[i];
      if (ConsumePrefix(&f, "tenant=")) {
        if (absl::Status s = once(&has_tenant, "tenant="); !s.ok()) return fail(s);
        // A key without a tenant leaves the field out; an empty name here is
        // more likely a name lost in editing than a wish for none.
        if (f.empty()) {
          return fail(absl::InvalidArgumentError(
              "tenant= needs a name (leave it out for a key without a tenant)"));
        }
        principal.tenant = std::string(f);
      } else if (ConsumePrefix(&f, "role=")) {
        if (absl::Status s = once(&has_role, "role="); !s.ok()) return fail(s);
        absl::StatusOr<Role> role = ParseRole(f);
        if (!role.ok()) return fail(role.status());
        principal.role = *role;
      } else {
        return fail(absl::InvalidArgumentError(
            "after the key only tenant=NAME and role=user|admin may follow"));
      }
    }
    if (absl::Status s = keys.Add(fields[0], std::move(principal)); !s.ok()) return fail(s);
  }
  return keys;
}

absl::StatusOr<ApiKeys> ApiKeys::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile("the key file", path, kMaxKeyFileBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<ApiKeys> keys = Parse(*text, path);
  if (keys.ok() && keys->empty()) {
    // Fails closed: no keys would mean none is needed (every key commented
    // out during a rotation must not open the server).
    return absl::InvalidArgumentError(
        absl::StrCat("the key file ", path, " holds no keys (every line is blank or a comment)"));
  }
  return keys;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::optional<std::string>& file, const char* env_key) {
  ApiKeys keys;
  if (file) {
    absl::StatusOr<ApiKeys> from_file = FromFile(*file);
    if (!from_file.ok()) return from_file.status();
    keys = *std::move(from_file);
  }
  if (env_key != nullptr && *env_key != '\0') {
    if (absl::Status s = keys.Add(env_key, Principal{"", Role::kAdmin}); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("COHOST_API_KEY: ", s.message()));
    }
  }
  return keys;
}

std::vector<std::string> ApiKeys::Tenants() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) {
    if (!e.principal.tenant.empty()) out.push_back(e.principal.tenant);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

std::optional<size_t> ApiKeys::Match(std::string_view key) const {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest.data());
  // Every entry is compared, with CRYPTO_memcmp, so the time taken does not
  // depend on which key (if any) matched or how much of it did.
  std::optional<size_t> found;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const bool equal = CRYPTO_memcmp(digest.data(), entries_[i].digest.data(), digest.size()) == 0;
    if (equal) found = i;
  }
  return found;
}

absl::StatusOr<Principal> ApiKeys::Authenticate(std::optional<std::string_view> authorization,
                                                Role needed) const {
  if (entries_.empty()) return Principal{"", Role::kAdmin};
  if (!authorization.has_value() || authorization->empty()) {
    return absl::UnauthenticatedError(
        "an API key is required: send it as \"authorization: Bearer KEY\"");
  }
  const std::optional<size_t> match = Match(WithoutBearer(*authorization));
  if (!match) return absl::UnauthenticatedError("the API key is not valid");
  const Principal& p = entries_[*match].principal;
  if (needed == Role::kAdmin && p.role != Role::kAdmin) {
    return absl::PermissionDeniedError("this call needs an admin key");
  }
  return p;
}

absl::StatusOr<std::string> ResolveTenant(const ApiKeys& keys, const Principal& principal,
                                          std::optional<std::string_view> claimed) {
  if (keys.empty()) {
    if (!claimed) return std::string();
    if (absl::Status s = ValidateTenantName(*claimed); !s.ok()) return s;
    return std::string(*claimed);
  }
  if (claimed && *claimed != principal.tenant) {
    return absl::PermissionDeniedError("the tenant is set by the API key and cannot be claimed");
  }
  return principal.tenant;
}

}  // namespace cohost::server::auth
