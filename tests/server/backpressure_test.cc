// Output piling up behind the write in flight, end to end on the tiny random
// model, whose engine outruns any client's writes: the deltas queued behind a
// write are coalesced into fewer messages, each within the per-message bound,
// and none is lost; when the queued output passes the backlog bound (a client
// that stopped reading), the request is aborted (KV blocks freed) and the call
// ends with RESOURCE_EXHAUSTED.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"

namespace cohost::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using ::cohost::testing::WaitFor;

class BackpressureTest : public ::testing::Test {
 protected:
  void Start(const StreamLimits& limits, const scheduler::RouterOptions& router = {}) {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouterWith(router);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);

    ServerOptions options;
    options.host = "127.0.0.1";
    options.stream = limits;
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(tiny_->router.get(), &metrics_, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);

    // A small flow-control window and no BDP probing to grow it, so that the
    // server's writes wait on this client's reads as soon as possible.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    stub_ = v1::Inference::NewStub(cohost::testing::OwnLoopbackChannel(server_->port(), args));
  }
  void TearDown() override {
    server_.reset();
    tiny_.reset();
  }

  runtime::EngineStats Stats() { return (*tiny_->router->Find("tiny"))->Stats(); }

  static v1::GenerateRequest Request(int max_tokens) {
    v1::GenerateRequest r;
    r.set_model("tiny");
    for (int id : {72, 105, 33, 10}) r.mutable_tokens()->add_ids(id);
    r.mutable_sampling()->set_temperature(0);
    r.set_max_tokens(max_tokens);
    r.set_ignore_eos(true);
    return r;
  }

  ServerMetrics metrics_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

struct Collected {
  std::vector<v1::GenerateResponse> messages;
  std::vector<int32_t> ids;
  grpc::Status status;
};

