// ServerMetrics' Prometheus text: exact histogram lines for known observations
// (inclusive bucket bounds, cumulative counts, sum, count), counters by finish
// reason and by error code, gauges, label escaping and the format's structure;
// concurrent recording and rendering; and the /metrics HTTP server.

#include "server/metrics.h"

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics_http.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server {
namespace {

using runtime::FinishInfo;
using runtime::FinishReason;
using ::testing::HasSubstr;

// "name{labels}" -> value, for every sample line; fails the test on a line
// that is neither a comment nor a sample.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t close = line.rfind("} ");
    EXPECT_NE(close, std::string::npos) << "not a labelled sample: " << line;
    if (close == std::string::npos) continue;
    const std::string key = line.substr(0, close + 1);
    EXPECT_EQ(out.count(key), 0u) << "duplicate series " << key;
    out[key] = line.substr(close + 2);
  }
  return out;
}

std::string Get(const std::map<std::string, std::string>& samples, const std::string& key) {
  auto it = samples.find(key);
  EXPECT_NE(it, samples.end()) << "missing series " << key;
  return it == samples.end() ? "" : it->second;
}

FinishInfo Finish(FinishReason reason, int prompt, int cached, int completion, double e2e_ms) {
  FinishInfo f;
  f.reason = reason;
  f.prompt_tokens = prompt;
  f.cached_prompt_tokens = cached;
  f.completion_tokens = completion;
  f.timings.e2e_ms = e2e_ms;
  return f;
}

TEST(ServerMetricsTest, HistogramTextIsExact) {
  ServerMetrics m;
  // Dyadic values so the sum prints exactly; 0.5 sits on a bound (le is inclusive).
  for (double v : {0.0009765625, 0.00390625, 0.75, 0.5, 100.0}) m.ObserveTimeToFirstToken("m", v);
  m.ObserveQueueTime("n", 0.01);  // "n" exists, with no time-to-first-token observations

  const std::string text = m.Render({});
  const std::string expected =
      "# HELP cohost_time_to_first_token_seconds Time from receiving a request to its first "
      "generated token, in seconds.\n"
      "# TYPE cohost_time_to_first_token_seconds histogram\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.001\"} 1\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.002\"} 1\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.005\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.01\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.02\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.05\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.2\"} 2\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"0.5\"} 3\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"1\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"2\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"5\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"10\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"20\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"30\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"60\"} 4\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"m\",le=\"+Inf\"} 5\n"
      "cohost_time_to_first_token_seconds_sum{model=\"m\"} 101.2548828125\n"
      "cohost_time_to_first_token_seconds_count{model=\"m\"} 5\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.001\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.002\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.005\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.01\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.02\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.05\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.1\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.2\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"0.5\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"1\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"2\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"5\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"10\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"20\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"30\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"60\"} 0\n"
      "cohost_time_to_first_token_seconds_bucket{model=\"n\",le=\"+Inf\"} 0\n"
      "cohost_time_to_first_token_seconds_sum{model=\"n\"} 0\n"
      "cohost_time_to_first_token_seconds_count{model=\"n\"} 0\n"
      "# HELP cohost_inter_token_latency_seconds ";
  EXPECT_EQ(text.substr(0, expected.size()), expected) << text;

  const auto s = Samples(text);
  EXPECT_EQ(Get(s, "cohost_request_queue_time_seconds_bucket{model=\"n\",le=\"0.005\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_request_queue_time_seconds_bucket{model=\"n\",le=\"0.01\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_request_queue_time_seconds_count{model=\"n\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_request_queue_time_seconds_sum{model=\"n\"}"), "0.01");
  EXPECT_EQ(Get(s, "cohost_request_queue_time_seconds_count{model=\"m\"}"), "0");
}

