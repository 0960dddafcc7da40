// `cohost bench`'s transport-free parts: percentiles, Poisson arrivals, output
// length ranges, prompts files, Azure trace CSV, request sources, TPOT/ITL/goodput
// and the report.

#include "tools/client/load_gen.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/client/bench_report.h"

namespace cohost::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(PercentileTest, LinearInterpolationMatchesNumpy) {
  // numpy.percentile(range(1, 11), q): 50 -> 5.5, 90 -> 9.1, 99 -> 9.91, 0 -> 1, 100 -> 10.
  std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 5.5);
  EXPECT_NEAR(Percentile(v, 90), 9.1, 1e-12);
  EXPECT_NEAR(Percentile(v, 99), 9.91, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 10);
  EXPECT_DOUBLE_EQ(Percentile({42}, 99), 42);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  // Two points: p25 is a quarter of the way.
  EXPECT_DOUBLE_EQ(Percentile({10, 20}, 25), 12.5);
}

TEST(PercentileTest, SummarizeSortsAndAverages) {
  Summary s = Summarize({9, 1, 5, 3, 7});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.p50, 5);
  EXPECT_DOUBLE_EQ(s.p90, 8.2);  // rank 3.6 between 7 and 9
  EXPECT_EQ(Summarize({}).count, 0u);
}

TEST(RateArrivalsTest, MeanRateWithinFourStandardErrors) {
  constexpr double kRate = 20;
  constexpr int kN = 20000;
  RateArrivals arrivals(kRate, /*seed=*/7);
  double prev = 0, sum = 0, sum_sq = 0;
  for (int i = 0; i < kN; ++i) {
    const double t = arrivals.Next();
    ASSERT_GT(t, prev);
    const double gap = t - prev;
    sum += gap;
    sum_sq += gap * gap;
    prev = t;
  }
  // Exponential gaps: mean 1/rate and standard deviation 1/rate, so the sample
  // mean has standard error (1/rate)/sqrt(n).
  const double mean = sum / kN;
  const double stderr_mean = (1 / kRate) / std::sqrt(kN);
  EXPECT_NEAR(mean, 1 / kRate, 4 * stderr_mean);
  const double sd = std::sqrt(sum_sq / kN - mean * mean);
  EXPECT_NEAR(sd / mean, 1.0, 0.05);  // coefficient of variation of an exponential
}

TEST(RateArrivalsTest, BurstinessKeepsTheRateAndWidensTheGaps) {
  constexpr double kRate = 20;
  constexpr int kN = 40000;
  for (const double b : {0.25, 4.0}) {
    RateArrivals arrivals(kRate, /*seed=*/11, b);
    double prev = 0, sum = 0, sum_sq = 0;
    for (int i = 0; i < kN; ++i) {
      const double t = arrivals.Next();
      ASSERT_GE(t, prev);
      const double gap = t - prev;
      sum += gap;
      sum_sq += gap * gap;
      prev = t;
    }
    // Gamma(b, 1/(rate b)) gaps: mean 1/rate, standard deviation
    // 1/(rate sqrt(b)), so the mean's standard error is that over sqrt(n).
    const double mean = sum / kN;
    EXPECT_NEAR(mean, 1 / kRate, 4 * (1 / (kRate * std::sqrt(b))) / std::sqrt(kN)) << b;
    const double cv = std::sqrt(sum_sq / kN - mean * mean) / mean;
    EXPECT_NEAR(cv, 1 / std::sqrt(b), 0.1 / std::sqrt(b)) << b;
  }
}

// Spearman's rank correlation of two equally long samples without ties.
double RankCorrelation(const std::vector<double>& x, const std::vector<double>& y) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    for (size_t i = 0; i < v.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size(); ++i) r[order[i]] = static_cast<double>(i);
    return r;
  };
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  const double n = static_cast<double>(x.size()), mean = (n - 1) / 2;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
  }
  return sxy / sxx;
}

TEST(RateArrivalsTest, GapsAreIndependentOfOutputLengthsFromTheSameSeed) {
  // `cohost bench --rate R --max-tokens-range LO:HI` seeds both from one
  // --seed; each request takes one draw from each.
  constexpr uint64_t kSeed = 0;
  constexpr int kN = 4000;
  RateArrivals arrivals(5, kSeed);
  RequestSource source =
      RequestSource::FromTexts({"hi"}, MaxTokensDist::ParseRange("1:1000000").value(), kSeed);
  std::vector<double> gaps, lengths;
  double last = 0;
  for (int i = 0; i < kN; ++i) {
    const double t = arrivals.Next();
    gaps.push_back(t - last);
    last = t;
    // Ties broken by the index: a tie's rank no longer matters at this n.
    lengths.push_back(source.Next().max_tokens + i * 1e-9);
  }
  // Independent: the rank correlation's standard error is 1/sqrt(n - 1),
  // about 0.016; one generator for both made it 1.
  EXPECT_LT(std::abs(RankCorrelation(gaps, lengths)), 0.08);
}