// Reads one message, pauses while the engine runs ahead, then reads the rest.
Collected ReadWithPause(v1::Inference::Stub& stub, const v1::GenerateRequest& request,
                        const std::function<void()>& pause) {
  Collected c;
  grpc::ClientContext ctx;
  auto reader = stub.Generate(&ctx, request);
  v1::GenerateResponse msg;
  bool paused = false;
  while (reader->Read(&msg)) {
    c.ids.insert(c.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    c.messages.push_back(msg);
    if (!paused) {
      pause();
      paused = true;
    }
  }
  c.status = reader->Finish();
  return c;
}

TEST_F(BackpressureTest, DeltasBehindASlowReaderAreCoalescedNotDropped) {
  StreamLimits limits;
  limits.max_message_bytes = 64;
  Start(limits);
  // The reference: the same greedy request read without pausing.
  const Collected fast = ReadWithPause(*stub_, Request(200), [] {});
  ASSERT_TRUE(fast.status.ok()) << fast.status.error_message();
  ASSERT_EQ(fast.ids.size(), 200u);

  const Collected slow = ReadWithPause(*stub_, Request(200), [&] {
    // Until the engine has produced everything (it is far faster than this).
    ASSERT_TRUE(WaitFor([&] { return Stats().num_running == 0; }, seconds(30)));
  });
  ASSERT_TRUE(slow.status.ok()) << slow.status.error_message();
  EXPECT_EQ(slow.ids, fast.ids) << "every token, in order";
  std::string fast_text, slow_text;
  for (const auto& m : fast.messages) fast_text += m.text();
  for (const auto& m : slow.messages) slow_text += m.text();
  EXPECT_EQ(slow_text, fast_text);
  // 200 one-token deltas went out in fewer messages, none over the bound (a
  // delta is one token and at most a few bytes of text here).
  EXPECT_LT(slow.messages.size(), 200u);
  for (const auto& m : slow.messages) {
    EXPECT_LE(m.text().size() + 4 * m.token_ids_size(), 64u);
  }
  EXPECT_EQ(slow.messages.back().finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(slow.messages.back().usage().completion_tokens(), 200u);
}

TEST_F(BackpressureTest, AClientThatStopsReadingIsAbortedWithResourceExhausted) {
  StreamLimits limits;
  // Far less than what the whole output holds queued (240 one-token deltas).
  limits.max_backlog_bytes = 2048;  // the next request, of 4 tokens, stays within it
  Start(limits);
  const int64_t aborted_before = Stats().num_requests_aborted;
  const Collected c = ReadWithPause(*stub_, Request(240), [&] {
    ASSERT_TRUE(
        WaitFor([&] { return Stats().num_requests_aborted > aborted_before; }, seconds(30)));
  });
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << c.status.error_message();
  EXPECT_LT(c.ids.size(), 240u);
  // Counted against its model and its tenant, with why.
  const std::string metrics = metrics_.Render({});
  EXPECT_NE(metrics.find("code=\"RESOURCE_EXHAUSTED\",reason=\"slow_reader\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        const runtime::EngineStats s = Stats();
        return s.num_running == 0 && s.kv_blocks_free == s.kv_blocks_total;
      },
      seconds(5)));
  // The server serves on.
  const Collected next = ReadWithPause(*stub_, Request(4), [] {});
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

// A client that reads one message and then never again, with its call left
// open: once the request has ended, the write it stalls is given
// write_stall_timeout, and then the call is cancelled (it never ended
// before: the call, its output and its model stayed until the client left).
TEST_F(BackpressureTest, AClientThatStopsReadingForGoodIsCutOff) {
  StreamLimits limits;
  limits.write_stall_timeout = milliseconds(300);
  Start(limits);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, Request(240));
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  // The request ends (the engine outruns the stalled writes by far)...
  ASSERT_TRUE(WaitFor([&] { return Stats().num_requests_finished == 1; }, seconds(30)));
  // ...and the call is cut off, counted as a slow reader.
  EXPECT_TRUE(WaitFor(
      [&] {
        return metrics_.Render({}).find("code=\"RESOURCE_EXHAUSTED\",reason=\"slow_reader\"} 1") !=
               std::string::npos;
      },
      seconds(10)))
      << metrics_.Render({});
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server serves on.
  const Collected next = ReadWithPause(*stub_, Request(4), [] {});
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

// A client that reads a message just inside each write's stall timeout,
// once the request has ended: what was unsent then must drain at
// drain_progress_bytes per timeout, else the call is cut off. Before, each
// message restarted the timeout, and such a client held its output (up to
// the backlog bound, 8 MiB) for as many timeouts as it had messages.
TEST_F(BackpressureTest, AClientThatReadsTooSlowlyIsCutOffAtItsDrainDeadline) {
  StreamLimits limits;
  limits.write_stall_timeout = milliseconds(400);
  limits.max_message_bytes = 16;  // a few tokens a message: many messages
  limits.drain_progress_bytes = size_t{16} << 10;
  Start(limits);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, Request(240));
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(WaitFor([&] { return Stats().num_requests_finished == 1; }, seconds(30)));
  // 240 deltas (about 30 KB held): two steps of 16 KB, 800 ms to drain,
  // read at a message per 250 ms (some 60 messages: 15 s).
  int read = 1;
  while (reader->Read(&msg)) {
    ++read;
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(read, 40) << "cut off before it read all";
  EXPECT_THAT(metrics_.Render({}), ::testing::HasSubstr("reason=\"slow_reader\"} 1"));
  // A client that reads at once gets it all, in as many messages.
  const Collected next = ReadWithPause(*stub_, Request(240), [] {});
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.ids.size(), 240u);
}

// A tenant's stream stays open while the server still holds its output: a
// call whose request ended but whose client has not read it counts against
// max_streams (before, it was let go of as its request ended, and a tenant
// that never read could hold the output of any number of calls); once its
// last message goes to the transport, it is let go of, before the client
// can see the end, so that a next call at once is admitted.
TEST_F(BackpressureTest, AnUnreadCallKeepsItsTenantsStreamOpen) {
  scheduler::RouterOptions router;
  router.tenants.defaults.max_streams = 1;
  StreamLimits limits;
  limits.max_message_bytes = 64;  // many messages, which wait on the reader
  Start(limits, router);
  const auto call = [&](grpc::ClientContext* ctx, int max_tokens) {
    ctx->AddMetadata("x-cohost-tenant", "bob");
    return stub_->Generate(ctx, Request(max_tokens));
  };
  grpc::ClientContext first_ctx;
  auto first = call(&first_ctx, 240);
  v1::GenerateResponse msg;
  ASSERT_TRUE(first->Read(&msg));
  ASSERT_TRUE(WaitFor([&] { return Stats().num_requests_finished == 1; }, seconds(30)));
  {
    grpc::ClientContext ctx;
    auto second = call(&ctx, 4);
    while (second->Read(&msg)) {
    }
    const grpc::Status refused = second->Finish();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << refused.error_message();
    EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("max_streams"));
  }
  while (first->Read(&msg)) {
  }
  ASSERT_TRUE(first->Finish().ok());
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    auto next = call(&ctx, 4);
    while (next->Read(&msg)) {
    }
    const grpc::Status status = next->Finish();
    EXPECT_TRUE(status.ok()) << i << ": " << status.error_message();
  }
}

// A call whose client stopped reading does not keep its model: unloading it
// frees its memory at once (the call held the model until the client left).
TEST_F(BackpressureTest, AStalledCallLetsGoOfAnUnloadedModel) {
  Start(StreamLimits{});  // the stall timeout (30 s) is not reached here
  std::weak_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, Request(240));
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(WaitFor([&] { return Stats().num_requests_finished == 1; }, seconds(30)));
  ASSERT_TRUE(tiny_->router->UnloadModel("tiny").ok());
  EXPECT_TRUE(WaitFor([&] { return model.expired(); }, seconds(10)))
      << "the stalled call kept the unloaded model";
  ctx.TryCancel();
  while (reader->Read(&msg)) {
  }
  reader->Finish();
}

}  // namespace
}  // namespace cohost::server