TEST(ServerMetricsTest, NegativeAndNanObservations) {
  ServerMetrics m;
  m.ObserveInterTokenLatency("m", -0.5);  // clock skew: counted as 0
  m.ObserveInterTokenLatency("m", std::numeric_limits<double>::quiet_NaN());  // dropped
  m.ObserveInterTokenLatency("m", 0.25);
  const auto s = Samples(m.Render({}));
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_bucket{model=\"m\",le=\"0.001\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_bucket{model=\"m\",le=\"0.5\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_count{model=\"m\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_sum{model=\"m\"}"), "0.25");
}

TEST(ServerMetricsTest, CountersByFinishReasonAndErrorCode) {
  ServerMetrics m;
  m.RecordFinish("m", Finish(FinishReason::kStop, 10, 4, 7, 250));
  m.RecordFinish("m", Finish(FinishReason::kStop, 5, 0, 3, 1500));
  m.RecordFinish("m", Finish(FinishReason::kLength, 8, 8, 16, 3000));
  m.RecordFinish("m", Finish(FinishReason::kCancelled, 20, 0, 2, 125));
  m.RecordFinish("m", Finish(FinishReason::kError, 3, 0, 0, 62.5));
  m.RecordFinish("other", Finish(FinishReason::kStopString, 1, 0, 1, 10));
  m.RecordError("m", "RESOURCE_EXHAUSTED");
  m.RecordError("m", "RESOURCE_EXHAUSTED");
  m.RecordError("m", "INVALID_ARGUMENT");
  m.RecordError("", "NOT_FOUND");
  m.RecordForcedCallFallback("m", "any_arguments");
  m.RecordForcedCallFallback("m", "any_arguments");
  m.RecordForcedCallFallback("other", "no_value_bounds");

  const auto s = Samples(m.Render({}));
  const auto fallbacks = [&](const std::string& model, const std::string& to) {
    return Get(s, "cohost_forced_call_fallbacks_total{model=\"" + model + "\",to=\"" + to + "\"}");
  };
  EXPECT_EQ(fallbacks("m", "any_arguments"), "2");
  EXPECT_EQ(fallbacks("m", "no_value_bounds"), "0");
  EXPECT_EQ(fallbacks("other", "no_value_bounds"), "1");
  const auto reason = [&](const std::string& model, const std::string& r) {
    return Get(s, "cohost_requests_total{model=\"" + model + "\",finish_reason=\"" + r + "\"}");
  };
  EXPECT_EQ(reason("m", "stop"), "2");
  EXPECT_EQ(reason("m", "length"), "1");
  EXPECT_EQ(reason("m", "stop_string"), "0");
  EXPECT_EQ(reason("m", "cancelled"), "1");
  EXPECT_EQ(reason("m", "error"), "1");
  EXPECT_EQ(reason("other", "stop_string"), "1");
  EXPECT_EQ(reason("other", "stop"), "0");

  EXPECT_EQ(Get(s, "cohost_request_errors_total{model=\"m\",code=\"RESOURCE_EXHAUSTED\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_request_errors_total{model=\"m\",code=\"INVALID_ARGUMENT\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_request_errors_total{model=\"\",code=\"NOT_FOUND\"}"), "1");
  EXPECT_EQ(s.count("cohost_requests_total{model=\"\",finish_reason=\"stop\"}"), 0u)
      << "an error with no model does not invent a model";

  EXPECT_EQ(Get(s, "cohost_prompt_tokens_total{model=\"m\"}"), "46");
  EXPECT_EQ(Get(s, "cohost_cached_prompt_tokens_total{model=\"m\"}"), "12");
  EXPECT_EQ(Get(s, "cohost_generation_tokens_total{model=\"m\"}"), "28");
  EXPECT_EQ(Get(s, "cohost_request_cancellations_total{model=\"m\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_request_cancellations_total{model=\"other\"}"), "0");

  // End-to-end latency comes from the finish timings, in seconds (values
  // chosen so that ms / 1000 and their sum are exact).
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_count{model=\"m\"}"), "5");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_sum{model=\"m\"}"), "4.9375");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"0.05\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"0.1\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"0.2\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"0.5\"}"), "3");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"2\"}"), "4");
  EXPECT_EQ(Get(s, "cohost_e2e_request_latency_seconds_bucket{model=\"m\",le=\"5\"}"), "5");
}

