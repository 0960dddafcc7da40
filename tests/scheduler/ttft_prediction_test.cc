// The TTFT predictor against the real thing: the default model on the CPU
// under a steady load, its step cost fitted from its own steps. The stated
// bound: over the requests after warm-up, the mean absolute error is within
// half the mean actual TTFT (docs/architecture.md, "Admission by predicted
// TTFT"). The suite runs alone (SERIAL): it measures time.

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/router.h"
#include "tests/support/collecting_sink.h"
#include "tests/support/requests.h"

namespace cohost::scheduler {
namespace {

TEST(TtftPredictionTest, ErrorOnASteadyLoadIsWithinTheStatedBound) {
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend();
  runtime::EngineConfig config;
  config.kv_cache_bytes = int64_t{64} << 20;
  Router router(backend.get(), config, AdmissionLimits{});
  ModelSpec spec;
  spec.name = "smol";
  spec.path = COHOST_DEFAULT_MODEL;
  ASSERT_TRUE(router.AddModel(spec).ok());
  absl::StatusOr<std::shared_ptr<ServedModel>> model = router.Find("smol");
  ASSERT_TRUE(model.ok());

  // Warm-up: prompts of several sizes, so the step cost is fitted.
  for (int32_t len : {40, 120, 8, 200}) {
    auto sink = std::make_shared<testing::CollectingSink>();
    ASSERT_TRUE(router.Submit(*model, testing::RandomGreedyRequest(len, 2, len), sink).ok());
    ASSERT_TRUE(sink->Wait());
  }
  ASSERT_TRUE(router.PredictTtft(**model, 64)) << "the cost is measured";
  const TtftPredictionTotals before = (*model)->ttft_predictions().totals();

  // Steady load: two clients, each sending the next request when the last
  // one ends, prompts of 32 to 256 tokens, so that requests sometimes queue
  // behind each other's prefill.
  constexpr int kPerClient = 12;
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kPerClient; ++i) {
        const int32_t len = 32 + ((i * 7 + c * 3) % 8) * 32;
        auto sink = std::make_shared<testing::CollectingSink>();
        const uint32_t seed = 1000 + c * 100 + i;
        EXPECT_TRUE(router.Submit(*model, testing::RandomGreedyRequest(len, 4, seed), sink).ok());
        EXPECT_TRUE(sink->Wait());
      }
    });
  }
  for (std::thread& t : clients) t.join();

  const TtftPredictionTotals after = (*model)->ttft_predictions().totals();
  const int64_t n = after.count - before.count;
  ASSERT_EQ(n, 2 * kPerClient) << "every request was predicted and booked";
  const double mean_actual = (after.actual_seconds - before.actual_seconds) / n;
  const double mean_predicted = (after.predicted_seconds - before.predicted_seconds) / n;
  const double mean_error = (after.abs_error_seconds - before.abs_error_seconds) / n;
  std::printf("TTFT over %lld requests: mean actual %.1f ms, predicted %.1f ms, |error| %.1f ms\n",
              static_cast<long long>(n), mean_actual * 1e3, mean_predicted * 1e3, mean_error * 1e3);
  EXPECT_LE(mean_error, 0.5 * mean_actual);
}

}  // namespace
}  // namespace cohost::scheduler