TEST(RateArrivalsTest, SeededAndReproducible) {
  RateArrivals a(5, 1), b(5, 1), c(5, 2);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    const double x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
}

TEST(MaxTokensDistTest, UniformRangeStaysInBoundsAndCoversThem) {
  absl::StatusOr<MaxTokensDist> d = MaxTokensDist::ParseRange("5:9");
  ASSERT_TRUE(d.ok()) << d.status();
  std::mt19937_64 rng(3);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const int32_t n = d->Sample(rng);
    ASSERT_GE(n, 5);
    ASSERT_LE(n, 9);
    seen.insert(n);
  }
  EXPECT_EQ(seen.size(), 5u);
  absl::StatusOr<MaxTokensDist> fixed = MaxTokensDist::Fixed(17);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->Sample(rng), 17);
}

TEST(MaxTokensDistTest, BadRangesAreErrors) {
  for (const char* bad : {"9:5", "0:3", "a:b", "5", "1:2:3", "", "-1:4"}) {
    absl::StatusOr<MaxTokensDist> d = MaxTokensDist::ParseRange(bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    if (!d.ok()) {
      EXPECT_THAT(std::string(d.status().message()), HasSubstr("LO:HI"));
    }
  }
  EXPECT_FALSE(MaxTokensDist::Fixed(0).ok());
  EXPECT_TRUE(MaxTokensDist::ParseRange("4:4").ok());
}

TEST(PromptsJsonlTest, ParsesTextIdsAndMaxTokens) {
  absl::StatusOr<std::vector<PromptEntry>> e = ParsePromptsJsonl(
      "{\"prompt\": \"hello\"}\n"
      "\n"
      "{\"prompt_ids\": [1, 2, 3], \"max_tokens\": 7}\r\n");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].text, "hello");
  EXPECT_FALSE((*e)[0].max_tokens.has_value());
  EXPECT_FALSE((*e)[1].text.has_value());
  EXPECT_EQ((*e)[1].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ((*e)[1].max_tokens, 7);
}

TEST(PromptsJsonlTest, ErrorsNameTheLineAndTheProblem) {
  struct Case {
    std::string content;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"{\"prompt\": \"a\"}\n{\"prompt\": \"b\"", "line 2: not valid JSON"},
      {"[1, 2]", "line 1: expected a JSON object"},
      {"{\"max_tokens\": 3}", "line 1: needs exactly one of \"prompt\""},
      {"{\"prompt\": \"a\", \"prompt_ids\": [1]}", "line 1: needs exactly one of"},
      {"{\"prompt\": 5}", "\"prompt\" must be a string"},
      {"{\"prompt\": \"\"}", "\"prompt\" is empty"},
      {"\n\n{\"prompt_ids\": [1, -2]}", "line 3: prompt_ids[1] is not a token id"},
      {"{\"prompt_ids\": []}", "non-empty array"},
      {"{\"prompt_ids\": [1.5]}", "prompt_ids[0]"},
      {"{\"prompt\": \"a\", \"max_tokens\": 0}", "\"max_tokens\" must be an integer >= 1"},
      {"{\"prompt\": \"a\", \"temperature\": 1}", "unknown key \"temperature\""},
      {"\n  \n", "no prompts"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<PromptEntry>> e = ParsePromptsJsonl(c.content);
    ASSERT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << c.content;
    EXPECT_THAT(std::string(e.status().message()), HasSubstr(c.expected)) << c.content;
  }
}

TEST(AzureTraceTest, ParsesRowsRelativeToTheFirstAcrossMidnight) {
  absl::StatusOr<std::vector<TraceRow>> rows = ParseAzureTraceCsv(
      "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
      "2023-11-16 23:59:59.5000000,374,44\r\n"
      "2023-11-17 00:00:00.2500000,396,109\r\n"
      "2023-11-17 00:00:02.2500000,0,0\r\n");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_DOUBLE_EQ((*rows)[0].arrival_s, 0);
  EXPECT_NEAR((*rows)[1].arrival_s, 0.75, 1e-6);
  EXPECT_NEAR((*rows)[2].arrival_s, 2.75, 1e-6);
  EXPECT_EQ((*rows)[1].context_tokens, 396);
  EXPECT_EQ((*rows)[1].generated_tokens, 109);
}

