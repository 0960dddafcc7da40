// StreamTiming: what each delta and the finish add to the server's metrics
// (counts, not durations: those read the real clock).

#include "server/stream_timing.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics.h"

namespace cohost::server {
namespace {

using ::testing::HasSubstr;

std::string Count(const std::string& series) {
  return absl::StrCat(series, "_count{model=\"m\"} ");
}

// Tokens held back behind a possible stop string come out together: the
// first delta is the TTFT (its second token a gap of zero), and a later
// delta of three tokens is three inter-token gaps (sharing its wait), not
// one: five tokens, four gaps.
TEST(StreamTimingTest, ADeltaOfSeveralTokensIsAsManyInterTokenGaps) {
  ServerMetrics metrics;
  StreamTiming t(&metrics, runtime::Clock::now());
  t.set_model("m");
  t.OnScheduled();
  t.OnTokens(2);
  t.OnTokens(3);
  t.OnTokens(0);  // nothing released: nothing observed
  runtime::FinishInfo info;
  info.completion_tokens = 5;
  t.OnFinish(info);
  const std::string text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr(Count("cohost_time_to_first_token_seconds") + "1\n"));
  EXPECT_THAT(text, HasSubstr(Count("cohost_inter_token_latency_seconds") + "4\n"));
}

// A request that generated tokens but sent none (its output was a stop
// string at once) still has a first output: its end.
TEST(StreamTimingTest, ARequestWhoseTokensWereAllHeldHasItsEndAsItsFirstToken) {
  ServerMetrics metrics;
  StreamTiming t(&metrics, runtime::Clock::now());
  t.set_model("m");
  t.OnScheduled();
  runtime::FinishInfo info;
  info.reason = runtime::FinishReason::kStopString;
  info.completion_tokens = 2;
  t.OnFinish(info);
  EXPECT_THAT(metrics.Render({}), HasSubstr(Count("cohost_time_to_first_token_seconds") + "1\n"));

  ServerMetrics refused;  // none generated (refused, failed): no first token
  StreamTiming none(&refused, runtime::Clock::now());
  none.set_model("m");
  none.OnFinish(runtime::FinishInfo{});
  EXPECT_THAT(refused.Render({}),
              ::testing::Not(HasSubstr(Count("cohost_time_to_first_token_seconds") + "1\n")));
}

// Generated but held back when the client cancelled, or the call's deadline
// passed (a stop string's possible start, half a character): nothing reached
// the client, so no first token is observed. Before, its end was, and a
// cancelled call's wait entered the TTFT histograms of its model and tenant.
TEST(StreamTimingTest, ARequestThatEndedBeforeSendingAnythingHasNoFirstToken) {
  for (const runtime::FinishReason reason :
       {runtime::FinishReason::kCancelled, runtime::FinishReason::kError}) {
    ServerMetrics metrics;
    StreamTiming t(&metrics, runtime::Clock::now());
    t.set_model("m");
    t.set_tenant("acme");
    t.OnScheduled();
    runtime::FinishInfo info;
    info.reason = reason;
    info.completion_tokens = 2;
    const runtime::FinishInfo out = t.OnFinish(info);
    EXPECT_EQ(out.timings.ttft_ms, 0);
    const std::string text = metrics.Render({});
    EXPECT_THAT(text, HasSubstr(Count("cohost_time_to_first_token_seconds") + "0\n"));
    EXPECT_THAT(text,
                HasSubstr("cohost_tenant_time_to_first_token_seconds_count{tenant=\"acme\"} 0\n"));
  }
}

// A request that left the queue unscheduled (cancelled, past its deadline,
// its model's load failed) waited too: its wait is in the queue-time
// histogram, once. Before, only scheduled requests were, and an overload's
// longest waits were missing.
TEST(StreamTimingTest, ARequestThatNeverLeftTheQueueCountsItsWait) {
  ServerMetrics metrics;
  StreamTiming waited(&metrics, runtime::Clock::now());
  waited.set_model("m");
  runtime::FinishInfo info;
  info.reason = runtime::FinishReason::kCancelled;
  waited.OnFinish(info);
  StreamTiming scheduled(&metrics, runtime::Clock::now());
  scheduled.set_model("m");
  scheduled.OnScheduled();
  scheduled.OnFinish(runtime::FinishInfo{});
  EXPECT_THAT(metrics.Render({}), HasSubstr(Count("cohost_request_queue_time_seconds") + "2\n"))
      << "one each, the scheduled one's at its scheduling";
}

}  // namespace
}  // namespace cohost::server