TEST(ServerMetricsTest, TenantsAreCountedWithABoundedNumberOfLabels) {
  ServerMetrics m;
  m.RecordTenantFinish("alice", Finish(FinishReason::kStop, 10, 0, 7, 100));
  m.RecordTenantFinish("alice", Finish(FinishReason::kLength, 5, 0, 3, 100));
  m.RecordTenantFinish("", Finish(FinishReason::kStop, 1, 0, 1, 100));
  m.ObserveTenantTimeToFirstToken("alice", 0.25);
  m.RecordTenantRefusal("alice", "RESOURCE_EXHAUSTED", "tenant_rate");
  // More tenants than labels: the first ones seen keep theirs (alice among
  // them), the rest count together.
  const int extra = static_cast<int>(ServerMetrics::kMaxTenantLabels) + 10;
  for (int i = 0; i < extra; ++i) {
    m.RecordTenantFinish(absl::StrCat("t", i), Finish(FinishReason::kStop, 2, 0, 1, 100));
  }
  m.RecordTenantRefusal("t99", "UNAVAILABLE");
  const auto s = Samples(m.Render({}));
  EXPECT_EQ(Get(s, "cohost_tenant_requests_total{tenant=\"alice\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_tenant_prompt_tokens_total{tenant=\"alice\"}"), "15");
  EXPECT_EQ(Get(s, "cohost_tenant_generation_tokens_total{tenant=\"alice\"}"), "10");
  EXPECT_EQ(Get(s, "cohost_tenant_time_to_first_token_seconds_count{tenant=\"alice\"}"), "1");
  EXPECT_EQ(Get(s,
                "cohost_tenant_refusals_total{tenant=\"alice\",code=\"RESOURCE_EXHAUSTED\","
                "reason=\"tenant_rate\"}"),
            "1");
  EXPECT_EQ(Get(s, "cohost_tenant_requests_total{tenant=\"(none)\"}"), "1");
  // alice took one of the labels: the first kMaxTenantLabels - 1 of the t's
  // got the others, the remaining 11 count as "(other)".
  EXPECT_EQ(Get(s, "cohost_tenant_requests_total{tenant=\"(other)\"}"), "11");
  EXPECT_EQ(
      Get(s,
          "cohost_tenant_refusals_total{tenant=\"(other)\",code=\"UNAVAILABLE\",reason=\"other\"}"),
      "1");
  size_t tenant_series = 0;
  for (const auto& [key, value] : s) {
    tenant_series += key.rfind("cohost_tenant_requests_total{", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(tenant_series, ServerMetrics::kMaxTenantLabels + 2);  // + (none) and (other)
}

// Made-up tenant names refused at once (no API keys: clients claim any name)
// take no label: the first-come labels go to admitted requests, and the
// tenants the operator named always have theirs. Before, 64 refused names
// took every label for good.
TEST(ServerMetricsTest, RefusedNamesTakeNoLabelAndNamedTenantsKeepTheirs) {
  ServerMetrics m;
  m.ReserveTenantLabels({"acme", "", "(other)"});
  for (size_t i = 0; i < ServerMetrics::kMaxTenantLabels; ++i) {
    m.RecordTenantRefusal(absl::StrCat("junk", i), "INVALID_ARGUMENT");
  }
  m.RecordTenantFinish("late", Finish(FinishReason::kStop, 2, 0, 1, 100));
  m.RecordTenantRefusal("late", "RESOURCE_EXHAUSTED", "tenant_rate");
  m.RecordTenantRefusal("acme", "RESOURCE_EXHAUSTED", "tenant_rate");
  m.RecordTenantRefusal("admitted", "UNAVAILABLE", "load_failed", /*admitted=*/true);
  const auto s = Samples(m.Render({}));
  EXPECT_EQ(Get(s,
                "cohost_tenant_refusals_total{tenant=\"admitted\",code=\"UNAVAILABLE\","
                "reason=\"load_failed\"}"),
            "1")
      << "a failure after admission takes a label, as its finish would";
  EXPECT_EQ(Get(s,
                "cohost_tenant_refusals_total{tenant=\"(other)\",code=\"INVALID_ARGUMENT\","
                "reason=\"other\"}"),
            absl::StrCat(ServerMetrics::kMaxTenantLabels));
  EXPECT_EQ(Get(s, "cohost_tenant_requests_total{tenant=\"late\"}"), "1");
  EXPECT_EQ(Get(s,
                "cohost_tenant_refusals_total{tenant=\"late\",code=\"RESOURCE_EXHAUSTED\","
                "reason=\"tenant_rate\"}"),
            "1")
      << "a labelled tenant's refusals are its own";
  EXPECT_EQ(Get(s,
                "cohost_tenant_refusals_total{tenant=\"acme\",code=\"RESOURCE_EXHAUSTED\","
                "reason=\"tenant_rate\"}"),
            "1");
  for (const auto& [key, value] : s) EXPECT_EQ(key.find("junk"), std::string::npos) << key;
}

TEST(ServerMetricsTest, GaugesFromTheEngines) {
  ServerMetrics m;
  m.ObserveTimeToFirstToken("m", 0.1);
  ModelGauges a;
  a.model = "m";
  a.running_requests = 3;
  a.waiting_requests = 2;
  a.kv_blocks_total = 200;
  a.kv_blocks_used = 50;
  a.preemptions_total = 7;
  a.kv_used_bytes = 4096;
  ModelGauges idle;
  idle.model = "idle";  // loaded, never used: zeros everywhere, no division by zero
  const std::string text = m.Render({a, idle}, {{"cpu (2 threads)", 1 << 20, 4096}});
  const auto s = Samples(text);
  EXPECT_EQ(Get(s, "cohost_kv_used_bytes{model=\"m\"}"), "4096");
  EXPECT_EQ(Get(s, "cohost_kv_pool_bytes{device=\"cpu (2 threads)\"}"), "1048576");
  EXPECT_EQ(Get(s, "cohost_kv_pool_used_bytes{device=\"cpu (2 threads)\"}"), "4096");
  EXPECT_EQ(Get(s, "cohost_running_requests{model=\"m\"}"), "3");
  EXPECT_EQ(Get(s, "cohost_waiting_requests{model=\"m\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_kv_cache_usage_ratio{model=\"m\"}"), "0.25");
  EXPECT_EQ(Get(s, "cohost_kv_cache_blocks_total{model=\"m\"}"), "200");
  EXPECT_EQ(Get(s, "cohost_preemptions_total{model=\"m\"}"), "7");
  EXPECT_EQ(Get(s, "cohost_kv_cache_usage_ratio{model=\"idle\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_kv_cache_blocks_total{model=\"idle\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_time_to_first_token_seconds_count{model=\"idle\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_requests_total{model=\"idle\",finish_reason=\"stop\"}"), "0");
  EXPECT_THAT(text, HasSubstr("# TYPE cohost_preemptions_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cohost_kv_cache_usage_ratio gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cohost_running_requests gauge\n"));

  // Without gauges, no gauge samples (the families are still declared).
  const auto bare = Samples(m.Render({}));
  EXPECT_EQ(bare.count("cohost_running_requests{model=\"m\"}"), 0u);
}

TEST(ServerMetricsTest, CpuInfoOnceSetWithItsLabelsEscaped) {
  ServerMetrics m;
  EXPECT_EQ(m.Render({}).find("cohost_cpu_info"), std::string::npos) << "not set: not shown";
  m.SetCpuInfo("Vendor \"X\" CPU", "avx2 fma", "avx2", "amx");
  const auto s = Samples(m.Render({}));
  EXPECT_EQ(Get(s,
                "cohost_cpu_info{cpu=\"Vendor \\\"X\\\" CPU\",features=\"avx2 fma\","
                "quant_kernels=\"avx2\",half_kernels=\"amx\"}"),
            "1");
}

TEST(ServerMetricsTest, ModelLifecycle) {
  ServerMetrics m;
  m.RecordModelLoad("a", true, 1.5);
  m.RecordModelLoad("a", false, 0.2);  // a failed load is counted, not timed
  m.RecordModelLoad("a", true, 3);
  m.ObserveExecutorStep("cpu", "a", 0.004);
  m.ObserveExecutorStep("cpu", "a", 0.02);
  m.ObserveExecutorStep("cpu", "b", 0.5);
  ModelGauges a;
  a.model = "a";
  a.device = "cpu";
  a.states = {{"loading", false}, {"ready", true}, {"evicted", false}, {"failed", false}};
  a.weights_bytes = 123456;
  a.evictions_total = 2;
  a.offloaded_bytes = 65536;
  const auto s = Samples(m.Render({a}));
  EXPECT_EQ(Get(s, "cohost_model_state{model=\"a\",state=\"ready\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_model_state{model=\"a\",state=\"evicted\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_model_state{model=\"a\",state=\"loading\"}"), "0");
  EXPECT_EQ(Get(s, "cohost_model_weights_bytes{model=\"a\",device=\"cpu\"}"), "123456");
  EXPECT_EQ(Get(s, "cohost_model_evictions_total{model=\"a\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_model_offloaded_bytes{model=\"a\"}"), "65536");
  EXPECT_EQ(Get(s, "cohost_model_loads_total{model=\"a\",result=\"ok\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_model_loads_total{model=\"a\",result=\"failed\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_model_load_seconds_count{model=\"a\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_model_load_seconds_sum{model=\"a\"}"), "4.5");
  EXPECT_EQ(Get(s, "cohost_model_load_seconds_bucket{model=\"a\",le=\"2\"}"), "1");
  EXPECT_EQ(Get(s, "cohost_model_load_seconds_bucket{model=\"a\",le=\"5\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_executor_step_seconds_count{device=\"cpu\",model=\"a\"}"), "2");
  EXPECT_EQ(Get(s, "cohost_executor_step_seconds_bucket{device=\"cpu\",model=\"a\",le=\"0.005\"}"),
            "1");
  EXPECT_EQ(Get(s, "cohost_executor_step_seconds_count{device=\"cpu\",model=\"b\"}"), "1");
}

TEST(ServerMetricsTest, TtftPredictionsAgainstActuals) {
  ServerMetrics m;
  ModelGauges a;
  a.model = "a";
  a.ttft_predictions_total = 4;
  a.ttft_predicted_seconds_total = 1.25;
  a.ttft_actual_seconds_total = 1.5;
  a.ttft_prediction_abs_error_seconds_total = 0.375;
  const auto s = Samples(m.Render({a}));
  EXPECT_EQ(Get(s, "cohost_ttft_predictions_total{model=\"a\"}"), "4");
  EXPECT_EQ(Get(s, "cohost_ttft_predicted_seconds_total{model=\"a\"}"), "1.25");
  EXPECT_EQ(Get(s, "cohost_ttft_actual_seconds_total{model=\"a\"}"), "1.5");
  EXPECT_EQ(Get(s, "cohost_ttft_prediction_abs_error_seconds_total{model=\"a\"}"), "0.375");
}

TEST(ServerMetricsTest, LabelValuesAreEscaped) {
  ServerMetrics m;
  const std::string weird = "we\"ird\\name\nline2";
  m.RecordFinish(weird, Finish(FinishReason::kStop, 1, 0, 1, 1));
  m.RecordError(weird, "CODE\"X");
  const std::string text = m.Render({});
  EXPECT_THAT(text, HasSubstr("cohost_requests_total{model=\"we\\\"ird\\\\name\\nline2\","
                              "finish_reason=\"stop\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cohost_request_errors_total{model=\"we\\\"ird\\\\name\\nline2\","
                              "code=\"CODE\\\"X\"} 1\n"));
  EXPECT_EQ(text.find("\nline2"), std::string::npos) << "a raw newline broke a line";
}

// Every family: HELP then TYPE, then its samples, contiguous; every sample
// belongs to the family declared just before it.
TEST(ServerMetricsTest, ExpositionStructure) {
  ServerMetrics m;
  m.ObserveTimeToFirstToken("a", 0.2);
  m.RecordFinish("b", Finish(FinishReason::kLength, 4, 0, 4, 30));
  m.RecordError("a", "INTERNAL");
  ModelGauges g;
  g.model = "a";
  m.RecordModelLoad("a", true, 1.5);
  m.ObserveExecutorStep("cpu", "a", 0.01);
  const std::string text = m.Render({g});
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');

  const std::map<std::string, std::string> types = {
      {"cohost_time_to_first_token_seconds", "histogram"},
      {"cohost_inter_token_latency_seconds", "histogram"},
      {"cohost_request_queue_time_seconds", "histogram"},
      {"cohost_e2e_request_latency_seconds", "histogram"},
      {"cohost_requests_total", "counter"},
      {"cohost_request_errors_total", "counter"},
      {"cohost_prompt_tokens_total", "counter"},
      {"cohost_cached_prompt_tokens_total", "counter"},
      {"cohost_generation_tokens_total", "counter"},
      {"cohost_preemptions_total", "counter"},
      {"cohost_request_cancellations_total", "counter"},
      {"cohost_forced_call_fallbacks_total", "counter"},
      {"cohost_running_requests", "gauge"},
      {"cohost_waiting_requests", "gauge"},
      {"cohost_kv_cache_usage_ratio", "gauge"},
      {"cohost_kv_cache_blocks_total", "gauge"},
      {"cohost_kv_used_bytes", "gauge"},
      {"cohost_kv_pool_bytes", "gauge"},
      {"cohost_kv_pool_used_bytes", "gauge"},
      {"cohost_tenant_requests_total", "counter"},
      {"cohost_tenant_prompt_tokens_total", "counter"},
      {"cohost_tenant_generation_tokens_total", "counter"},
      {"cohost_tenant_time_to_first_token_seconds", "histogram"},
      {"cohost_tenant_refusals_total", "counter"},
      {"cohost_model_state", "gauge"},
      {"cohost_model_weights_bytes", "gauge"},
      {"cohost_model_offloaded_bytes", "gauge"},
      {"cohost_model_evictions_total", "counter"},
      {"cohost_ttft_predictions_total", "counter"},
      {"cohost_ttft_predicted_seconds_total", "counter"},
      {"cohost_ttft_actual_seconds_total", "counter"},
      {"cohost_ttft_prediction_abs_error_seconds_total", "counter"},
      {"cohost_model_loads_total", "counter"},
      {"cohost_model_load_seconds", "histogram"},
      {"cohost_executor_step_seconds", "histogram"},
  };
  std::set<std::string> seen;
  std::string family, type;
  bool expect_type = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      EXPECT_FALSE(expect_type) << line;
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(family).second) << "family declared twice: " << family;
      expect_type = true;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      EXPECT_TRUE(expect_type) << line;
      expect_type = false;
      auto it = types.find(family);
      ASSERT_NE(it, types.end()) << "unexpected family " << family;
      EXPECT_EQ(line, "# TYPE " + family + " " + it->second);
      type = it->second;
      continue;
    }
    EXPECT_FALSE(expect_type) << "sample before TYPE: " << line;
    const std::string name = line.substr(0, line.find('{'));
    if (type == "histogram") {
      EXPECT_TRUE(name == family + "_bucket" || name == family + "_sum" ||
                  name == family + "_count")
          << line;
    } else {
      EXPECT_EQ(name, family) << line;
    }
  }
  for (const auto& [name, t] : types) EXPECT_TRUE(seen.count(name)) << "missing family " << name;
}

