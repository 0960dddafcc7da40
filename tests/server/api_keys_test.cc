// API keys: the key file's grammar and its errors (which never show a key),
// roles, the bearer form, and the tenant rule.

#include "server/auth/api_keys.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "common/tenant_name.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::server::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kUserKey[] = "user-key-0123456789";
constexpr char kAdminKey[] = "admin-key-0123456789";

ApiKeys TwoKeys() {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(
      "# comment\n\nuser-key-0123456789 tenant=alice\n  admin-key-0123456789 role=admin  \n",
      "keys.txt");
  EXPECT_TRUE(keys.ok()) << keys.status();
  return *keys;
}

TEST(ApiKeysTest, ParsesKeysTenantsAndRoles) {
  const ApiKeys keys = TwoKeys();
  ASSERT_EQ(keys.size(), 2u);
  absl::StatusOr<Principal> user = keys.Authenticate("Bearer user-key-0123456789", Role::kUser);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->tenant, "alice");
  EXPECT_EQ(user->role, Role::kUser);
  absl::StatusOr<Principal> admin = keys.Authenticate(kAdminKey, Role::kAdmin);  // bare form
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->tenant, "");
  EXPECT_EQ(admin->role, Role::kAdmin);
  EXPECT_TRUE(keys.Authenticate("bearer   admin-key-0123456789", Role::kUser).ok());
  EXPECT_EQ(keys.Tenants(), std::vector<std::string>{"alice"}) << "the keys' tenants, once each";
  absl::StatusOr<ApiKeys> more = ApiKeys::Parse(
      "k1-0123456789abcdef tenant=bob\nk2-0123456789abcdef tenant=alice\n"
      "k3-0123456789abcdef tenant=bob role=admin\nk4-0123456789abcdef\n",
      "keys.txt");
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(more->Tenants(), (std::vector<std::string>{"alice", "bob"}));
}

