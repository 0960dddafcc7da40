// The HTTP front door's event loop: what it holds and what it hands off.
// The connection cap: at the cap the listener stops accepting, and the count
// of open connections comes back down however a connection ends (the client
// closes an idle one, the server closes after a reply, a bad request, the
// read timeout), so a slot is never lost; one client address gets its share;
// at the cap, connections that send nothing make room sooner, and one still
// sending its request is not cut. Preparation: a request being parsed
// and tokenized holds neither the loop nor other requests, and a client that
// leaves meanwhile leaves nothing behind.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/http_front_door.h"
#include "tests/server/tiny_router.h"
#include "tests/support/gated_sink.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kHealth[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
// Greedy over the tiny model's byte tokenizer ("Hi!\n").
constexpr char kCompletion[] =
    R"({"model":"tiny","prompt":[72,105,33,10],"max_tokens":4,"temperature":0,"ignore_eos":true})";

class HttpLoopTest : public ::testing::Test {
 protected:
  // `router`, where given, in place of the default router options.
  void Start(const HttpOptions& options, const StreamLimits& limits = {},
             const scheduler::RouterOptions* router = nullptr) {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny =
        router != nullptr ? testing::MakeTinyRouterWith(*router, {})
                          : testing::MakeTinyRouter({}, {});
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, limits};
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
  // A new connection that has sent `bytes` (-1 on failure).
  int Send(const std::string& bytes) {
    const int fd = Open();
    return fd >= 0 && testing::SendAll(fd, bytes) ? fd : -1;
  }
  // kCompletion posted on a new connection.
  int SendCompletion() {
    return Send(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(sizeof kCompletion - 1) + "\r\n\r\n" + kCompletion);
  }
  // Eight choices of 200 tokens with their top logprobs (hundreds of KB)
  // posted from a client window of a few KB that does not read: its
  // connection once the engine has finished them all (-1 on failure).
  int SendUnreadReply() {
    const int64_t finished = Stats().num_requests_finished;
    const std::string body =
        R"({"model":"tiny","prompt":[72,105,33,10],"max_tokens":200,"n":8,"logprobs":5,)"
        R"("temperature":0,"ignore_eos":true})";
    const int fd = testing::ConnectLoopback(door_->port(), 4096);
    if (fd < 0) return -1;
    fds_.push_back(fd);
    const bool sent = testing::SendAll(
        fd,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
    return sent && testing::WaitFor([&] { return Stats().num_requests_finished == finished + 8; },
                                    std::chrono::seconds(60))
               ? fd
               : -1;
  }
  // Two connections at most, 60 s for a request, `at_cap` at the cap.
  static HttpOptions TwoRooms(std::chrono::milliseconds at_cap) {
    HttpOptions options;
    options.max_connections = 2;
    options.request_timeout = std::chrono::seconds(60);
    options.request_timeout_at_cap = at_cap;
    return options;
  }
  // Sends `bytes` on `fd` one at a time, `gap` apart: whether the server
  // closed the connection before the last.
  static bool ClosedWhileTrickling(int fd, std::string_view bytes, std::chrono::milliseconds gap) {
    for (char c : bytes) {
      if (testing::ClosedByPeerWithin(fd, std::chrono::milliseconds(0)) ||
          !testing::SendAll(fd, std::string(1, c))) {
        return true;
      }
      std::this_thread::sleep_for(gap);
    }
    return false;
  }
  // The front door's first preparation will wait at `gate`.
  static void HoldFirstPreparation(cohost::testing::Gate& gate, HttpOptions& options) {
    options.on_prepare = [&gate, first = std::make_shared<std::atomic<bool>>(true)] {
      if (first->exchange(false)) gate.Enter();
    };
  }
  // Starts a front door whose first preparation waits at `gate`, and posts
  // that request: its connection, once it waits there (-1 on failure).
  int StartWithAHeldRequest(cohost::testing::Gate& gate, HttpOptions options = {}) {
    HoldFirstPreparation(gate, options);
    Start(options);
    const int fd = SendCompletion();
    return fd >= 0 && gate.WaitEntered() ? fd : -1;
  }
  runtime::EngineStats Stats() { return (*tiny_->router->Find("tiny"))->Stats(); }
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

// HTTP/1.0 and 1.1 are served, a later 1.x as 1.1; HTTP/0.x is 505 and the
// connection closes. Each reply's status line says HTTP/1.1 (evhttp would
// echo the request's "HTTP/0.1"). (evhttp itself refuses 2.0 and later, with
// its own 400.)
TEST_F(HttpLoopTest, AnotherHttpMajorVersionIs505) {
  Start({});
  for (const char* version : {"HTTP/0.1", "HTTP/0.9"}) {
    const int fd = Send(std::string("GET /health ") + version + "\r\nHost: x\r\n\r\n");
    ASSERT_GE(fd, 0);
    const std::string reply = testing::ReadUntil(fd, "}", std::chrono::seconds(10));
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 505 HTTP Version Not Supported")) << version;
    EXPECT_THAT(reply, HasSubstr("is not supported: use HTTP/1.1 or HTTP/1.0")) << reply;
    EXPECT_TRUE(testing::ClosedByPeerWithin(fd, std::chrono::seconds(10))) << version;
  }
  const int later = Send("GET /health HTTP/1.7\r\nHost: x\r\n\r\n");
  ASSERT_GE(later, 0);
  EXPECT_THAT(testing::ReadUntil(later, "\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
}

TEST_F(HttpLoopTest, AtTheCapNewConnectionsWaitUntilOneCloses) {
  HttpOptions options;
  options.max_connections = 2;
  options.request_timeout_at_cap = std::chrono::milliseconds(0);  // idle ones are not cut
  Start(options);
  const int first = Open();
  const int second = Open();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  ASSERT_TRUE(OpenConnectionsBecome(2));
  // The kernel completes the handshake (the backlog), but nobody reads it.
  const int third = Send(kHealth);
  ASSERT_GE(third, 0);
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

TEST_F(HttpLoopTest, EveryWayAConnectionEndsGivesItsSlotBack) {
  HttpOptions options;
  options.max_connections = 1;
  options.io_timeout_seconds = 3;
  options.request_timeout_at_cap = std::chrono::milliseconds(0);
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
    const int fd = Send(send);
    ASSERT_GE(fd, 0);
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
  const int last = Send(kHealth);
  ASSERT_GE(last, 0);
  EXPECT_THAT(testing::ReadUntil(last, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
}

// A client sending its request a byte at a time, each well within the io
// timeout, is closed at the request timeout (slowloris). The deadline starts
// again after each reply on a kept-alive connection, and stops once a
// request is in: a request prepared for longer is served, not cut.
TEST_F(HttpLoopTest, TheRequestTimeoutBoundsReadingARequestOnly) {
  cohost::testing::Gate gate;
  HttpOptions options;
  options.request_timeout = std::chrono::milliseconds(2000);
  const int held = StartWithAHeldRequest(gate, options);
  ASSERT_GE(held, 0);

  const int slow = Open();
  ASSERT_GE(slow, 0);
  const auto start = std::chrono::steady_clock::now();
  // 33 bytes, 200 ms apart: 6.6 s.
  EXPECT_TRUE(ClosedWhileTrickling(slow, kHealth, std::chrono::milliseconds(200)))
      << "the whole request was read a byte at a time";
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));

  const int kept = Open();
  ASSERT_GE(kept, 0);
  for (int i = 0; i < 3; ++i) {  // 3 s open, 1 s after each reply
    SCOPED_TRACE(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    ASSERT_TRUE(testing::SendAll(kept, kHealth));
    EXPECT_THAT(testing::ReadUntil(kept, R"({"status":"ok"})", std::chrono::seconds(10)),
                StartsWith("HTTP/1.1 200"));
  }

  gate.Open();  // held in preparation for over 5 s
  EXPECT_THAT(testing::ReadUntil(held, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
}

// One client address gets its share of the connections and no more: past
// it, its new connections are closed as they come, and once one of its own
// closes it may open another. (Loopback is counted here only because the
// test asks: a proxy beside the server speaks for many.)
TEST_F(HttpLoopTest, OneClientHasItsShareOfTheConnectionsAndNoMore) {
  HttpOptions options;
  options.max_connections_per_client = 2;
  options.cap_loopback_clients = true;
  Start(options);
  const int first = Open();
  ASSERT_GE(first, 0);
  ASSERT_GE(Open(), 0);
  ASSERT_TRUE(OpenConnectionsBecome(2));
  const int third = Send(kHealth);
  ASSERT_GE(third, 0);
  EXPECT_TRUE(testing::ClosedByPeerWithin(third, std::chrono::seconds(10)));
  EXPECT_THAT(metrics_.Render({}, {}),
              HasSubstr("cohost_http_connections_dropped_total{reason=\"per_client\"} 1\n"));
  ASSERT_TRUE(OpenConnectionsBecome(2));
  Close(first);
  ASSERT_TRUE(OpenConnectionsBecome(1));
  const int fourth = Send(kHealth);
  ASSERT_GE(fourth, 0);
  EXPECT_THAT(testing::ReadUntil(fourth, R"({"status":"ok"})", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
}

// At the cap, a connection waiting for a request that sends nothing has the
// shorter limit, one already waiting when the cap is reached too: opened
// below the cap and left, it gives its room to the one waiting in the
// backlog (the other room is held by a request in preparation). Below the
// cap the whole request timeout holds.
TEST_F(HttpLoopTest, AtTheCapAConnectionThatSendsNothingMakesRoomSooner) {
  cohost::testing::Gate gate;
  HttpOptions options = TwoRooms(std::chrono::milliseconds(500));
  HoldFirstPreparation(gate, options);
  Start(options);
  const int left = Open();
  ASSERT_GE(left, 0);
  ASSERT_TRUE(OpenConnectionsBecome(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_FALSE(testing::ClosedByPeerWithin(left, std::chrono::milliseconds(0)))
      << "closed below the cap, before the 60 s";
  const int held = SendCompletion();  // the second: the cap
  ASSERT_GE(held, 0);
  ASSERT_TRUE(gate.WaitEntered());

  const int waiting = Send(kHealth);
  ASSERT_GE(waiting, 0);
  EXPECT_THAT(testing::ReadUntil(waiting, R"({"status":"ok"})", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(testing::ClosedByPeerWithin(left, std::chrono::seconds(5)));
  gate.Open();
  EXPECT_THAT(testing::ReadUntil(held, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
}

// At the cap, a connection still sending its request (slowly: a large body
// on a slow link) is not cut at the shorter limit: it has the whole request
// timeout while its bytes keep coming.
TEST_F(HttpLoopTest, AtTheCapARequestStillArrivingIsNotCut) {
  cohost::testing::Gate gate;
  const HttpOptions options = TwoRooms(std::chrono::milliseconds(1000));
  // Its request held in preparation: it keeps its room, and the cap stays
  // reached while the other sends.
  const int held = StartWithAHeldRequest(gate, options);
  ASSERT_GE(held, 0);
  const int slow = Open();
  ASSERT_GE(slow, 0);
  ASSERT_TRUE(OpenConnectionsBecome(2));
  // 33 bytes, 100 ms apart: 3.3 s.
  EXPECT_FALSE(ClosedWhileTrickling(slow, kHealth, std::chrono::milliseconds(100)))
      << "cut while its request arrived";
  EXPECT_THAT(testing::ReadUntil(slow, R"({"status":"ok"})", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
  gate.Open();
  EXPECT_THAT(testing::ReadUntil(held, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
}

// While one request is being prepared (held here), the loop answers others
// and a second request is prepared and served beside it.
TEST_F(HttpLoopTest, ARequestBeingPreparedHoldsNeitherTheLoopNorOthers) {
  cohost::testing::Gate gate;
  const int held = StartWithAHeldRequest(gate);
  ASSERT_GE(held, 0);
  const int health = Send(kHealth);
  ASSERT_GE(health, 0);
  EXPECT_THAT(testing::ReadUntil(health, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
  const int other = SendCompletion();
  ASSERT_GE(other, 0);
  EXPECT_THAT(testing::ReadUntil(other, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
  gate.Open();
  EXPECT_THAT(testing::ReadUntil(held, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
}

// A client that leaves while its request is prepared: nothing is submitted
// for it, and the front door serves on.
TEST_F(HttpLoopTest, AClientThatLeavesWhileItsRequestIsPreparedLeavesNothing) {
  cohost::testing::Gate gate;
  const int held = StartWithAHeldRequest(gate);
  ASSERT_GE(held, 0);
  const int64_t finished = Stats().num_requests_finished;
  Close(held);
  ASSERT_TRUE(OpenConnectionsBecome(0));
  gate.Open();
  const int next = SendCompletion();
  ASSERT_GE(next, 0);
  EXPECT_THAT(testing::ReadUntil(next, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(testing::WaitFor([&] { return Stats().num_requests_finished == finished + 1; },
                               std::chrono::seconds(10)));
  EXPECT_EQ(Stats().num_requests_finished + Stats().num_requests_aborted, finished + 1)
      << "only the second ran";
}

// A request whose client leaves while it waits for a preparing thread is
// never parsed or tokenized (its body freed at once): a client sending big
// bodies and leaving costs the threads nothing.
TEST_F(HttpLoopTest, ARequestWhoseClientLeftIsNeverPrepared) {
  cohost::testing::Gate gate;
  HttpOptions options;
  options.prepare_threads = 1;
  auto prepared = std::make_shared<std::atomic<int>>(0);
  options.on_prepare = [&gate, prepared] {
    if (prepared->fetch_add(1) == 0) gate.Enter();
  };
  Start(options);
  const int held = SendCompletion();
  ASSERT_GE(held, 0);
  ASSERT_TRUE(gate.WaitEntered());
  const int queued = SendCompletion();  // waits for the one thread
  ASSERT_GE(queued, 0);
  ASSERT_TRUE(OpenConnectionsBecome(2));
  Close(queued);
  ASSERT_TRUE(OpenConnectionsBecome(1));
  // The count drops before the close callback that abandons the request has
  // run: a reply on another connection comes after it, on the one loop.
  const int health = Send(kHealth);
  ASSERT_GE(health, 0);
  ASSERT_THAT(testing::ReadUntil(health, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
  Close(health);
  gate.Open();
  EXPECT_THAT(testing::ReadUntil(held, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
  // A later request is prepared after the abandoned one's turn.
  const int next = SendCompletion();
  ASSERT_GE(next, 0);
  EXPECT_THAT(testing::ReadUntil(next, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(prepared->load(), 2) << "the abandoned request was prepared";
}

// A whole reply its client does not read: once the call is over, the
// unsent part must be under the backlog bound within write_stall_timeout,
// else the connection is shut and counted as a slow reader (evhttp's own
// write timeout restarts with every byte read, so it alone would let a
// client hold the reply for good).
TEST_F(HttpLoopTest, AWholeReplyItsClientDoesNotReadIsCutOff) {
  StreamLimits limits;
  limits.max_backlog_bytes = 16 << 10;
  limits.write_stall_timeout = std::chrono::milliseconds(300);
  HttpOptions options;
  options.socket_send_buffer = 16 << 10;  // else the kernel takes the whole reply
  Start(options, limits);
  const int fd = SendUnreadReply();
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return metrics_.Render({}).find(R"(reason="slow_reader"} 1)") != std::string::npos; },
      std::chrono::seconds(10)))
      << metrics_.Render({});
  EXPECT_TRUE(testing::ClosedByPeerWithin(fd, std::chrono::seconds(10)));
  EXPECT_TRUE(OpenConnectionsBecome(0));
  // The server serves on.
  const int next = SendCompletion();
  ASSERT_GE(next, 0);
  EXPECT_THAT(testing::ReadUntil(next, "\"completion_tokens\":4", std::chrono::seconds(30)),
              StartsWith("HTTP/1.1 200"));
}

// A whole reply still past the backlog bound when its call ends keeps its
// tenant's streams open until it drains: the server still holds the
// tenant's output, so the tenant's next call meanwhile is refused
// (max_streams), and once the client has read the reply, it is served.
TEST_F(HttpLoopTest, AWholeReplyStillDrainingKeepsItsTenantsStreams) {
  StreamLimits limits;
  limits.max_backlog_bytes = 16 << 10;
  limits.write_stall_timeout = std::chrono::seconds(60);  // the client reads late, not never
  HttpOptions options;
  options.socket_send_buffer = 16 << 10;  // else the kernel takes the whole reply
  scheduler::RouterOptions router;
  router.tenants.defaults.max_streams = 8;  // the big call's eight choices
  Start(options, limits, &router);
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  const long holders = model.use_count();
  const int slow = SendUnreadReply();
  ASSERT_GE(slow, 0);
  // The front door is done with the call (it lets go of the model as it
  // forgets it); its reply waits for the client.
  ASSERT_TRUE(
      testing::WaitFor([&] { return model.use_count() == holders; }, std::chrono::seconds(30)));
  const int refused = SendCompletion();
  ASSERT_GE(refused, 0);
  const std::string answer = testing::ReadUntil(refused, "max_streams", std::chrono::seconds(30));
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 429")) << answer;
  EXPECT_THAT(answer, HasSubstr("max_streams"));
  // Read, the reply drains, and the streams close with it.
  EXPECT_THAT(testing::ReadUntil(slow, "\"total_tokens\"", std::chrono::seconds(60)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const int next = SendCompletion();
        const bool served =
            next >= 0 && testing::ReadUntil(next, "\r\n\r\n", std::chrono::seconds(30))
                             .starts_with("HTTP/1.1 200");
        if (next >= 0) Close(next);
        return served;
      },
      std::chrono::seconds(30)))
      << "the drained reply's streams stayed open";
}

// Stopping with a request held in preparation ends it (the connection
// closes unanswered) and joins.
TEST_F(HttpLoopTest, StoppingWhileARequestIsPreparedJoins) {
  cohost::testing::Gate gate;
  const int held = StartWithAHeldRequest(gate);
  ASSERT_GE(held, 0);
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gate.Open();
  });
  door_->Stop(std::chrono::milliseconds(0));
  opener.join();
  EXPECT_EQ(testing::ReadUntil(held, "HTTP/1.1", std::chrono::seconds(10)), "");
}

// Out of descriptors, accept fails: the listener pauses (instead of the
// readable listener spinning the loop), and accepts again once descriptors
// are back (the test's own process runs the server:
// ConnectWhileOutOfDescriptors).
TEST_F(HttpLoopTest, AFailedAcceptPausesAndTheConnectionIsServedLater) {
  Start({});
  bool paused = false;
  const int client = testing::ConnectWhileOutOfDescriptors(
      door_->port(),
      [&] {
        return testing::WaitFor(
            [&] {
              return metrics_.Render({}, {}).find(
                         "cohost_http_accept_pauses_total{reason=\"error\"} 0") ==
                     std::string::npos;
            },
            std::chrono::seconds(10));
      },
      &paused);
  ASSERT_GE(client, 0);
  fds_.push_back(client);
  EXPECT_TRUE(paused) << "no accept error was seen";
  ASSERT_TRUE(testing::SendAll(client, kHealth));
  EXPECT_THAT(testing::ReadUntil(client, "\r\n\r\n", std::chrono::seconds(10)),
              StartsWith("HTTP/1.1 200"));
}

// A port that another listener holds is UNAVAILABLE, and the half-made
// front door goes away cleanly.
TEST_F(HttpLoopTest, ATakenPortIsUnavailable) {
  Start({});
  HttpOptions same;
  same.port = door_->port();
  const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
  absl::StatusOr<std::unique_ptr<HttpFrontDoor>> second = HttpFrontDoor::Start(deps, same);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST_F(HttpLoopTest, ACapOfZeroIsRefused) {
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