TEST(AzureTraceTest, ErrorsNameTheLine) {
  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  struct Case {
    std::string content;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "line 1: expected the header"},
      {"time,in,out\n", "line 1: expected the header"},
      {header, "no rows"},
      {header + "2023-11-16 18:15:46.68,374\n", "line 2: expected 3"},
      {header + "2023-11-16 18:15:46.68,abc,4\n", "line 2: bad ContextTokens"},
      {header + "2023-11-16 18:15:46.68,3,-4\n", "line 2: bad GeneratedTokens"},
      {header + "2023-13-16 18:15:46.68,3,4\n", "line 2: bad TIMESTAMP"},
      {header + "yesterday,3,4\n", "line 2: bad TIMESTAMP"},
      // A year whose day count overflowed int64 (undefined behaviour).
      {header + "99999999999999999-01-01 00:00:00,1,1\n", "line 2: bad TIMESTAMP"},
      {header + "0-01-01 00:00:00,1,1\n", "line 2: bad TIMESTAMP"},
      {header + "2023-11-31 00:00:00,1,1\n", "line 2: bad TIMESTAMP"},
      {header + "2023-02-29 00:00:00,1,1\n", "line 2: bad TIMESTAMP"},
      {header + "2023-11-16 18:15:46,3,4\n2023-11-16 18:15:45,3,4\n", "line 3: TIMESTAMP goes"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<TraceRow>> rows = ParseAzureTraceCsv(c.content);
    ASSERT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << c.content;
    EXPECT_THAT(std::string(rows.status().message()), HasSubstr(c.expected)) << c.content;
  }
  EXPECT_TRUE(ParseAzureTraceCsv(header + "2024-02-29 00:00:00,1,1\n").ok()) << "a leap day";
}

TEST(AzureTraceTest, CommittedExcerptParsesToItsKnownFigures) {
  // tests/data/traces/README.md says how the excerpt and these figures were made.
  std::ifstream f(COHOST_SOURCE_DIR "/tests/data/traces/azure_conv_first500.csv");
  ASSERT_TRUE(f) << "tests/data/traces/azure_conv_first500.csv is missing";
  std::stringstream s;
  s << f.rdbuf();
  absl::StatusOr<std::vector<TraceRow>> rows = ParseAzureTraceCsv(s.str());
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 500u);
  EXPECT_DOUBLE_EQ(rows->front().arrival_s, 0);
  EXPECT_NEAR(rows->back().arrival_s, 129.012474, 1e-6);
  int64_t context = 0, generated = 0;
  for (const TraceRow& r : *rows) {
    context += r.context_tokens;
    generated += r.generated_tokens;
  }
  EXPECT_EQ(context, 467684);
  EXPECT_EQ(generated, 132536);
  EXPECT_TRUE(std::is_sorted(rows->begin(), rows->end(), [](const TraceRow& a, const TraceRow& b) {
    return a.arrival_s < b.arrival_s;
  }));
}

TEST(RequestSourceTest, GeneratedPromptsAreSeededIdsInTheVocab) {
  RequestSource a = RequestSource::Generated(64, 100, *MaxTokensDist::ParseRange("3:5"), 9);
  RequestSource b = RequestSource::Generated(64, 100, *MaxTokensDist::ParseRange("3:5"), 9);
  std::set<int32_t> distinct;
  for (int i = 0; i < 20; ++i) {
    RequestSpec x = a.Next();
    RequestSpec y = b.Next();
    EXPECT_FALSE(x.text.has_value());
    ASSERT_EQ(x.ids.size(), 64u);
    EXPECT_EQ(x.ids, y.ids);
    EXPECT_EQ(x.max_tokens, y.max_tokens);
    EXPECT_GE(x.max_tokens, 3);
    EXPECT_LE(x.max_tokens, 5);
    for (int32_t id : x.ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, 100);
      distinct.insert(id);
    }
  }
  EXPECT_GT(distinct.size(), 80u);  // 1280 draws over 100 ids
}

