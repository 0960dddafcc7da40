// The client side against a fake cohost.v1 server on loopback: one streamed
// generation (StreamGenerate), errors with the pushback trailer, FindModel, and
// the bench load loop (closed loop, Poisson, duration bound, drain cancellation,
// tenant metadata).

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tools/client/client_common.h"
#include "tools/client/load_runner.h"

namespace cohost::tools {
namespace {

using ::testing::HasSubstr;

// Streams max_tokens tokens (id = 1000 + i, text "t<i> "), one message each,
// 2 ms apart, then a final message with finish LENGTH, usage and timings.
// model "busy": RESOURCE_EXHAUSTED with a pushback trailer of 250 ms.
// text "hang": streams nothing until the client cancels.
class FakeInference final : public v1::Inference::Service {
 public:
  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = context->client_metadata().find(kTenantMetadataKey);
      if (it != context->client_metadata().end()) {
        tenants_.emplace_back(it->second.data(), it->second.size());
      }
      requests_.push_back(*request);
    }
    if (request->model() == "busy") {
      context->AddTrailingMetadata(kPushbackTrailerKey, "250");
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full");
    }
    const int now = ++in_flight_;
    for (int seen = max_in_flight_.load(); now > seen;) {
      if (max_in_flight_.compare_exchange_weak(seen, now)) break;
    }
    struct Leave {
      std::atomic<int>* n;
      ~Leave() { --*n; }
    } leave{&in_flight_};
    if (request->text() == "hang") {
      while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    const uint32_t n = request->has_max_tokens() ? request->max_tokens() : 4;
    for (uint32_t i = 0; i < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      v1::GenerateResponse m;
      if (i == 0) m.set_request_id("req-1");
      m.add_token_ids(1000 + i);
      m.set_text("t" + std::to_string(i) + " ");
      if (!writer->Write(m)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
    }
    v1::GenerateResponse last;
    last.set_finish_reason(v1::FINISH_REASON_LENGTH);
    last.mutable_usage()->set_prompt_tokens(request->tokens().ids_size());
    last.mutable_usage()->set_completion_tokens(n);
    last.mutable_timings()->set_time_to_first_token_ms(1.5);
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    v1::ModelInfo* m = response->add_models();
    m->set_name("tiny");
    m->set_vocab_size(500);
    m->set_context_length(2048);
    response->add_models()->set_name("other");
    return grpc::Status::OK;
  }

  int max_in_flight() const { return max_in_flight_; }
  std::vector<std::string> tenants() {
    std::lock_guard<std::mutex> lock(mu_);
    return tenants_;
  }
  std::vector<v1::GenerateRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  std::atomic<int> in_flight_{0}, max_in_flight_{0};
  std::mutex mu_;
  std::vector<std::string> tenants_;
  std::vector<v1::GenerateRequest> requests_;
};

class ClientRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Inference::NewStub(MakeChannel("127.0.0.1:" + std::to_string(port)));
  }
  void TearDown() override { server_->Shutdown(); }

  v1::GenerateRequest TokenRequest(std::string model, uint32_t max_tokens) {
    v1::GenerateRequest r;
    r.set_model(std::move(model));
    r.mutable_tokens()->add_ids(1);
    r.mutable_tokens()->add_ids(2);
    r.set_max_tokens(max_tokens);
    return r;
  }

