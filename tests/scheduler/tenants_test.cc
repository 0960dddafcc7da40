// Tenant budgets: streams, queued prompt tokens and tokens per minute (a
// bucket that refills), each refused with its own pushback and changing
// nothing; the tenant at rest is forgotten past the tracking bound; weights
// come from the policy.

#include "scheduler/tenants.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/admission.h"

namespace cohost::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

const runtime::Clock::time_point kT0 = runtime::Clock::time_point{} + std::chrono::hours(1);

TenantPolicy Policy() {
  TenantPolicy p;
  p.defaults.weight = 1;
  TenantLimits alice;
  alice.weight = 2;
  alice.tokens_per_minute = 600;  // 10 a second
  TenantLimits bob;
  bob.max_streams = 2;
  bob.max_queued_prompt_tokens = 100;
  p.named = {{"alice", alice}, {"bob", bob}};
  return p;
}

TEST(TenantBookTest, TokensPerMinuteIsABucketThatRefills) {
  TenantBook book(Policy());
  absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> a = book.Admit("alice", 500, kT0);
  ASSERT_TRUE(a.ok()) << a.status();
  book.Scheduled(**a);
  book.Generated(**a, 50);  // 550 of 600 used
  absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> over = book.Admit("alice", 100, kT0);
  ASSERT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.status().message()),
              HasSubstr("tenant \"alice\" is over its budget of 600 tokens per minute"));
  EXPECT_EQ(RetryPushback(over.status()), milliseconds(5000)) << "50 more tokens at 10 a second";
  EXPECT_EQ(RefusalReason(over.status()), "tenant_rate");
  EXPECT_TRUE(book.Admit("carol", 100000, kT0).ok()) << "the defaults have no budget";
  EXPECT_TRUE(book.Admit("alice", 100, kT0 + seconds(5)).ok()) << "refilled by then";
  EXPECT_FALSE(book.Admit("alice", 10, kT0 + seconds(5)).ok()) << "and used again";

  absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> huge = book.Admit("alice", 601, kT0);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument)
      << "a prompt over a minute's budget never fits";
}

TEST(TenantBookTest, StreamsAndQueuedPromptTokens) {
  TenantBook book(Policy());
  auto first = book.Admit("bob", 60, kT0);
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> queue_full = book.Admit("bob", 41, kT0);
  ASSERT_EQ(queue_full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(queue_full.status().message()), HasSubstr("60 prompt tokens queued"));
  EXPECT_EQ(RetryPushback(queue_full.status()), milliseconds(TenantBook::kBudgetPushbackMs));
  EXPECT_EQ(RefusalReason(queue_full.status()), "tenant_queued_tokens");
  book.Scheduled(**first);
  auto second = book.Admit("bob", 41, kT0);
  ASSERT_TRUE(second.ok()) << "the first left the queue";
  absl::StatusOr<std::unique_ptr<TenantBook::Ticket>> third = book.Admit("bob", 1, kT0);
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("2 requests in flight"));
  EXPECT_EQ(RefusalReason(third.status()), "tenant_streams");
  EXPECT_TRUE(book.Admit("alice", 1, kT0).ok()) << "another tenant is not refused";
  book.Finished(**first);
  EXPECT_EQ(book.Admit("bob", 1, kT0).status().code(), absl::StatusCode::kResourceExhausted)
      << "a finished request's stream is open while its ticket is held (its output written)";
  first->reset();
  EXPECT_TRUE(book.Admit("bob", 1, kT0).ok()) << "a stream closed";
  EXPECT_EQ(book.Admit("bob", 101, kT0).status().code(), absl::StatusCode::kInvalidArgument);
}

// A call of several choices (HTTP's n) is admitted a choice at a time, each
// a request in flight: one with more choices than the tenant's max_streams
// could never be admitted whole and is refused up front, instead of being
// told to retry while its first choices run.
TEST(TenantBookTest, ChoicesThatCouldNeverAllBeAdmittedAreRefusedUpFront) {
  const TenantBook book(Policy());
  EXPECT_TRUE(book.CheckChoices("bob", 2).ok());
  const absl::Status streams = book.CheckChoices("bob", 3);
  EXPECT_EQ(streams.code(), absl::StatusCode::kInvalidArgument) << streams;
  EXPECT_THAT(std::string(streams.message()), HasSubstr("max_streams"));
  EXPECT_TRUE(book.CheckChoices("alice", 8).ok()) << "a rate budget alone limits no choices";
  EXPECT_TRUE(book.CheckChoices("carol", 8).ok()) << "no budgets: anything goes";
}