// Several threads record into two models while another renders; the totals
// come out exact. Run under TSan too.
TEST(ServerMetricsTest, ConcurrentRecordingIsExact) {
  ServerMetrics m;
  constexpr int kThreads = 4, kPerThread = 5000;
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    while (!done.load()) {
      const std::string text = m.Render({});
      EXPECT_FALSE(text.empty());
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string model = t % 2 == 0 ? "even" : "odd";
      for (int i = 0; i < kPerThread; ++i) {
        m.ObserveInterTokenLatency(model, 0.25);  // dyadic: the sum is exact
        m.ObserveTimeToFirstToken("shared", 0.5);
        if (i % 10 == 0) {
          m.RecordFinish("shared", Finish(FinishReason::kLength, 2, 1, 3, 500));
          m.RecordError("shared", t % 2 == 0 ? "CANCELLED" : "INTERNAL");
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  done.store(true);
  renderer.join();

  const auto s = Samples(m.Render({}));
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_count{model=\"even\"}"), "10000");
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_sum{model=\"even\"}"), "2500");
  EXPECT_EQ(Get(s, "cohost_inter_token_latency_seconds_count{model=\"odd\"}"), "10000");
  EXPECT_EQ(Get(s, "cohost_time_to_first_token_seconds_count{model=\"shared\"}"), "20000");
  EXPECT_EQ(Get(s, "cohost_time_to_first_token_seconds_sum{model=\"shared\"}"), "10000");
  EXPECT_EQ(Get(s, "cohost_requests_total{model=\"shared\",finish_reason=\"length\"}"), "2000");
  EXPECT_EQ(Get(s, "cohost_generation_tokens_total{model=\"shared\"}"), "6000");
  EXPECT_EQ(Get(s, "cohost_request_errors_total{model=\"shared\",code=\"CANCELLED\"}"), "1000");
  EXPECT_EQ(Get(s, "cohost_request_errors_total{model=\"shared\",code=\"INTERNAL\"}"), "1000");
}

TEST(MetricsHttpServerTest, ServesMetricsAndHealth) {
  ServerMetrics metrics;
  metrics.ObserveTimeToFirstToken("m", 0.02);
  std::atomic<bool> healthy{true};
  const auto render = [&] { return metrics.Render({}); };
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1", 0, render, [&] { return healthy.load(); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  httplib::Result r = client.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(r->body, render());
  EXPECT_THAT(r->body, HasSubstr("cohost_time_to_first_token_seconds_count{model=\"m\"} 1\n"));

  // Scrapes see new observations.
  metrics.ObserveTimeToFirstToken("m", 0.02);
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_THAT(r->body, HasSubstr("cohost_time_to_first_token_seconds_count{model=\"m\"} 2\n"));

  r = client.Get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = client.Get("/metrics/extra");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
  healthy.store(false);
  r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);

  (*server)->Stop();
  (*server)->Stop();  // idempotent
  httplib::Client after("127.0.0.1", port);
  after.set_connection_timeout(2);
  EXPECT_FALSE(after.Get("/metrics")) << "still answering after Stop";
}

