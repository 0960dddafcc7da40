// The HTTP front door's connection cap: at the cap the listener stops
// accepting, and the count of open connections comes back down however a
// connection ends (the client closes an idle one, the server closes after a
// reply, a bad request, the read timeout), so a slot is never lost.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/http_front_door.h"
#include "tests/server/tiny_router.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kHealth[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

class HttpConnectionsTest : public ::testing::Test {
 protected:
  void Start(const HttpOptions& options) {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouter({}, {});
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<HttpFrontDoor>> door = HttpFrontDoor::Start(deps, options);
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    door_.reset();
    tiny_.reset();
  }
  // A connection kept until the test ends (or Close).
  int Open() {
    const int fd = testing::ConnectLoopback(door_->port());
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  void Close(int fd) {
    std::erase(fds_, fd);
    ::close(fd);
  }
  bool OpenConnectionsBecome(size_t n) {
    return testing::WaitFor([&] { return door_->open_connections() == n; },
                            std::chrono::seconds(10));
  }

  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<HttpFrontDoor> door_;
  std::vector<int> fds_;
};

TEST_F(HttpConnectionsTest, AtTheCapNewConnectionsWaitUntilOneCloses) {
  HttpOptions options;
  options.max_connections = 2;
  Start(options);
  const int first = Open();
  const int second = Open();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  ASSERT_TRUE(OpenConnectionsBecome(2));
  // The kernel completes the handshake (the backlog), but nobody reads it.
  const int third = Open();
  ASSERT_GE(third, 0);
  ASSERT_TRUE(testing::SendAll(third, kHealth));
  EXPECT_EQ(testing::ReadUntil(third, "\r\n\r\n", std::chrono::milliseconds(300)), "")
      << "a connection past the cap was served";
  EXPECT_EQ(door_->open_connections(), 2u);
  // A connection in use keeps its slot.
  ASSERT_TRUE(testing::SendAll(second, kHealth));
  EXPECT_THAT(testing::ReadUntil(second, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));

  Close(first);
  EXPECT_THAT(testing::ReadUntil(third, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"))
      << "the waiting connection was not accepted once a slot freed";
  EXPECT_EQ(door_->open_connections(), 2u);

  const std::string metrics = metrics_.Render({}, {});
  EXPECT_THAT(metrics, HasSubstr("cohost_http_connections 2\n"));
  EXPECT_THAT(metrics, HasSubstr("cohost_http_max_connections 2\n"));
  EXPECT_THAT(metrics, HasSubstr("cohost_http_accept_pauses_total{reason=\"full\"} 2\n"));
}

TEST_F(HttpConnectionsTest, EveryWayAConnectionEndsGivesItsSlotBack) {
  HttpOptions options;
  options.max_connections = 1;
  options.io_timeout_seconds = 1;
  Start(options);
  // Each ends one way; with a cap of one, each next connection is served
  // only if the last one's slot came back.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"the client closes an idle connection", ""},
      {"the client closes after a reply", kHealth},
      {"the server closes after a reply (Connection: close)",
       "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
      {"the server closes after an HTTP/1.0 reply", "GET /health HTTP/1.0\r\n\r\n"},
      {"the server closes on a bad request", "NOT HTTP\r\n\r\n"},
      {"the read timeout closes half a request", "GET /health HTTP/1.1\r\nHo"},
  };
  for (const auto& [how, send] : cases) {
    SCOPED_TRACE(how);
    const int fd = Open();
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::SendAll(fd, send));
    if (how.starts_with("the client closes")) {
      ASSERT_TRUE(OpenConnectionsBecome(1));
      if (!send.empty()) {
        EXPECT_THAT(testing::ReadUntil(fd, "\r\n\r\n", std::chrono::seconds(10)),
                    StartsWith("HTTP/1.1 200"));
      }
      ::shutdown(fd, SHUT_RDWR);
    } else {
      // The server answers (or not) and closes; the client's end stays open.
      const std::string reply = testing::ReadUntil(fd, "never sent", std::chrono::seconds(10));
      EXPECT_EQ(how.ends_with("half a request"), reply.empty()) << reply;
    }
    EXPECT_TRUE(OpenConnectionsBecome(0));
    Close(fd);
  }
  const int last = Open();
  ASSERT_TRUE(testing::SendAll(last, kHealth));
  EXPECT_THAT(testing::ReadUntil(last, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
}

TEST_F(HttpConnectionsTest, ACapOfZeroIsRefused) {
  absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouter({}, {});
  ASSERT_TRUE(tiny.ok());
  HttpOptions options;
  options.max_connections = 0;
  const StreamDeps deps{(*tiny)->router.get(), &metrics_, &keys_, StreamLimits{}};
  absl::StatusOr<std::unique_ptr<HttpFrontDoor>> door = HttpFrontDoor::Start(deps, options);
  EXPECT_EQ(door.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::server::http
