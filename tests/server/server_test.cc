// The gRPC server end to end over loopback, on the default model: greedy
// output equal to the transformers reference, cancellation and disconnects
// freeing KV blocks within a few engine steps, every bad input's status code
// (and the server serving on), overload with retry pushback, queued requests
// past their deadline, health, reflection, model management, and draining.

#include "server/server.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/grpc_test_client.h"

namespace cohost::server {
namespace {

using ::cohost::testing::CallOptions;
using ::cohost::testing::Generate;
using ::cohost::testing::HealthCheck;
using ::cohost::testing::StreamResult;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr char kModel[] = "smol";

using ::cohost::testing::WaitFor;

// One server on a fresh Router holding the default model as "smol".
class TestServer {
 public:
  explicit TestServer(runtime::EngineConfig engine = {}, scheduler::AdmissionLimits limits = {},
                      std::string model_root = "",
                      std::vector<scheduler::ModelSpec> configured = {},
                      const std::function<void(ServerOptions&)>& tune = {}) {
    backend_ = kernels::MakeCpuBackend(0);
    router_ = std::make_unique<scheduler::Router>(backend_.get(), engine, limits);
    status_ = router_->LoadModel(kModel, COHOST_DEFAULT_MODEL);
    if (!status_.ok()) return;
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.health_interval = milliseconds(50);
    options.model_root = std::move(model_root);
    options.configured_models = std::move(configured);
    if (tune) tune(options);
    absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(router_.get(), &metrics_, options);
    if (!s.ok()) {
      status_ = s.status();
      return;
    }
    server_ = *std::move(s);
    channel_ = NewChannel(server_->port());
    stub_ = v1::Inference::NewStub(channel_);
  }
  ~TestServer() {
    server_.reset();  // before the router, whose engines its streams use
    router_.reset();
  }

  static std::shared_ptr<grpc::Channel> NewChannel(int port) {
    return cohost::testing::OwnLoopbackChannel(port);
  }

  const absl::Status& status() const { return status_; }
  v1::Inference::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() { return channel_; }
  Server& server() { return *server_; }
  scheduler::Router& router() { return *router_; }
  ServerMetrics& metrics() { return metrics_; }
  runtime::EngineStats Stats() const { return (*router_->Find(kModel))->Stats(); }
  const runtime::Tokenizer& tokenizer() const { return (*router_->Find(kModel))->tokenizer(); }

 private:
  ServerMetrics metrics_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<scheduler::Router> router_;
  absl::Status status_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

nlohmann::json ReferenceCase0() {
  std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/forward_reference_smollm2.json");
  return nlohmann::json::parse(f)["cases"][0];
}

v1::GenerateRequest Greedy(int max_tokens) {
  v1::GenerateRequest r;
  r.set_model(kModel);
  r.set_text("The capital of France is");
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  return r;
}

// The pool is back to all-free with nothing running.
bool PoolIdle(const runtime::EngineStats& s) {
  return s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_free == s.kv_blocks_total;
}

TEST(ServerTest, GreedyStreamEqualsTheReference) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  const nlohmann::json ref = ReferenceCase0();
  const std::vector<int32_t> prompt_ids = ref["prompt_ids"];
  const std::vector<int32_t> want = ref["greedy_ids"];

