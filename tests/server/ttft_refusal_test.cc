// A refusal by predicted TTFT reaches clients of both front doors before any
// output, with the pushback the scheduler computed (not the queue's fixed
// one): gRPC's `grpc-retry-pushback-ms` trailer and HTTP's 429 Retry-After.
// The tiny model's step cost is fixed at 3 s a step, so a one-step prompt is
// predicted at 3 s against a 100 ms target: 2,900 ms to wait. A failure
// after admission (a lazy model's load) says when to retry too.

#include <httplib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/http_front_door.h"
#include "server/server.h"
#include "tests/runtime/loader/tiny_gguf_model.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"

namespace cohost::server {
namespace {

using ::testing::HasSubstr;

class TtftRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime::EngineConfig engine;
    engine.step_cost = runtime::StepCost{3.0, 0};
    scheduler::ModelSpec spec;
    spec.ttft_target = std::chrono::milliseconds(100);
    spec.ttft_admit_margin_pct = 0;
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny =
        testing::MakeTinyRouter({}, engine, spec);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<http::HttpFrontDoor>> door =
        http::HttpFrontDoor::Start(deps, {});
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
    ServerOptions options;
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(tiny_->router.get(), &metrics_, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override {
    server_.reset();
    door_.reset();
    tiny_.reset();
  }

  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<http::HttpFrontDoor> door_;
  std::unique_ptr<Server> server_;
};

TEST_F(TtftRefusalTest, GrpcGetsResourceExhaustedWithThePredictedPushback) {
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  v1::GenerateRequest r;
  r.set_model("tiny");
  r.set_text("Hi");
  r.set_max_tokens(3);
  const testing::StreamResult result = testing::Generate(*stub, r);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(result.status.error_message(), HasSubstr("predicted in 3000 ms"));
  auto it = result.trailers.find("grpc-retry-pushback-ms");
  ASSERT_NE(it, result.trailers.end());
  EXPECT_EQ(it->second, "2900");
  EXPECT_TRUE(result.messages.empty()) << "refused before the stream started";
  EXPECT_THAT(metrics_.Render({}), HasSubstr("code=\"RESOURCE_EXHAUSTED\",reason=\"ttft_target\""))
      << "the tenant's refusals by reason";
}

TEST_F(TtftRefusalTest, HttpGets429WithRetryAfterRoundedUp) {
  httplib::Client client("127.0.0.1", door_->port());
  const nlohmann::json body = {
      {"model", "tiny"}, {"prompt", "Hi"}, {"max_tokens", 3}, {"stream", true}};
  httplib::Result r = client.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "3");
  EXPECT_THAT(r->body, HasSubstr("time-to-first-token target of 100 ms"));
  EXPECT_THAT(metrics_.Render({}), HasSubstr("reason=\"ttft_target\""));
}

// A request admitted for a lazy model whose load then fails ends with what a
// request refused within the wait after the failure is told: UNAVAILABLE,
// and when the load is tried again (AdmissionLimits::failed_load_retry_ms,
// 5 s at a first failure) in the trailer; HTTP gives it as Retry-After.
TEST_F(TtftRefusalTest, AFailedLoadTellsTheRequestsThatWaitedForItWhenToRetry) {
  const std::string path = runtime::testing::TempPath("ttft_refusal_lazy.gguf");
  runtime::testing::WriteFile(path, runtime::testing::MakeTinyModel().writer.Build());
  scheduler::ModelSpec spec;
  spec.name = "lazy";
  spec.path = path;
  spec.load = scheduler::LoadPolicy::kLazy;
  ASSERT_TRUE(tiny_->router->AddModel(spec).ok());
  std::filesystem::remove(path);  // gone before its first request
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  v1::GenerateRequest r;
  r.set_model("lazy");
  for (int id : {3, 4, 5}) r.mutable_tokens()->add_ids(id);
  r.set_max_tokens(3);
  const testing::StreamResult result = testing::Generate(*stub, r);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(result.status.error_message(), HasSubstr("failed to load"));
  auto it = result.trailers.find("grpc-retry-pushback-ms");
  ASSERT_NE(it, result.trailers.end()) << "no pushback trailer";
  EXPECT_EQ(it->second, "5000");
  EXPECT_THAT(metrics_.Render({}), HasSubstr("code=\"UNAVAILABLE\",reason=\"load_failed\""));
}

}  // namespace
}  // namespace cohost::server