TEST(ApiKeysTest, RefusesMissingWrongAndUnderprivilegedKeys) {
  const ApiKeys keys = TwoKeys();
  EXPECT_EQ(keys.Authenticate(std::nullopt, Role::kUser).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Authenticate("", Role::kUser).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Authenticate("Bearer user-key-0123456780", Role::kUser).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A prefix of a key is not the key.
  EXPECT_EQ(keys.Authenticate("Bearer user-key-012345678", Role::kUser).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Authenticate(kUserKey, Role::kAdmin).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(ApiKeysTest, NoKeysAllowsEveryoneAsAdmin) {
  const ApiKeys keys;
  absl::StatusOr<Principal> p = keys.Authenticate(std::nullopt, Role::kAdmin);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->role, Role::kAdmin);
}

TEST(ApiKeysTest, FileErrorsNameTheLineNotTheKey) {
  struct Case {
    const char* text;
    const char* expected;
  };
  for (const Case& c : {
           Case{"short-key\n", "keys.txt:1: a key must be 16..256 bytes"},
           Case{"ok-key-0123456789abc\nok-key-0123456789abc\n", "keys.txt:2: the same key"},
           Case{"ok-key-0123456789abc role=root\n", "keys.txt:1: role must be user or admin"},
           Case{"ok-key-0123456789abc colour=red\n", "keys.txt:1: after the key only"},
           Case{"ok-key-0123456789abc tenant=\n", "keys.txt:1: tenant= needs a name"},
           Case{"# keys\nok-key-0123456789abc tenant=a tenant=b\n",
                "keys.txt:2: tenant= is given twice"},
           Case{"ok-key-0123456789abc role=user role=admin\n", "keys.txt:1: role= is given twice"},
           Case{"ok-key-\x01-0123456789abc\n", "keys.txt:1: a key may hold only printable"},
       }) {
    absl::StatusOr<ApiKeys> keys = ApiKeys::Parse(c.text, "keys.txt");
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(keys.status().message(), HasSubstr(c.expected));
    EXPECT_THAT(keys.status().message(), Not(HasSubstr("ok-key")));
  }
}

TEST(ApiKeysTest, LoadAddsTheEnvironmentKeyAsAdmin) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load(std::nullopt, "env-key-0123456789abc");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->Authenticate("Bearer env-key-0123456789abc", Role::kAdmin).ok());
  EXPECT_TRUE(ApiKeys::Load(std::nullopt, "")->empty());
  EXPECT_EQ(ApiKeys::Load(std::nullopt, "short").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ApiKeys> missing = ApiKeys::Load("/nonexistent/keys.txt", nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

// Asked for keys, the server never runs without any: a key file whose every
// key is commented out (mid-rotation), or a directory (which opens, and reads
// as empty), is refused; either would have let every caller in as admin.
TEST(ApiKeysTest, AKeyFileWithNoKeysFailsClosed) {
  const std::string dir = ::testing::TempDir() + "/api_keys_test_dir";
  std::filesystem::create_directories(dir);
  const std::string commented = dir + "/keys.txt";
  std::ofstream(commented) << "# user-key-0123456789 tenant=alice\n\n";
  absl::StatusOr<ApiKeys> none = ApiKeys::Load(commented, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("holds no keys"));
  absl::StatusOr<ApiKeys> directory = ApiKeys::Load(dir, nullptr);
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument) << directory.status();
  EXPECT_THAT(std::string(directory.status().message()), HasSubstr("a directory"));
  std::ofstream(commented) << "user-key-0123456789 tenant=alice\n";
  EXPECT_TRUE(ApiKeys::Load(commented, nullptr).ok());
  // A pipe is read (--api-key-file <(vault ...)).
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string line = "user-key-0123456789 tenant=alice\n";
  ASSERT_EQ(::write(fds[1], line.data(), line.size()), static_cast<ssize_t>(line.size()));
  ::close(fds[1]);
  absl::StatusOr<ApiKeys> piped = ApiKeys::Load("/dev/fd/" + std::to_string(fds[0]), nullptr);
  ::close(fds[0]);
  EXPECT_TRUE(piped.ok()) << piped.status();
  std::filesystem::remove_all(dir);
}

TEST(ApiKeysTest, TheKeyDecidesTheTenant) {
  const ApiKeys keys = TwoKeys();
  const Principal alice{"alice", Role::kUser};
  EXPECT_EQ(*ResolveTenant(keys, alice, std::nullopt), "alice");
  EXPECT_EQ(*ResolveTenant(keys, alice, "alice"), "alice");
  EXPECT_EQ(ResolveTenant(keys, alice, "bob").status().code(), absl::StatusCode::kPermissionDenied);
  // Without keys the claim is the tenant, within bounds.
  const ApiKeys none;
  const Principal anyone{"", Role::kAdmin};
  EXPECT_EQ(*ResolveTenant(none, anyone, "bob"), "bob");
  EXPECT_EQ(*ResolveTenant(none, anyone, std::nullopt), "");
  EXPECT_EQ(ResolveTenant(none, anyone, std::string(kMaxTenantNameBytes + 1, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  // UTF-8 without controls: a name that is not UTF-8 would be a metrics label
  // that made Prometheus refuse every later scrape.
  EXPECT_EQ(*ResolveTenant(none, anyone, "jos\xc3\xa9"), "jos\xc3\xa9");
  EXPECT_EQ(*ResolveTenant(none, anyone, "\xe7\x94\xa8\xe6\x88\xb7"), "\xe7\x94\xa8\xe6\x88\xb7");
  // Nor the metrics' own labels, whose series a claim would join.
  EXPECT_EQ(ResolveTenant(none, anyone, "(other)").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveTenant(none, anyone, "(none)").status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"caf\xe9", "tab\there", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xc2\x85", "cut\xe2\x82"}) {
    EXPECT_EQ(ResolveTenant(none, anyone, bad).status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(bad);
  }
}

TEST(ApiKeysTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
}

}  // namespace
}  // namespace cohost::server::auth