  v1::GenerateRequest r = Greedy(32);
  r.clear_text();
  for (int32_t id : prompt_ids) r.mutable_tokens()->add_ids(id);
  StreamResult got = Generate(ts.stub(), r);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(got.token_ids, want);
  EXPECT_EQ(got.text, ts.tokenizer().Decode(want));
  EXPECT_GT(got.messages.size(), 1u) << "streamed, not one message at the end";
  EXPECT_FALSE(got.messages.front().request_id().empty());
  for (size_t i = 1; i < got.messages.size(); ++i)
    EXPECT_TRUE(got.messages[i].request_id().empty());
  const v1::GenerateResponse& last = got.last();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().prompt_tokens(), prompt_ids.size());
  EXPECT_EQ(last.usage().completion_tokens(), 32u);
  EXPECT_GT(last.timings().time_to_first_token_ms(), 0);
  EXPECT_GE(last.timings().time_to_first_token_ms(), last.timings().queue_time_ms());
  EXPECT_GE(last.timings().e2e_ms(), last.timings().time_to_first_token_ms());
  EXPECT_GT(last.timings().decode_tokens_per_second(), 0);
  for (size_t i = 0; i + 1 < got.messages.size(); ++i) {
    EXPECT_EQ(got.messages[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  }

  // Text input tokenizes as `cohost run` does; the request id is echoed.
  v1::GenerateRequest text = Greedy(6);
  text.set_request_id("my-id-1");
  StreamResult t = Generate(ts.stub(), text);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.messages.front().request_id(), "my-id-1");
  EXPECT_EQ(t.last().usage().prompt_tokens(), prompt_ids.size());
  EXPECT_EQ(t.token_ids, std::vector<int32_t>(want.begin(), want.begin() + 6));

  // A logit bias of -100 rules the reference's first token out, and one of
  // 100 makes a token every draw.
  v1::GenerateRequest banned = r;
  banned.set_max_tokens(1);
  (*banned.mutable_sampling()->mutable_logit_bias())[want[0]] = -100;
  StreamResult b = Generate(ts.stub(), banned);
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  ASSERT_EQ(b.token_ids.size(), 1u);
  EXPECT_NE(b.token_ids[0], want[0]);
  v1::GenerateRequest forced = r;
  forced.set_max_tokens(4);
  (*forced.mutable_sampling()->mutable_logit_bias())[1234] = 100;
  StreamResult f = Generate(ts.stub(), forced);
  ASSERT_TRUE(f.status.ok()) << f.status.error_message();
  EXPECT_EQ(f.token_ids, std::vector<int32_t>(4, 1234));
}

TEST(ServerTest, CancelMidStreamFreesTheRequestsBlocks) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  const runtime::EngineStats before = ts.Stats();
  ASSERT_TRUE(PoolIdle(before));

  grpc::ClientContext ctx;
  auto reader = ts.stub().Generate(&ctx, Greedy(200));
  v1::GenerateResponse msg;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Read(&msg));
  EXPECT_LT(ts.Stats().kv_blocks_free, ts.Stats().kv_blocks_total) << "the request holds blocks";
  ctx.TryCancel();
  const int64_t steps_at_cancel = ts.Stats().num_steps;
  ASSERT_TRUE(WaitFor([&] { return PoolIdle(ts.Stats()); }, seconds(10)));
  const runtime::EngineStats after = ts.Stats();
  // The server aborts at once; the engine frees at its next step boundary.
  // (A little slack for a loaded machine.)
  EXPECT_LE(after.num_steps - steps_at_cancel, 3);
  EXPECT_EQ(after.num_requests_aborted, before.num_requests_aborted + 1);
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  StreamResult next = Generate(ts.stub(), Greedy(2));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

TEST(ServerTest, ClientDisconnectFreesTheRequestsBlocks) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  const runtime::EngineStats before = ts.Stats();
  cohost::testing::TcpProxy proxy(ts.server().port());
  ASSERT_GT(proxy.port(), 0);

  std::atomic<int> received{0};
  grpc::Status final_status;
  std::thread client([&] {
    auto stub = v1::Inference::NewStub(TestServer::NewChannel(proxy.port()));
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, Greedy(200));
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) ++received;
    final_status = reader->Finish();
  });
  ASSERT_TRUE(WaitFor([&] { return received.load() >= 2; }, seconds(60)));
  proxy.CutAll();  // the client's machine is gone: no RST_STREAM, just a dead socket
  const int64_t steps_at_cut = ts.Stats().num_steps;
  ASSERT_TRUE(WaitFor([&] { return PoolIdle(ts.Stats()); }, seconds(10)));
  EXPECT_LE(ts.Stats().num_steps - steps_at_cut, 3);
  EXPECT_EQ(ts.Stats().num_requests_aborted, before.num_requests_aborted + 1);
  client.join();
  EXPECT_FALSE(final_status.ok());

  StreamResult next = Generate(ts.stub(), Greedy(2));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
}