TEST(RequestSourceTest, TextsAndEntriesCycleAndEntriesOverrideMaxTokens) {
  RequestSource texts = RequestSource::FromTexts({"a", "b"}, *MaxTokensDist::Fixed(4), 0);
  EXPECT_EQ(texts.Next().text, "a");
  EXPECT_EQ(texts.Next().text, "b");
  RequestSpec third = texts.Next();
  EXPECT_EQ(third.text, "a");
  EXPECT_EQ(third.max_tokens, 4);

  std::vector<PromptEntry> entries(2);
  entries[0].ids = {5, 6};
  entries[0].max_tokens = 11;
  entries[1].text = "hi";
  RequestSource src = RequestSource::FromEntries(entries, *MaxTokensDist::Fixed(4), 0);
  RequestSpec e0 = src.Next();
  EXPECT_EQ(e0.ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(e0.max_tokens, 11);
  RequestSpec e1 = src.Next();
  EXPECT_EQ(e1.text, "hi");
  EXPECT_EQ(e1.max_tokens, 4);
}

TEST(RequestSourceTest, TracePromptsAreCappedAndFitTheContext) {
  // The last: an output as long as the trace parser allows, trimmed as well
  // (prompt + output overflowed int32 and went out untrimmed).
  std::vector<TraceRow> rows = {
      {0, 100, 20}, {1, 5000, 30}, {2, 10, 3000}, {3, 0, 0}, {4, 100, 2147483600}};
  RequestSource src = RequestSource::FromTrace(rows, /*max_prompt_tokens=*/256, /*vocab=*/50,
                                               /*context=*/2048, 1);
  RequestSpec r0 = src.Next();
  EXPECT_EQ(r0.ids.size(), 100u);
  EXPECT_EQ(r0.max_tokens, 20);
  RequestSpec r1 = src.Next();
  EXPECT_EQ(r1.ids.size(), 256u);  // capped by --max-prompt-tokens
  EXPECT_EQ(r1.max_tokens, 30);
  RequestSpec r2 = src.Next();
  EXPECT_EQ(r2.max_tokens, 2047);  // output capped by the context, prompt kept >= 1
  EXPECT_EQ(r2.ids.size(), 1u);
  RequestSpec r3 = src.Next();
  EXPECT_EQ(r3.ids.size(), 1u);
  EXPECT_EQ(r3.max_tokens, 1);
  RequestSpec r4 = src.Next();
  EXPECT_EQ(r4.max_tokens, 2047);
  EXPECT_EQ(r4.ids.size(), 1u);
  for (const RequestSpec& r : {r0, r1, r2, r3, r4}) {
    EXPECT_LE(static_cast<int32_t>(r.ids.size()) + r.max_tokens, 2048);
  }
}

RequestResult Ok(double ttft, std::vector<double> times, int32_t prompt = 10) {
  RequestResult r;
  r.ttft_ms = ttft;
  r.token_times_ms = std::move(times);
  r.output_tokens = static_cast<int32_t>(r.token_times_ms.size());
  r.prompt_tokens = prompt;
  r.e2e_ms = r.token_times_ms.empty() ? ttft : r.token_times_ms.back() + 1;
  return r;
}

TEST(LatencyTest, TpotAndItlCountCoalescedMessagesPerToken) {
  // Messages at 100 (1 token), 120 (1), 140 (2 tokens), 200 (1).
  RequestResult r = Ok(100, {100, 120, 140, 140, 200});
  ASSERT_TRUE(TpotMs(r).has_value());
  EXPECT_DOUBLE_EQ(*TpotMs(r), 25);  // (200 - 100) / 4
  EXPECT_THAT(InterTokenLatenciesMs(r), ::testing::ElementsAre(20, 10, 10, 60));
  EXPECT_FALSE(TpotMs(Ok(5, {5})).has_value());
  EXPECT_TRUE(InterTokenLatenciesMs(Ok(5, {5})).empty());
  // A first message of three tokens: two gaps of zero; n tokens, n - 1 gaps
  // whose mean is the TPOT.
  RequestResult first3 = Ok(50, {50, 50, 50, 80});
  EXPECT_THAT(InterTokenLatenciesMs(first3), ::testing::ElementsAre(0, 0, 30));
  EXPECT_DOUBLE_EQ(*TpotMs(first3), 10);
}

TEST(GoodputTest, CountsRequestsMeetingEveryGivenTarget) {
  std::vector<RequestResult> results = {
      Ok(100, {100, 120, 140}),  // ttft 100, tpot 20: good
      Ok(300, {300, 310}),       // ttft too slow
      Ok(50, {50, 150, 250}),    // tpot 100 too slow
      Ok(10, {10}),              // one token: no TPOT, good
  };
  RequestResult failed;
  failed.status_code = "RESOURCE_EXHAUSTED";
  results.push_back(failed);
  failed.status_code = "DEADLINE_EXCEEDED";
  results.push_back(failed);
  results.push_back(failed);

  const GoodputTargets targets{200.0, 30.0};
  EXPECT_TRUE(MeetsGoodput(results[0], targets));
  EXPECT_FALSE(MeetsGoodput(results[1], targets));
  EXPECT_FALSE(MeetsGoodput(results[2], targets));
  EXPECT_TRUE(MeetsGoodput(results[3], targets));
  EXPECT_FALSE(MeetsGoodput(results[4], targets));
  EXPECT_TRUE(MeetsGoodput(results[2], GoodputTargets{200.0, std::nullopt}));

  BenchStats s = ComputeStats(results, /*duration_s=*/2, targets);
  EXPECT_EQ(s.issued, 7u);
  EXPECT_EQ(s.completed, 4u);
  EXPECT_EQ(s.failed, 3u);
  EXPECT_EQ(s.errors.at("RESOURCE_EXHAUSTED"), 1u);
  EXPECT_EQ(s.errors.at("DEADLINE_EXCEEDED"), 2u);
  EXPECT_EQ(s.good_requests, 2u);
  EXPECT_DOUBLE_EQ(s.goodput, 1.0);
  EXPECT_DOUBLE_EQ(s.request_throughput, 2.0);
  EXPECT_EQ(s.output_tokens, 9);
  EXPECT_DOUBLE_EQ(s.output_throughput, 4.5);
  EXPECT_EQ(s.prompt_tokens, 40);
  EXPECT_EQ(s.ttft_ms.count, 4u);
  EXPECT_DOUBLE_EQ(s.ttft_ms.mean, (100 + 300 + 50 + 10) / 4.0);
  EXPECT_EQ(s.tpot_ms.count, 3u);  // the one-token request has none
  EXPECT_DOUBLE_EQ(s.tpot_ms.max, 100);
  EXPECT_EQ(s.itl_ms.count, 2u + 1u + 2u);
}

TEST(BenchReportTest, JsonHasEveryFieldAndTableTheSections) {
  std::vector<RequestResult> results = {Ok(100, {100, 120, 140}), Ok(80, {80, 90})};
  RequestResult failed;
  failed.status_code = "UNAVAILABLE";
  results.push_back(failed);
  const GoodputTargets targets{150.0, std::nullopt};
  BenchStats s = ComputeStats(results, 1, targets);
  nlohmann::json j = ReportJson({{"model", "m"}, {"rate", 2.0}}, s, targets);
  for (const char* key :
       {"config", "duration_s", "requests", "errors", "prompt_tokens", "output_tokens",
        "request_throughput", "output_token_throughput", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms",
        "goodput", "percentile_method"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"mean", "p50", "p90", "p99"}) {
    EXPECT_TRUE(j["ttft_ms"].contains(key)) << key;
    EXPECT_TRUE(j["tpot_ms"].contains(key)) << key;
    EXPECT_TRUE(j["itl_ms"].contains(key)) << key;
  }
  EXPECT_EQ(j["config"]["model"], "m");
  EXPECT_EQ(j["errors"]["UNAVAILABLE"], 1);
  EXPECT_EQ(j["requests"]["completed"], 2);
  EXPECT_EQ(j["goodput"]["good_requests"], 2);
  EXPECT_EQ(j["goodput"]["targets"]["ttft_ms"], 150.0);
  EXPECT_FALSE(j["goodput"]["targets"].contains("tpot_ms"));
  EXPECT_DOUBLE_EQ(j["ttft_ms"]["p50"].get<double>(), 90);

  const std::string table = ReportTable(s, targets);
  for (const char* text : {"Time to first token", "Time per output token", "Inter-token latency",
                           "Goodput", "UNAVAILABLE", "p99 TTFT"}) {
    EXPECT_THAT(table, HasSubstr(text));
  }
  EXPECT_THAT(table, Not(HasSubstr("n/a")));
}

TEST(BenchReportTest, LatenciesOfARunWithNoSuccessAreNotShownAsZero) {
  RequestResult failed;
  failed.status_code = "RESOURCE_EXHAUSTED";
  const BenchStats s = ComputeStats({failed, failed}, 1.0, {});
  const std::string table = ReportTable(s, {});
  EXPECT_THAT(table, HasSubstr("p99 TTFT (ms):"));
  EXPECT_THAT(table, Not(::testing::ContainsRegex("\\(ms\\): +0\\.00"))) << table;
  EXPECT_THAT(table, HasSubstr("n/a"));
}

}  // namespace
}  // namespace cohost::tools