  FakeInference service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(ClientRpcTest, StreamGenerateCollectsDeltasAsTheyArrive) {
  std::vector<std::string> pieces;
  StreamOutcome o = StreamGenerate(*stub_, TokenRequest("tiny", 5), {},
                                   [&](const std::string& t) { pieces.push_back(t); });
  ASSERT_TRUE(o.status.ok()) << o.error;
  EXPECT_EQ(o.messages, 6u);
  EXPECT_EQ(pieces.size(), 5u);
  EXPECT_EQ(o.text, "t0 t1 t2 t3 t4 ");
  EXPECT_EQ(o.token_ids, (std::vector<int32_t>{1000, 1001, 1002, 1003, 1004}));
  EXPECT_EQ(o.request_id, "req-1");
  EXPECT_EQ(o.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(FinishReasonName(o.last.finish_reason()), "length");
  EXPECT_EQ(o.last.usage().prompt_tokens(), 2u);
  EXPECT_GT(o.client_ttft_ms, 0);
  EXPECT_LE(o.client_ttft_ms, o.client_total_ms);
  // The server sleeps 2 ms before each of the four later tokens. (Not
  // ttft + 8 ms: a client thread scheduled late reads the first token late,
  // with the others already waiting, as CI's load once showed.)
  EXPECT_GE(o.client_total_ms, 4 * 2);
}

TEST_F(ClientRpcTest, ErrorsCarryTheCodeAndPushback) {
  StreamOutcome o = StreamGenerate(*stub_, TokenRequest("busy", 5), {}, nullptr);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(o.pushback_ms, "250");
  EXPECT_EQ(o.error, "RESOURCE_EXHAUSTED: queue full (retry after 250 ms)");
  EXPECT_EQ(o.messages, 0u);
}

TEST_F(ClientRpcTest, TimeoutGivesDeadlineExceededAndTenantIsSent) {
  v1::GenerateRequest r = TokenRequest("tiny", 1);
  r.set_text("hang");
  StreamOutcome o = StreamGenerate(*stub_, r, {"acme", 50}, nullptr);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(o.error, HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_THAT(service_.tenants(), ::testing::ElementsAre("acme"));
}

TEST_F(ClientRpcTest, FindModelListsWhatTheServerHas) {
  absl::StatusOr<v1::ModelInfo> m = FindModel(*stub_, "tiny", 5000);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->vocab_size(), 500u);
  absl::StatusOr<v1::ModelInfo> missing = FindModel(*stub_, "huge", 5000);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("tiny, other"));
}

TEST(FillSamplingTest, SetsEveryFieldSoServerDefaultsDoNotApply) {
  runtime::SamplingParams p;
  p.temperature = 0;
  p.top_k = 5;
  p.max_tokens = 9;
  p.stop_strings = {"\n\n"};
  p.stop_token_ids = {7};
  p.ignore_eos = true;
  v1::GenerateRequest r;
  FillSampling(p, "", &r);
  EXPECT_TRUE(r.sampling().has_temperature());
  EXPECT_EQ(r.sampling().temperature(), 0);
  EXPECT_EQ(r.sampling().top_k(), 5);
  EXPECT_TRUE(r.sampling().has_top_p());
  EXPECT_FALSE(r.sampling().has_seed());
  EXPECT_EQ(r.max_tokens(), 9u);
  EXPECT_THAT(r.stop(), ::testing::ElementsAre("\n\n"));
  EXPECT_THAT(r.stop_token_ids(), ::testing::ElementsAre(7));
  EXPECT_TRUE(r.ignore_eos());
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_TEXT);
  p.seed = 42;
  FillSampling(p, "", &r);
  EXPECT_EQ(r.sampling().seed(), 42u);
  // A schema goes as the text the flag's file held.
  p.response_format = runtime::ResponseFormat::kJsonSchema;
  FillSampling(p, R"({"type": "object"})", &r);
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
  EXPECT_EQ(r.json_schema(), R"({"type": "object"})");
  p.response_format = runtime::ResponseFormat::kJsonObject;
  FillSampling(p, "", &r);
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_JSON_OBJECT);
}