TEST(MetricsHttpServerTest, ConcurrentScrapes) {
  ServerMetrics metrics;
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1", 0, [&] { return metrics.Render({}); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(10);
      for (int i = 0; i < 20; ++i) {
        metrics.ObserveQueueTime("m", 0.001);
        httplib::Result r = client.Get("/metrics");
        if (r && r->status == 200 &&
            r->body.find("# TYPE cohost_request_queue_time_seconds histogram") !=
                std::string::npos) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 80);
  // Destruction stops it.
}

// HEAD gets a GET's headers, its length included, and no body; every reply
// closes its connection.
TEST(MetricsHttpServerTest, HeadGetsTheHeadersAlone) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1", 0, [] { return std::string("cohost_up 1\n"); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = cohost::testing::ConnectLoopback((*server)->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(cohost::testing::SendAll(fd, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The whole reply: the server closes after it.
  const std::string reply =
      cohost::testing::ReadUntil(fd, "never in a reply", std::chrono::seconds(10));
  ::close(fd);
  EXPECT_THAT(reply, HasSubstr("200 OK"));
  EXPECT_THAT(reply, HasSubstr("Content-Length: 12\r\n"));
  EXPECT_THAT(reply, HasSubstr("Connection: close"));
  ASSERT_NE(reply.find("\r\n\r\n"), std::string::npos);
  EXPECT_EQ(reply.substr(reply.find("\r\n\r\n") + 4), "") << "a body after HEAD's headers";
}

