// The plaintext gRPC port's own listener (server/grpc_listener.h), through a
// whole Server on the tiny model: calls are served; at the connection cap a
// new connection waits until one closes; a silent connection is closed at
// the preface timeout, one speaking HTTP/1 at once; out of descriptors, the
// port pauses and then serves (gRPC's own listener stopped for good); at the
// cap, a new connection takes the room of the one idle longest, never of one
// with a call in flight.

#include "server/grpc_listener.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/client_address.h"
#include "server/connection_calls.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

// What an HTTP/2 client sends first: the preface and an empty SETTINGS frame.
constexpr std::string_view kClientStart(
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    "\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    33);

class GrpcListenerTest : public ::testing::Test {
 protected:
  void Start(const std::function<void(ServerOptions&)>& tune = {}) {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouter();
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    ServerOptions options;
    options.host = "127.0.0.1";
    if (tune) tune(options);
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(tiny_->router.get(), &metrics_, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    server_.reset();
    tiny_.reset();
  }

  // A call on `channel`, by default one of its own: its status code.
  grpc::StatusCode Call(milliseconds timeout, std::shared_ptr<grpc::Channel> channel = nullptr) {
    if (channel == nullptr) channel = cohost::testing::OwnLoopbackChannel(server_->port());
    auto stub = v1::Inference::NewStub(channel);
    v1::GenerateRequest r;
    r.set_model("tiny");
    r.set_text("hi");
    r.set_max_tokens(2);
    testing::CallOptions call;
    call.timeout = timeout;
    return testing::Generate(*stub, r, call).status.error_code();
  }

  // A raw connection (closed at the end of the test unless closed before).
  int Connect() {
    const int fd = testing::ConnectLoopback(server_->port());
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  // A connection that has sent HTTP/2's start and been answered by gRPC
  // (its SETTINGS frame): handed over. -1 if not.
  int ConnectHandedOver() {
    const int fd = Connect();
    if (fd < 0 || !testing::SendAll(fd, kClientStart) ||
        testing::ReadUntil(fd, "\x04", seconds(10)).empty()) {
      return -1;
    }
    return fd;
  }
  void Close(int fd) {
    std::erase(fds_, fd);
    ::close(fd);
  }

  std::string Metrics() const { return metrics_.Render({}, {}); }
  // A sample's value (`name` with its labels), or -1 while it is not shown.
  int64_t Counter(const std::string& name) const {
    const std::string text = Metrics();
    const size_t at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + name.size() + 2));
  }

  ServerMetrics metrics_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<Server> server_;
  std::vector<int> fds_;
};

TEST_F(GrpcListenerTest, CallsAreServedAndCounted) {
  Start();
  EXPECT_EQ(Call(seconds(30)), grpc::StatusCode::OK);
  EXPECT_THAT(Metrics(), HasSubstr("cohost_grpc_max_connections 4096\n"));
  // Its channel went with it: the count comes back to zero.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Metrics().find("cohost_grpc_connections 0\n") != std::string::npos; },
      seconds(10)))
      << Metrics();
}

// At the cap, a new connection waits in the backlog (a call on it runs out
// of time); once another closes, it is accepted and the client's next call
// on it is served.
TEST_F(GrpcListenerTest, AtTheCapANewConnectionWaitsUntilOneCloses) {
  Start([](ServerOptions& o) {
    o.max_connections = 2;
    o.shed_idle_after = seconds(60);
  });
  const int a = ConnectHandedOver();
  ASSERT_GE(a, 0);
  ASSERT_GE(ConnectHandedOver(), 0);
  EXPECT_THAT(Metrics(), HasSubstr("cohost_grpc_connections 2\n"));
  const std::shared_ptr<grpc::Channel> waiting =
      cohost::testing::OwnLoopbackChannel(server_->port());
  EXPECT_EQ(Call(milliseconds(700), waiting), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(Metrics(), HasSubstr("cohost_grpc_accept_pauses_total{reason=\"full\"} 1\n"));
  // Both were idle for less than shed_idle_after: neither made room.
  EXPECT_EQ(Counter("cohost_grpc_connections_dropped_total{reason=\"idle_at_cap\"}"), 0);
  Close(a);
  EXPECT_EQ(Call(seconds(30), waiting), grpc::StatusCode::OK);
}

// A reflection stream (gRPC's synchronous service) left open after one
// list_services exchange.
class OpenReflectionStream {
 public:
  explicit OpenReflectionStream(int port)
      : channel_(cohost::testing::OwnLoopbackChannel(port)), stub_(channel_) {
    call_ = stub_.PrepareCall(
        &ctx_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq_);
    call_->StartCall(Tag(1));
    if (!Step()) return;
    grpc::Slice slice(std::string("\x3a\x00", 2));  // { list_services: "" }
    grpc::ByteBuffer request(&slice, 1);
    call_->Write(request, Tag(2));
    if (!Step()) return;
    grpc::ByteBuffer response;
    call_->Read(&response, Tag(3));
    open_ = Step();
  }
  ~OpenReflectionStream() {
    ctx_.TryCancel();
    grpc::Status status;
    call_->Finish(&status, Tag(4));
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok) && tag != Tag(4)) {
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }
  // Whether the exchange went through and the stream is still open.
  bool open() const { return open_; }

 private:
  void* Tag(int n) { return &tags_[n]; }
  bool Step() {
    void* tag = nullptr;
    bool ok = false;
    return cq_.Next(&tag, &ok) && ok;
  }

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool open_ = false;
  char tags_[5] = {};  // the completion queue's tags, by address
};