TEST(ParseTokenListTest, ParsesAndRejects) {
  EXPECT_EQ(*ParseTokenList("1, 2,3"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(ParseTokenList("1,,2").ok());
  EXPECT_FALSE(ParseTokenList("1,-2").ok());
  EXPECT_FALSE(ParseTokenList("x").ok());
}

TEST_F(ClientRpcTest, ClosedLoopKeepsConcurrencyAndRecordsEveryToken) {
  LoadPlan plan;
  plan.base.set_model("tiny");
  plan.max_concurrency = 3;
  plan.num_requests = 12;
  plan.tenant = "bench";
  RequestSource source = RequestSource::Generated(8, 500, *MaxTokensDist::ParseRange("2:6"), 1);
  size_t progress_calls = 0, last_done = 0, last_issued = 0;
  LoadRun run = RunLoad(*stub_, plan, source, [&](size_t done, size_t issued, double) {
    ++progress_calls;
    EXPECT_LE(done, issued);
    last_done = done;
    last_issued = issued;
  });
  ASSERT_EQ(run.results.size(), 12u);
  EXPECT_EQ(run.cancelled_at_drain, 0u);
  EXPECT_LE(service_.max_in_flight(), 3);
  EXPECT_GE(service_.max_in_flight(), 2);
  EXPECT_GT(progress_calls, 0u);
  EXPECT_EQ(last_done, 12u);  // the last report is after the drain
  EXPECT_EQ(last_issued, 12u);
  const std::vector<v1::GenerateRequest> sent = service_.requests();
  ASSERT_EQ(sent.size(), 12u);
  int64_t total_tokens = 0;
  for (const RequestResult& r : run.results) {
    ASSERT_TRUE(r.ok()) << r.status_code << " " << r.error_message;
    EXPECT_GE(r.output_tokens, 2);
    EXPECT_LE(r.output_tokens, 6);
    EXPECT_EQ(r.token_times_ms.size(), static_cast<size_t>(r.output_tokens));
    EXPECT_EQ(r.prompt_tokens, 8);
    EXPECT_DOUBLE_EQ(r.ttft_ms, r.token_times_ms.front());
    EXPECT_GE(r.e2e_ms, r.token_times_ms.back());
    EXPECT_DOUBLE_EQ(r.server_ttft_ms, 1.5);
    total_tokens += r.output_tokens;
  }
  int64_t requested = 0;
  for (const v1::GenerateRequest& r : sent) {
    EXPECT_EQ(r.model(), "tiny");
    EXPECT_EQ(r.tokens().ids_size(), 8);
    requested += r.max_tokens();
  }
  EXPECT_EQ(total_tokens, requested);
  EXPECT_THAT(service_.tenants(), ::testing::Each(std::string("bench")));
  EXPECT_GT(run.duration_s, 0);
}

TEST_F(ClientRpcTest, PoissonRunIssuesAtPlannedTimesAndCountsErrors) {
  LoadPlan plan;
  plan.base.set_model("busy");
  plan.num_requests = 10;
  RateArrivals arrivals(100, 3);
  std::vector<double> planned;
  plan.next_arrival = [&] {
    planned.push_back(arrivals.Next());
    return std::optional<double>(planned.back());
  };
  RequestSource source = RequestSource::FromTexts({"x"}, *MaxTokensDist::Fixed(2), 0);
  LoadRun run = RunLoad(*stub_, plan, source, nullptr);
  ASSERT_EQ(run.results.size(), 10u);
  ASSERT_EQ(planned.size(), 10u);
  for (size_t i = 0; i < run.results.size(); ++i) {
    EXPECT_EQ(run.results[i].status_code, "RESOURCE_EXHAUSTED");
    EXPECT_GE(run.results[i].start_s, planned[i] - 1e-9);  // never early
    EXPECT_LT(run.results[i].start_s, planned[i] + 0.5);
  }
  BenchStats stats = ComputeStats(run.results, run.duration_s, {});
  EXPECT_EQ(stats.errors["RESOURCE_EXHAUSTED"], 10u);
  EXPECT_EQ(stats.completed, 0u);
}

TEST_F(ClientRpcTest, DurationBoundsIssuingAndDrainCancelsTheRest) {
  LoadPlan plan;
  plan.base.set_model("tiny");
  plan.duration_s = 0.3;
  plan.drain_timeout_s = 0.2;
  RateArrivals arrivals(50, 5);
  plan.next_arrival = [&] { return std::optional<double>(arrivals.Next()); };
  RequestSource source = RequestSource::FromTexts({"hang"}, *MaxTokensDist::Fixed(2), 0);
  const auto t0 = std::chrono::steady_clock::now();
  LoadRun run = RunLoad(*stub_, plan, source, nullptr);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_GT(run.results.size(), 3u);  // about 15 expected at 50/s for 0.3 s
  ASSERT_LT(run.results.size(), 60u);
  EXPECT_EQ(run.cancelled_at_drain, run.results.size());
  for (const RequestResult& r : run.results) {
    EXPECT_EQ(r.status_code, "CANCELLED");
    EXPECT_LT(r.start_s, 0.3);
  }
  EXPECT_LT(wall, 5.0);
}

TEST_F(ClientRpcTest, TheDurationEndsAtTheLastSuccessNotAtTheDrainsCancel) {
  LoadPlan plan;
  plan.base.set_model("tiny");
  plan.num_requests = 2;
  plan.drain_timeout_s = 2;
  RequestSource source = RequestSource::FromTexts({"x", "hang"}, *MaxTokensDist::Fixed(2), 0);
  const auto t0 = std::chrono::steady_clock::now();
  LoadRun run = RunLoad(*stub_, plan, source, nullptr);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(run.results.size(), 2u);
  EXPECT_EQ(run.results[0].status_code, "OK");
  EXPECT_EQ(run.results[1].status_code, "CANCELLED");
  EXPECT_EQ(run.cancelled_at_drain, 1u);
  EXPECT_GE(wall, 2.0);
  // The request served took milliseconds; the drain's 2 s served nothing.
  EXPECT_LT(run.duration_s, 1.5);
}

TEST_F(ClientRpcTest, AnInterruptCancelsWhatIsInFlightAndReturnsWhatWasSeen) {
  // Ctrl-C in `cohost bench`: no more requests, the ones in flight cancelled
  // at once (not after the drain's minute), the results kept for the report.
  LoadPlan plan;
  plan.base.set_model("tiny");
  plan.num_requests = 1000;
  plan.max_concurrency = 4;
  plan.drain_timeout_s = 60;
  std::atomic<bool> interrupt{false};
  plan.interrupt = &interrupt;
  RequestSource source = RequestSource::FromTexts({"hang"}, *MaxTokensDist::Fixed(2), 0);
  std::thread ctrl_c([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    interrupt = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  LoadRun run = RunLoad(*stub_, plan, source, nullptr);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ctrl_c.join();
  EXPECT_TRUE(run.interrupted);
  EXPECT_LT(wall, 10.0) << "waited for the drain";
  ASSERT_EQ(run.results.size(), 4u) << "four in flight, none issued after";
  EXPECT_EQ(run.cancelled_at_drain, 4u);
  for (const RequestResult& r : run.results) EXPECT_EQ(r.status_code, "CANCELLED");
}

TEST_F(ClientRpcTest, ExhaustedScheduleEndsTheRunWithoutRequests) {
  LoadPlan plan;
  plan.base.set_model("tiny");
  std::vector<double> schedule = {0.0, 0.01};
  size_t next = 0;
  plan.next_arrival = [&]() -> std::optional<double> {
    if (next >= schedule.size()) return std::nullopt;
    return schedule[next++];
  };
  RequestSource source = RequestSource::FromTexts({"x"}, *MaxTokensDist::Fixed(1), 0);
  LoadRun run = RunLoad(*stub_, plan, source, nullptr);
  EXPECT_EQ(run.results.size(), 2u);  // the schedule, not a request count, bounds the run
  schedule.clear();
  next = 0;
  LoadRun empty = RunLoad(*stub_, plan, source, nullptr);
  EXPECT_TRUE(empty.results.empty());
  EXPECT_GE(empty.duration_s, 0);
  EXPECT_LT(empty.duration_s, 1);
}

}  // namespace
}  // namespace cohost::tools