// Whether the server still holds `fd` open: nothing to read, no FIN.
bool StillOpen(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Slowloris: clients that send half a request and stop hold no thread of the
// server, so a scrape is answered while they are all still connected (the
// cpp-httplib server this replaced had two threads: the third client waited
// until the read timeout dropped one of the first two).
TEST(MetricsHttpServerTest, ClientsThatSendHalfARequestKeepNoScrapeWaiting) {
  const auto render = [] { return std::string("cohost_up 1\n"); };
  MetricsHttpOptions options;  // long enough that only a stall ends them
  options.io_timeout_seconds = 120;
  options.max_connection_age = std::chrono::minutes(2);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1", 0, render, nullptr, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    const int fd = cohost::testing::ConnectLoopback(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(cohost::testing::SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
    slow.push_back(fd);
  }
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return (*server)->open_connections() == 8; },
                                       std::chrono::seconds(10)));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10);
  httplib::Result r = client.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, render());
  for (int fd : slow) {
    EXPECT_TRUE(StillOpen(fd)) << "a slow client was dropped before the scrape was answered";
    ::close(fd);
  }
}

// A connection lives at most its maximum age, whatever it is doing: one that
// trickles its request never finishes it.
TEST(MetricsHttpServerTest, AConnectionIsClosedAtItsMaximumAge) {
  MetricsHttpOptions options;
  options.max_connection_age = std::chrono::milliseconds(300);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start(
      "127.0.0.1", 0, [] { return std::string("x"); }, nullptr, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = cohost::testing::ConnectLoopback((*server)->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(cohost::testing::SendAll(fd, "GET /metrics HTTP/1.1\r\n"));
  // Trickles a header byte at a time: each one would reset a read timeout.
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    closed = !cohost::testing::SendAll(fd, "X") || !StillOpen(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(closed) << "still open 10 s after it was accepted";
  ::close(fd);
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return (*server)->open_connections() == 0; },
                                       std::chrono::seconds(10)));
}