TEST(ServerTest, EveryBadInputGetsItsCodeAndTheServerServesOn) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  struct Case {
    std::string name;
    std::function<void(v1::GenerateRequest&)> edit;
    grpc::StatusCode code;
    CallOptions options = {};
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const std::vector<Case> cases = {
      {"unknown model", [](auto& r) { r.set_model("no-such-model"); }, grpc::StatusCode::NOT_FOUND},
      {"no input", [](auto& r) { r.clear_input(); }, kInvalid},
      {"empty text (SmolLM2 adds no BOS)", [](auto& r) { r.set_text(""); }, kInvalid},
      {"empty tokens", [](auto& r) { r.mutable_tokens(); }, kInvalid},
      {"tools on a model whose template offers none",
       [](auto& r) {
         v1::ChatMessage* m = r.mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("hi");
         r.mutable_chat()->add_tools()->set_name("f");
       },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"token outside the vocab", [](auto& r) { r.mutable_tokens()->add_ids(49152); }, kInvalid},
      {"invalid UTF-8", [](auto& r) { r.set_text("caf\xc3 \xff"); }, kInvalid},
      {"max_tokens 0", [](auto& r) { r.set_max_tokens(0); }, kInvalid},
      {"beyond the context", [](auto& r) { r.set_max_tokens(8192); }, kInvalid},
      {"NaN temperature", [&](auto& r) { r.mutable_sampling()->set_temperature(nan); }, kInvalid},
      {"top_p 2", [](auto& r) { r.mutable_sampling()->set_top_p(2); }, kInvalid},
      {"top_k -1", [](auto& r) { r.mutable_sampling()->set_top_k(-1); }, kInvalid},
      {"17 stop strings",
       [](auto& r) {
         for (int i = 0; i < 17; ++i) r.add_stop(absl::StrCat("s", i));
       },
       kInvalid},
      {"a 300-byte stop string", [](auto& r) { r.add_stop(std::string(300, 'x')); }, kInvalid},
      {"stop id outside the vocab", [](auto& r) { r.add_stop_token_ids(-3); }, kInvalid},
      {"a logit bias of a token outside the vocab",
       [](auto& r) { (*r.mutable_sampling()->mutable_logit_bias())[49152] = 1; }, kInvalid},
      {"a logit bias past 100",
       [](auto& r) { (*r.mutable_sampling()->mutable_logit_bias())[7] = 101; }, kInvalid},
      {"301 logit biases",
       [](auto& r) {
         for (int i = 0; i < 301; ++i) (*r.mutable_sampling()->mutable_logit_bias())[i] = 1;
       },
       kInvalid},
      {"request id too long", [](auto& r) { r.set_request_id(std::string(300, 'r')); }, kInvalid},
      {"tenant too long", [](auto&) {}, kInvalid, CallOptions{std::nullopt, std::string(300, 't')}},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest r = Greedy(2);
    c.edit(r);
    StreamResult bad = Generate(ts.stub(), r, c.options);
    EXPECT_EQ(bad.status.error_code(), c.code) << c.name << ": " << bad.status.error_message();
    EXPECT_TRUE(bad.messages.empty()) << c.name << ": errors come before the stream";
    if (c.code == grpc::StatusCode::NOT_FOUND) {
      EXPECT_THAT(bad.status.error_message(), HasSubstr("no-such-model"));
    }
    StreamResult good = Generate(ts.stub(), Greedy(1), CallOptions{std::nullopt, "tenant-a"});
    EXPECT_TRUE(good.status.ok()) << "after " << c.name << ": " << good.status.error_message();
    EXPECT_EQ(good.token_ids.size(), 1u);
  }
  const std::string page = ts.metrics().Render({});
  EXPECT_THAT(page, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(page, HasSubstr("NOT_FOUND"));
}

TEST(ServerTest, HealthAndModelListing) {
  TestServer ts({}, {}, std::filesystem::path(COHOST_DEFAULT_MODEL).parent_path().string());
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  EXPECT_EQ(HealthCheck(ts.channel(), "").value_or(-1), 1);
  EXPECT_EQ(HealthCheck(ts.channel(), kModel).value_or(-1), 1);
  EXPECT_EQ(HealthCheck(ts.channel(), "no-such-model").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::string> services = cohost::testing::ReflectionListServices(ts.channel());
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, HasSubstr("cohost.v1.Inference"));
  EXPECT_THAT(*services, HasSubstr("grpc.health.v1.Health"));

  grpc::ClientContext ctx;
  v1::ListModelsResponse list;
  ASSERT_TRUE(ts.stub().ListModels(&ctx, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).name(), kModel);
  EXPECT_EQ(list.models(0).path(), COHOST_DEFAULT_MODEL);
  EXPECT_EQ(list.models(0).vocab_size(), 49152u);
  EXPECT_EQ(list.models(0).context_length(), 8192u);
  EXPECT_GT(list.models(0).kv_cache_tokens(), 0u);
  EXPECT_TRUE(list.models(0).serving());
  EXPECT_EQ(list.models(0).state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(list.models(0).state_reason(), "");
  EXPECT_FALSE(list.models(0).device().empty());
  EXPECT_GT(list.models(0).weights_bytes(), 0u);
  EXPECT_EQ(list.models(0).weights_bytes(), list.models(0).predicted_weights_bytes())
      << "placement predicts exactly what the weights take";
  EXPECT_FALSE(list.models(0).lazy());
  EXPECT_GT(list.models(0).workspace_bytes(), 0u) << "the largest step's activations, allocated";
  EXPECT_EQ(list.models(0).offloaded_bytes(), 0u) << "resident, and the CPU's reload from the file";

  // Unloading turns the model's health NOT_SERVING; loading brings it back.
  grpc::ClientContext unload_ctx;
  v1::UnloadModelRequest unload;
  unload.set_name(kModel);
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(ts.stub().UnloadModel(&unload_ctx, unload, &unloaded).ok());
  EXPECT_TRUE(
      WaitFor([&] { return HealthCheck(ts.channel(), kModel).value_or(-1) == 2; }, seconds(5)));
  StreamResult gone = Generate(ts.stub(), Greedy(1));
  EXPECT_EQ(gone.status.error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext load_ctx;
  v1::LoadModelRequest load;
  load.set_name(kModel);
  load.set_path(std::filesystem::path(COHOST_DEFAULT_MODEL).filename().string());
  v1::LoadModelResponse loaded;
  const grpc::Status load_status = ts.stub().LoadModel(&load_ctx, load, &loaded);
  ASSERT_TRUE(load_status.ok()) << load_status.error_message();
  EXPECT_EQ(loaded.model().name(), kModel);
  // LoadModel answers before the weights are read (a load takes seconds).
  EXPECT_EQ(loaded.model().state(), v1::MODEL_STATE_LOADING);
  EXPECT_FALSE(loaded.model().serving());
  EXPECT_TRUE(
      WaitFor([&] { return HealthCheck(ts.channel(), kModel).value_or(-1) == 1; }, seconds(60)));
  EXPECT_TRUE(Generate(ts.stub(), Greedy(1)).status.ok());
  EXPECT_EQ(list.models(0).experts(), 0u) << "a dense model";

  // A mixture of experts says how many it has, and how many a token uses
  // (the Qwen3-MoE variant of the same weights: 2 of 4).
  grpc::ClientContext moe_ctx;
  load.set_name("moe");
  load.set_path("SmolLM2-135M-Instruct.Qwen3MoE-Q8_0.gguf");
  const grpc::Status moe_status = ts.stub().LoadModel(&moe_ctx, load, &loaded);
  ASSERT_TRUE(moe_status.ok()) << moe_status.error_message();
  EXPECT_TRUE(
      WaitFor([&] { return HealthCheck(ts.channel(), "moe").value_or(-1) == 1; }, seconds(60)));
  grpc::ClientContext moe_list_ctx;
  ASSERT_TRUE(ts.stub().ListModels(&moe_list_ctx, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  const v1::ModelInfo& moe = list.models(0).name() == "moe" ? list.models(0) : list.models(1);
  EXPECT_EQ(moe.architecture(), "qwen3moe");
  EXPECT_EQ(moe.experts(), 4u);
  EXPECT_EQ(moe.experts_used(), 2u);
}

// A connection without calls is closed after the idle limit, so that
// connections opened and left do not hold descriptors; the client reconnects
// on its next call. With the default limit the same wait leaves it open.
TEST(ServerTest, AConnectionLeftIdleIsClosedAndTheClientReconnects) {
  for (const bool short_limit : {false, true}) {
    TestServer ts({}, {}, "", {}, [&](ServerOptions& o) {
      if (short_limit) o.max_connection_idle_ms = 300;
    });
    ASSERT_TRUE(ts.status().ok()) << ts.status();
    const auto list = [&] {
      grpc::ClientContext ctx;
      v1::ListModelsResponse response;
      return ts.stub().ListModels(&ctx, {}, &response).ok();
    };
    ASSERT_TRUE(list());
    ASSERT_EQ(ts.channel()->GetState(false), GRPC_CHANNEL_READY);
    const bool closed =
        WaitFor([&] { return ts.channel()->GetState(false) != GRPC_CHANNEL_READY; }, seconds(3));
    EXPECT_EQ(closed, short_limit) << (short_limit ? "past the idle limit" : "by default");
    EXPECT_TRUE(list()) << "a call after the close reconnects";
  }
}

// grpc.health.v1 Watch on a model's name: its status at once, then each
// change (unloaded: NOT_SERVING; loaded again: SERVING); an unknown name is
// SERVICE_UNKNOWN, and the stream ends when the client cancels it.
TEST(ServerTest, HealthWatchFollowsAModelsStatus) {
  using grpc::health::v1::HealthCheckResponse;
  TestServer ts({}, {}, std::filesystem::path(COHOST_DEFAULT_MODEL).parent_path().string());
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  auto health = grpc::health::v1::Health::NewStub(ts.channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(kModel);
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch = health->Watch(&ctx, req);
  HealthCheckResponse r;
  ASSERT_TRUE(watch->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::SERVING);

  grpc::ClientContext unload_ctx;
  v1::UnloadModelRequest unload;
  unload.set_name(kModel);
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(ts.stub().UnloadModel(&unload_ctx, unload, &unloaded).ok());
  ASSERT_TRUE(watch->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::NOT_SERVING);

  grpc::ClientContext load_ctx;
  v1::LoadModelRequest load;
  load.set_name(kModel);
  load.set_path(std::filesystem::path(COHOST_DEFAULT_MODEL).filename().string());
  v1::LoadModelResponse loaded;
  ASSERT_TRUE(ts.stub().LoadModel(&load_ctx, load, &loaded).ok());
  ASSERT_TRUE(watch->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::SERVING) << "once loaded again";

  grpc::ClientContext unknown_ctx;
  req.set_service("no-such-model");
  auto unknown = health->Watch(&unknown_ctx, req);
  ASSERT_TRUE(unknown->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  unknown_ctx.TryCancel();
  EXPECT_FALSE(unknown->Read(&r));
  EXPECT_EQ(unknown->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ctx.TryCancel();
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// Watch streams are capped server-wide (the empty name takes no key): past
// the cap a Watch is RESOURCE_EXHAUSTED, and a cancelled one makes room.
TEST(ServerTest, HealthWatchesAreCapped) {
  using grpc::health::v1::HealthCheckResponse;
  TestServer ts({}, {}, "", {}, [](ServerOptions& o) { o.max_health_watches = 2; });
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  auto health = grpc::health::v1::Health::NewStub(ts.channel());
  grpc::health::v1::HealthCheckRequest req;  // "": the whole server
  struct Open {
    std::unique_ptr<grpc::ClientContext> ctx = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> stream;
    HealthCheckResponse first;
    bool ok = false;
  };
  const auto watch = [&] {
    Open w;
    w.stream = health->Watch(w.ctx.get(), req);
    w.ok = w.stream->Read(&w.first);
    return w;
  };
  Open a = watch(), b = watch();
  ASSERT_TRUE(a.ok && b.ok);
  Open c = watch();
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.stream->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  a.ctx->TryCancel();
  EXPECT_EQ(a.stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The cancelled stream's watcher is swept once its reactor is done.
  Open d;
  EXPECT_TRUE(WaitFor(
      [&] {
        if (d.stream != nullptr) d.stream->Finish();
        d = watch();
        return d.ok;
      },
      seconds(10)))
      << "room made by the cancelled watch";
  EXPECT_EQ(d.first.status(), HealthCheckResponse::SERVING);
  for (Open* w : {&b, &d}) {
    w->ctx->TryCancel();
    w->stream->Finish();
  }
}

// One client address holds at most its share of the Watch streams (here the
// loopback client, counted as the tests count it): past it RESOURCE_EXHAUSTED
// naming the client's limit, and a cancelled one makes room. Loopback
// clients are not counted by default (a proxy beside the server).
TEST(ServerTest, HealthWatchesAreCappedPerClient) {
  using grpc::health::v1::HealthCheckResponse;
  for (const bool counted : {true, false}) {
    TestServer ts({}, {}, "", {}, [&](ServerOptions& o) {
      o.max_health_watches_per_client = 1;
      o.cap_loopback_clients = counted;
    });
    ASSERT_TRUE(ts.status().ok()) << ts.status();
    auto health = grpc::health::v1::Health::NewStub(ts.channel());
    grpc::health::v1::HealthCheckRequest req;
    grpc::ClientContext first_ctx, second_ctx;
    HealthCheckResponse r;
    auto first = health->Watch(&first_ctx, req);
    ASSERT_TRUE(first->Read(&r));
    auto second = health->Watch(&second_ctx, req);
    if (!counted) {
      EXPECT_TRUE(second->Read(&r)) << "loopback clients are not counted by default";
      second_ctx.TryCancel();
      second->Finish();
      first_ctx.TryCancel();
      first->Finish();
      continue;
    }
    EXPECT_FALSE(second->Read(&r));
    const grpc::Status refused = second->Finish();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(refused.error_message(), HasSubstr("this client holds 1"));
    first_ctx.TryCancel();
    EXPECT_EQ(first->Finish().error_code(), grpc::StatusCode::CANCELLED);
    // Its count goes with the watcher, once its reactor is done.
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> again;
    EXPECT_TRUE(WaitFor(
        [&] {
          if (again != nullptr) again->Finish();
          ctx = std::make_unique<grpc::ClientContext>();
          again = health->Watch(ctx.get(), req);
          return again->Read(&r);
        },
        seconds(10)))
        << "room made by the cancelled watch";
    ctx->TryCancel();
    again->Finish();
  }
}

// Without a model root, LoadModel (re)loads the server's configured models by
// name, and nothing else.
TEST(ServerTest, WithoutARootLoadModelLoadsConfiguredModelsByName) {
  scheduler::ModelSpec spare;
  spare.name = "spare";
  spare.path = COHOST_DEFAULT_MODEL;
  TestServer ts({}, {}, "", {spare});
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  const auto load = [&](const std::string& name, const std::string& path) {
    grpc::ClientContext ctx;
    v1::LoadModelRequest r;
    r.set_name(name);
    r.set_path(path);
    v1::LoadModelResponse response;
    return ts.stub().LoadModel(&ctx, r, &response).error_code();
  };
  EXPECT_EQ(load("spare", "/etc/passwd"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(load("other", ""), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(load("other", COHOST_DEFAULT_MODEL), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_EQ(load("spare", ""), grpc::StatusCode::OK);
  EXPECT_TRUE(
      WaitFor([&] { return HealthCheck(ts.channel(), "spare").value_or(-1) == 1; }, seconds(60)));
  EXPECT_EQ(load("spare", ""), grpc::StatusCode::ALREADY_EXISTS);
  v1::GenerateRequest r = Greedy(2);
  r.set_model("spare");
  EXPECT_TRUE(Generate(ts.stub(), r).status.ok());
}

// With a model root too, a configured model reloads by name as configured
// (it was refused: "the model path is empty").
TEST(ServerTest, WithARootConfiguredModelsStillLoadByName) {
  scheduler::ModelSpec spare;
  spare.name = "spare";
  spare.path = COHOST_DEFAULT_MODEL;
  spare.priority = 7;
  TestServer ts({}, {}, std::filesystem::path(COHOST_DEFAULT_MODEL).parent_path().string(),
                {spare});
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  grpc::ClientContext ctx;
  v1::LoadModelRequest r;
  r.set_name("spare");
  v1::LoadModelResponse response;
  const grpc::Status s = ts.stub().LoadModel(&ctx, r, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> model = ts.router().Find("spare");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->spec().priority, 7) << "loaded with a default spec, not its own";
}

// LoadModel names files under the operator's model root only, and its
// refusals say nothing about the server's files.
TEST(ServerTest, LoadModelPathsStayUnderTheModelRoot) {
  const std::string root = std::filesystem::path(COHOST_DEFAULT_MODEL).parent_path().string();
  const auto load = [](TestServer& ts, const std::string& path) {
    grpc::ClientContext ctx;
    v1::LoadModelRequest r;
    r.set_name("other");
    r.set_path(path);
    v1::LoadModelResponse response;
    return ts.stub().LoadModel(&ctx, r, &response);
  };
  {
    TestServer off;  // no --model-root: LoadModel is off
    ASSERT_TRUE(off.status().ok()) << off.status();
    const grpc::Status s = load(off, "SmolLM2-135M-Instruct.Q4_1.gguf");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("--model-root"));
  }
  TestServer ts({}, {}, root);
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  const struct {
    std::string path;
    grpc::StatusCode code;
  } cases[] = {
      {"/etc/passwd", grpc::StatusCode::PERMISSION_DENIED},  // exists, outside the root
      {"/no/such/file", grpc::StatusCode::PERMISSION_DENIED},
      {"../models/SmolLM2-135M-Instruct.Q4_1.gguf", grpc::StatusCode::PERMISSION_DENIED},
      {"no-such-model.gguf", grpc::StatusCode::PERMISSION_DENIED},
      {"", grpc::StatusCode::INVALID_ARGUMENT},
  };
  for (const auto& c : cases) {
    const grpc::Status s = load(ts, c.path);
    EXPECT_EQ(s.error_code(), c.code) << c.path << ": " << s.error_message();
    EXPECT_EQ(s.error_message().find(root), std::string::npos)
        << "the server's model directory leaked: " << s.error_message();
  }
  grpc::ClientContext ctx;
  v1::ListModelsResponse list;
  ASSERT_TRUE(ts.stub().ListModels(&ctx, {}, &list).ok());
  EXPECT_EQ(list.models_size(), 1) << "nothing was registered";
}

// One sequence at a time and a queue of one: a long request runs, one waits,
// the rest are refused.
runtime::EngineConfig OneAtATime() {
  runtime::EngineConfig c;
  c.step_scheduler.max_num_seqs = 1;
  return c;
}

TEST(ServerTest, OverloadIsResourceExhaustedWithPushback) {
  scheduler::AdmissionLimits limits;
  limits.max_queued_requests = 1;
  limits.retry_pushback_ms = 250;
  TestServer ts(OneAtATime(), limits);
  ASSERT_TRUE(ts.status().ok()) << ts.status();

  // A long request runs (cancelled once the others are answered) ...
  grpc::ClientContext long_ctx;
  StreamResult long_result;
  std::thread long_request([&] {
    long_result = Generate(ts.stub(), Greedy(400), CallOptions{std::nullopt, "", &long_ctx});
  });
  ASSERT_TRUE(WaitFor([&] { return ts.Stats().num_running == 1; }, seconds(60)));

  // ... while five arrive: one fits the queue, four are refused at once.
  std::vector<StreamResult> results(5);
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (StreamResult& r : results) {
    clients.emplace_back([&ts, &r, &answered] {
      r = Generate(ts.stub(), Greedy(2));
      ++answered;
    });
  }
  EXPECT_TRUE(WaitFor([&] { return answered == 4; }, seconds(60)))
      << results[0].status.error_message();
  EXPECT_EQ(ts.Stats().num_waiting, 1);
  long_ctx.TryCancel();
  for (std::thread& t : clients) t.join();
  long_request.join();
  EXPECT_EQ(long_result.status.error_code(), grpc::StatusCode::CANCELLED);
  int ok = 0, exhausted = 0;
  for (const StreamResult& r : results) {
    if (r.status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << r.status.error_message();
      ++exhausted;
      auto it = r.trailers.find("grpc-retry-pushback-ms");
      ASSERT_NE(it, r.trailers.end()) << "no pushback trailer";
      EXPECT_EQ(it->second, "250");
      EXPECT_TRUE(r.messages.empty());
    }
  }
  EXPECT_EQ(ok, 1) << "the one queued behind the long request";
  EXPECT_EQ(exhausted, 4);
  EXPECT_THAT(ts.metrics().Render({}), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_TRUE(Generate(ts.stub(), Greedy(1)).status.ok()) << "serves on once the queue drains";
}

// A running stream whose deadline passes is cancelled by gRPC at the same
// moment the engine would expire it: the server counts it as the client sees
// it, DEADLINE_EXCEEDED (a tenant's refusal by "deadline"), not as a client's
// cancel. Before, missed deadlines looked like clients giving up.
TEST(ServerTest, ARunningStreamPastItsDeadlineIsCountedAsDeadlineExceeded) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  StreamResult r = Generate(ts.stub(), Greedy(500), CallOptions{milliseconds(300), "acme"});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << r.status.error_message();
  const std::string errors = absl::StrCat("cohost_request_errors_total{model=\"", kModel,
                                          "\",code=\"DEADLINE_EXCEEDED\"} 1");
  EXPECT_TRUE(
      WaitFor([&] { return absl::StrContains(ts.metrics().Render({}), errors); }, seconds(10)))
      << ts.metrics().Render({});
  const std::string page = ts.metrics().Render({});
  EXPECT_THAT(page, HasSubstr(absl::StrCat("cohost_request_cancellations_total{model=\"", kModel,
                                           "\"} 0")));
  EXPECT_THAT(page, HasSubstr("{tenant=\"acme\",code=\"DEADLINE_EXCEEDED\",reason=\"deadline\"} 1"))
      << "the admitted request's own tenant label";
  EXPECT_TRUE(WaitFor([&] { return PoolIdle(ts.Stats()); }, seconds(5)));
}

TEST(ServerTest, QueuedRequestPastItsDeadlineIsDeadlineExceeded) {
  TestServer ts(OneAtATime());
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  grpc::ClientContext long_ctx;
  StreamResult long_result;
  std::thread long_request([&] {
    long_result = Generate(ts.stub(), Greedy(400), CallOptions{std::nullopt, "", &long_ctx});
  });
  ASSERT_TRUE(WaitFor([&] { return ts.Stats().num_running == 1; }, seconds(60)));

  StreamResult late = Generate(ts.stub(), Greedy(2), CallOptions{milliseconds(300), ""});
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << late.status.error_message();
  // It left the queue while the long request still runs.
  EXPECT_TRUE(WaitFor([&] { return ts.Stats().num_waiting == 0; }, seconds(2)));
  EXPECT_EQ(ts.Stats().num_running, 1);
  long_ctx.TryCancel();
  long_request.join();
  EXPECT_FALSE(long_result.messages.empty());
}

TEST(ServerTest, DrainFinishesLiveStreamsAndRefusesNewOnes) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  StreamResult live;
  std::thread client([&] { live = Generate(ts.stub(), Greedy(12)); });
  ASSERT_TRUE(WaitFor([&] { return ts.Stats().num_running == 1; }, seconds(30)));

  int aborted = -1;
  std::thread drainer([&] { aborted = ts.server().Drain(seconds(60)); });
  ASSERT_TRUE(WaitFor([&] { return ts.router().draining(); }, seconds(5)));
  EXPECT_EQ(HealthCheck(ts.channel(), "").value_or(-1), 2);
  EXPECT_EQ(HealthCheck(ts.channel(), kModel).value_or(-1), 2);
  StreamResult refused = Generate(ts.stub(), Greedy(1));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);

  client.join();
  drainer.join();
  ASSERT_TRUE(live.status.ok()) << live.status.error_message();
  EXPECT_EQ(live.last().finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(live.token_ids.size(), 12u);
  EXPECT_EQ(aborted, 0);
}

TEST(ServerTest, DrainDeadlineCancelsWhatIsLeft) {
  TestServer ts;
  ASSERT_TRUE(ts.status().ok()) << ts.status();
  StreamResult live;
  std::thread client([&] { live = Generate(ts.stub(), Greedy(500)); });
  ASSERT_TRUE(WaitFor([&] { return ts.Stats().num_running == 1; }, seconds(30)));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ts.server().Drain(milliseconds(300)), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(10));
  client.join();
  EXPECT_EQ(live.status.error_code(), grpc::StatusCode::UNAVAILABLE) << live.status.error_message();
  EXPECT_FALSE(live.token_ids.empty()) << "what was generated before the deadline was streamed";
  // Stats are published at the end of the step that retired it.
  EXPECT_TRUE(WaitFor([&] { return PoolIdle(ts.Stats()); }, seconds(2)));
}

}  // namespace
}  // namespace cohost::server