// At the cap, a connection waiting to be accepted takes the room of the one
// with no call for longest: that one is shut down (its client would
// reconnect on its next call). The two oldest connections, holding a health
// Watch (a callback service) and a reflection stream (a synchronous one),
// are passed over however long they have been open, and so is a connection
// idle for less than the threshold.
TEST_F(GrpcListenerTest, AtTheCapTheConnectionIdleLongestMakesRoom) {
  Start([](ServerOptions& o) {
    o.max_connections = 5;
    o.shed_idle_after = milliseconds(300);
  });
  const std::shared_ptr<grpc::Channel> watching =
      cohost::testing::OwnLoopbackChannel(server_->port());
  grpc::ClientContext watch;
  grpc::health::v1::HealthCheckRequest request;
  auto stream = grpc::health::v1::Health::NewStub(watching)->Watch(&watch, request);
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(stream->Read(&status));  // the first status: the call is in flight
  OpenReflectionStream reflecting(server_->port());
  ASSERT_TRUE(reflecting.open());
  const int older = ConnectHandedOver();
  ASSERT_GE(older, 0);
  std::this_thread::sleep_for(milliseconds(100));
  const int newer = ConnectHandedOver();
  ASSERT_GE(newer, 0);
  std::this_thread::sleep_for(milliseconds(400));  // both idle past the threshold
  const int recent = ConnectHandedOver();          // the cap; idle under it
  ASSERT_GE(recent, 0);
  EXPECT_EQ(Counter("cohost_grpc_connections"), 5);

  EXPECT_EQ(Call(seconds(30)), grpc::StatusCode::OK);
  EXPECT_TRUE(testing::ClosedByPeerWithin(older, seconds(10)));
  EXPECT_EQ(Counter("cohost_grpc_connections_dropped_total{reason=\"idle_at_cap\"}"), 1);
  // One waited, one made room: the others are open.
  EXPECT_FALSE(testing::ClosedByPeerWithin(newer, milliseconds(300)));
  EXPECT_FALSE(testing::ClosedByPeerWithin(recent, milliseconds(10)));
  // The Watch is still in flight on its connection: cancelled by its client,
  // not cut off with the connection (UNAVAILABLE).
  watch.TryCancel();
  while (stream->Read(&status)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// Who one client is (server/client_address.h), on both ports.
sockaddr_storage Address(const char* text) {
  sockaddr_storage a{};
  if (inet_pton(AF_INET, text, &reinterpret_cast<sockaddr_in*>(&a)->sin_addr) == 1) {
    a.ss_family = AF_INET;
  } else if (inet_pton(AF_INET6, text, &reinterpret_cast<sockaddr_in6*>(&a)->sin6_addr) == 1) {
    a.ss_family = AF_INET6;
  }
  return a;
}

TEST(ClientKeyTest, AnIpv6ClientIsItsSlash64AndAMappedIpv4OneItsIpv4Address) {
  const auto key = [](const char* text, bool count_loopback = false) {
    return ClientKey(Address(text), count_loopback);
  };
  EXPECT_EQ(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:1234:5678:9abc"));
  EXPECT_NE(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
  EXPECT_EQ(key("::ffff:192.0.2.7"), key("192.0.2.7"));
  EXPECT_NE(key("192.0.2.7"), key("192.0.2.8"));
  EXPECT_NE(key("192.0.2.7"), "");
  // Loopback is not counted unless asked; then it is a client like any.
  EXPECT_EQ(key("127.0.0.1"), "");
  EXPECT_EQ(key("::1"), "");
  EXPECT_EQ(key("::ffff:127.0.0.1"), "");
  EXPECT_NE(key("127.0.0.1", true), "");
  EXPECT_EQ(key("127.0.0.1", true), key("::ffff:127.0.0.1", true));
}

// gRPC's own listener (TLS) names a call's peer by its address.
TEST(ClientKeyTest, APeerUriNamesItsClient) {
  EXPECT_EQ(PeerUriClientKey("ipv4:192.0.2.7:5000", false), ClientKey(Address("192.0.2.7"), false));
  EXPECT_EQ(PeerUriClientKey("ipv6:[2001:db8:1:2::1]:443", false),
            ClientKey(Address("2001:db8:1:2::9"), false));
  EXPECT_EQ(PeerUriClientKey("ipv6:%5B2001:db8:1:2::1%5D:443", false),
            ClientKey(Address("2001:db8:1:2::1"), false));
  EXPECT_NE(PeerUriClientKey("ipv4:192.0.2.7:1", false), "");
  EXPECT_EQ(PeerUriClientKey("ipv4:127.0.0.1:5000", false), "") << "loopback: not counted";
  EXPECT_NE(PeerUriClientKey("ipv4:127.0.0.1:5000", true), "");
  for (const char* other : {"fd:12", "unix:/tmp/s", "ipv4:", "ipv4:300.1.1.1:5", "ipv6:::1",
                            "ipv6:[::1", "ipv6:%5B::1", "ipv6:[nope]:1", ""}) {
    EXPECT_EQ(PeerUriClientKey(other, true), "") << other;
  }
}

TEST(ConnectionCallsTest, APeerNamesADescriptorOnlyAsFdColonNumber) {
  EXPECT_EQ(ConnectionCalls::DescriptorOf("fd:12"), 12);
  EXPECT_EQ(ConnectionCalls::DescriptorOf("fd:0"), 0);
  for (const char* other :
       {"ipv4:127.0.0.1:5000", "fd:", "fd:12x", "fd:-1", "fd:99999999999", "unix:/tmp/s", ""}) {
    EXPECT_EQ(ConnectionCalls::DescriptorOf(other), -1) << other;
  }
  ConnectionCalls calls;
  calls.Begin(7);
  calls.Begin(7);
  calls.End(7);
  EXPECT_EQ(calls.UseOf(7).calls, 1);
  EXPECT_NE(calls.UseOf(7).last_end, ConnectionUse::Clock::time_point());
  EXPECT_EQ(calls.UseOf(8).calls, 0);
  EXPECT_EQ(calls.UseOf(8).last_end, ConnectionUse::Clock::time_point());
}

// A connection that sends nothing, or only part of the preface, is closed
// at the timeout: the first bytes alone do not get it to gRPC (which, given
// a descriptor, would wait for the rest with no deadline).
TEST_F(GrpcListenerTest, ASilentOrHalfSpokenConnectionIsClosedAtThePrefaceTimeout) {
  Start([](ServerOptions& o) { o.preface_timeout = milliseconds(1000); });
  const int silent = Connect();
  const int half = Connect();
  ASSERT_GE(silent, 0);
  ASSERT_GE(half, 0);
  ASSERT_TRUE(testing::SendAll(half, kClientStart.substr(0, 16)));
  EXPECT_TRUE(testing::ClosedByPeerWithin(silent, seconds(10)));
  EXPECT_TRUE(testing::ClosedByPeerWithin(half, seconds(10)));
  EXPECT_EQ(Counter("cohost_grpc_connections_dropped_total{reason=\"silent\"}"), 2);
  EXPECT_EQ(Call(seconds(30)), grpc::StatusCode::OK);
}

// The preface sent in pieces, all within the timeout, is served.
TEST_F(GrpcListenerTest, APrefaceSentInPiecesIsServed) {
  Start();
  const int conn = Connect();
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(testing::SendAll(conn, kClientStart.substr(0, 5)));
  std::this_thread::sleep_for(milliseconds(200));
  ASSERT_TRUE(testing::SendAll(conn, kClientStart.substr(5)));
  // gRPC answers with its own SETTINGS frame.
  EXPECT_NE(testing::ReadUntil(conn, "\x04", seconds(10)), "");
}

// One client address gets its share of the connections and no more: past
// it, its new connections are closed at once, and once one of its own
// closes it may open another. (Loopback is counted here only because the
// test asks: a proxy beside the server speaks for many.)
TEST_F(GrpcListenerTest, OneClientHasItsShareOfTheConnectionsAndNoMore) {
  Start([](ServerOptions& o) {
    o.max_connections_per_client = 2;
    o.cap_loopback_clients = true;
  });
  const int a = ConnectHandedOver();
  ASSERT_GE(a, 0);
  ASSERT_GE(ConnectHandedOver(), 0);
  const int third = Connect();
  ASSERT_GE(third, 0);
  EXPECT_TRUE(testing::ClosedByPeerWithin(third, seconds(10)));
  EXPECT_EQ(Counter("cohost_grpc_connections_dropped_total{reason=\"per_client\"}"), 1);
  Close(a);
  // Once the sweep has seen it go, a new one is served.
  EXPECT_TRUE(
      testing::WaitFor([&] { return Counter("cohost_grpc_connections") == 1; }, seconds(10)));
  EXPECT_EQ(Call(seconds(30)), grpc::StatusCode::OK);
}

TEST_F(GrpcListenerTest, AConnectionSpeakingHttp1IsClosedAtOnce) {
  Start();  // the 10 s timeout: closing within 5 s is the bytes' doing
  const int http1 = Connect();
  ASSERT_GE(http1, 0);
  ASSERT_TRUE(testing::SendAll(http1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(testing::ClosedByPeerWithin(http1, seconds(5)));
  EXPECT_EQ(Counter("cohost_grpc_connections_dropped_total{reason=\"not_http2\"}"), 1);
}

// Out of descriptors, accept fails: the port pauses and, once descriptors
// are back, takes the connection waiting in the backlog (the test's own
// process runs the server: ConnectWhileOutOfDescriptors).
TEST_F(GrpcListenerTest, AFailedAcceptPausesAndTheConnectionIsServedLater) {
  Start();
  bool paused = false;
  const int client = testing::ConnectWhileOutOfDescriptors(
      server_->port(),
      [&] {
        return testing::WaitFor(
            [&] { return Counter("cohost_grpc_accept_pauses_total{reason=\"error\"}") > 0; },
            seconds(10));
      },
      &paused);
  ASSERT_GE(client, 0);
  fds_.push_back(client);
  EXPECT_TRUE(paused) << "no accept error was seen";
  // The same connection, accepted now, is served: gRPC answers its preface.
  ASSERT_TRUE(testing::SendAll(client, kClientStart));
  EXPECT_NE(testing::ReadUntil(client, "\x04", seconds(10)), "");
  EXPECT_EQ(Call(seconds(30)), grpc::StatusCode::OK);
}

TEST(GrpcListenerBindTest, BadArgumentsAndATakenPortAreRefused) {
  EXPECT_EQ(GrpcListener::Bind("127.0.0.1", 70000, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  GrpcListenerOptions none;
  none.max_connections = 0;
  EXPECT_EQ(GrpcListener::Bind("127.0.0.1", 0, none).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<GrpcListener>> first = GrpcListener::Bind("127.0.0.1", 0, {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT((*first)->port(), 0);
  EXPECT_EQ(GrpcListener::Bind("127.0.0.1", (*first)->port(), {}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcListener::Bind("no-such-host.invalid", 0, {}).status().code(),
            absl::StatusCode::kUnavailable);
}

// Whether a TCP connection to `addr`:`port` (IPv4 or IPv6 text) is taken.
bool Connects(const char* addr, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    return false;
  }
  const int fd = ::socket(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  ::close(fd);
  return ok;
}

// 0.0.0.0 takes IPv6 clients too (one dual-stack socket), as gRPC's own
// listener did.
TEST(GrpcListenerBindTest, TheIpv4WildcardTakesIpv6ClientsToo) {
  absl::StatusOr<std::unique_ptr<GrpcListener>> loopback6 = GrpcListener::Bind("::1", 0, {});
  if (!loopback6.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << loopback6.status();
  loopback6->reset();
  absl::StatusOr<std::unique_ptr<GrpcListener>> l = GrpcListener::Bind("0.0.0.0", 0, {});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(Connects("127.0.0.1", (*l)->port()));
  EXPECT_TRUE(Connects("::1", (*l)->port()));
}

}  // namespace
}  // namespace cohost::server
