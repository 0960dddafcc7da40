// LogRateLimit: at most `burst` lines a window, the rest counted and
// reported with the next line written.

#include "server/library_logs.h"

#include <optional>

#include "gtest/gtest.h"

namespace cohost::server {
namespace {

using std::chrono::seconds;

TEST(LogRateLimitTest, ABurstAWindowThenTheDroppedAreCountedWithTheNextLine) {
  LogRateLimit limit(seconds(10), 3);
  const LogRateLimit::Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limit.Admit(t0 + seconds(i)), 0) << i;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limit.Admit(t0 + seconds(3 + i)), std::nullopt) << i;
  // A new window ten seconds after the first line: the first line says how
  // many were dropped, the next none.
  EXPECT_EQ(limit.Admit(t0 + seconds(10)), 5);
  EXPECT_EQ(limit.Admit(t0 + seconds(11)), 0);
  EXPECT_EQ(limit.Admit(t0 + seconds(12)), 0);
  EXPECT_EQ(limit.Admit(t0 + seconds(13)), std::nullopt);
}

}  // namespace
}  // namespace cohost::server