// At the cap the server accepts nothing more until a connection closes: a
// flood of connections cannot take the process's descriptors.
TEST(MetricsHttpServerTest, AtTheCapANewConnectionWaitsUntilOneCloses) {
  MetricsHttpOptions options;
  options.max_connections = 2;
  options.io_timeout_seconds = 120;  // the idle two stay until closed
  options.max_connection_age = std::chrono::minutes(2);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start(
      "127.0.0.1", 0, [] { return std::string("x"); }, nullptr, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const int a = cohost::testing::ConnectLoopback(port), b = cohost::testing::ConnectLoopback(port);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return (*server)->open_connections() == 2; },
                                       std::chrono::seconds(10)));
  // The third connects (the kernel's backlog) but is not served.
  const int c = cohost::testing::ConnectLoopback(port);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(cohost::testing::SendAll(c, "GET /metrics HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(cohost::testing::ReadUntil(c, "\r\n", std::chrono::milliseconds(300)), "");
  EXPECT_EQ((*server)->open_connections(), 2u);
  ::close(a);
  EXPECT_THAT(cohost::testing::ReadUntil(c, "\r\n\r\nx", std::chrono::seconds(10)),
              HasSubstr("200 OK"));
  ::close(b);
  ::close(c);
}

TEST(MetricsHttpServerTest, StartErrors) {
  const auto render = [] { return std::string("x"); };
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", -1, render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 70000, render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> first =
      MetricsHttpServer::Start("127.0.0.1", 0, render);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> taken =
      MetricsHttpServer::Start("127.0.0.1", (*first)->port(), render);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(taken.status().message()), HasSubstr(std::to_string((*first)->port())));

  // A port that was just freed can be bound again by a fixed number.
  const int port = (*first)->port();
  first->reset();
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> again =
      MetricsHttpServer::Start("127.0.0.1", port, render);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->port(), port);
}

}  // namespace
}  // namespace cohost::server