TEST(TenantBookTest, RefusedUndoesEverything) {
  TenantBook book(Policy());
  auto a = book.Admit("alice", 600, kT0);
  ASSERT_TRUE(a.ok());
  book.Refused(**a);
  book.Refused(**a);  // once only
  EXPECT_TRUE(book.Admit("alice", 600, kT0).ok()) << "its tokens came back";
  auto b = book.Admit("bob", 100, kT0);
  ASSERT_TRUE(b.ok());
  book.Refused(**b);
  EXPECT_TRUE(book.Admit("bob", 100, kT0).ok());
}

TEST(TenantBookTest, TenantsAtRestAreForgottenPastTheBound) {
  TenantPolicy p;
  p.defaults.max_streams = 1;
  TenantBook book(p);
  std::vector<std::unique_ptr<TenantBook::Ticket>> open;
  for (size_t i = 0; i < TenantBook::kMaxTracked; ++i) {
    auto t = book.Admit(absl::StrCat("t", i), 1, kT0);
    ASSERT_TRUE(t.ok());
    if (i % 2 == 0) {
      open.push_back(*std::move(t));  // still in flight
    } else {
      book.Finished(**t);  // at rest
    }
  }
  EXPECT_EQ(book.tracked(), TenantBook::kMaxTracked);
  EXPECT_TRUE(book.Admit("newcomer", 1, kT0).ok());
  EXPECT_EQ(book.tracked(), TenantBook::kMaxTracked / 2 + 1) << "those at rest were forgotten";
  EXPECT_FALSE(book.Admit("t0", 1, kT0).ok()) << "one in flight keeps its books";
}

TEST(TenantBookTest, ClientChosenNamesAreEscapedInMessages) {
  TenantPolicy p;
  p.defaults.max_streams = 1;
  TenantBook book(p);
  const std::string odd = std::string("evil\"\n") + std::string(100, 'x');
  auto t = book.Admit(odd, 1, kT0);
  ASSERT_TRUE(t.ok());
  const absl::Status refused = book.Admit(odd, 1, kT0).status();
  EXPECT_THAT(std::string(refused.message()), HasSubstr("tenant \"evil\\\"\\n"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("\"..."));
  EXPECT_EQ(std::string(refused.message()).find('\n'), std::string::npos);
}

// A request may lower its priority; raising it above the tenant's
// max_priority (0 unless the operator says more) is refused, with a reason.
TEST(TenantBookTest, PriorityAboveTheTenantsMostIsRefused) {
  TenantPolicy p;
  TenantLimits trusted;
  trusted.max_priority = 10;
  p.named["trusted"] = trusted;
  TenantBook book(p);
  EXPECT_TRUE(book.CheckPriority("anyone", 0).ok());
  EXPECT_TRUE(book.CheckPriority("anyone", -50).ok()) << "background work";
  const absl::Status up = book.CheckPriority("anyone", 1);
  EXPECT_EQ(up.code(), absl::StatusCode::kPermissionDenied) << up;
  EXPECT_EQ(RefusalReason(up), "tenant_priority");
  EXPECT_TRUE(book.CheckPriority("trusted", 10).ok());
  EXPECT_EQ(book.CheckPriority("trusted", 11).code(), absl::StatusCode::kPermissionDenied);
}

TEST(TenantPolicyTest, NamedTenantsElseTheDefaults) {
  const TenantPolicy p = Policy();
  EXPECT_EQ(p.For("alice").weight, 2);
  EXPECT_EQ(p.For("bob").max_streams, 2);
  EXPECT_EQ(p.For("").weight, 1);
  EXPECT_FALSE(p.For("zed").has_budget());
}

}  // namespace
}  // namespace cohost::scheduler
