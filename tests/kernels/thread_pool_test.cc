// The CPU thread pool's size: the CPUs this process may use (affinity mask,
// cgroup quota), and ParallelFor covering its range exactly once.

#include "kernels/cpu/thread_pool.h"

#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cohost::kernels::cpu {
namespace {

TEST(AvailableCpusTest, ReadsTheCgroupQuota) {
  EXPECT_EQ(CpusFromCgroupQuota("200000 100000\n"), 2);
  EXPECT_EQ(CpusFromCgroupQuota("150000 100000"), 2);  // 1.5 CPUs: two threads
  EXPECT_EQ(CpusFromCgroupQuota("50000 100000"), 1);
  EXPECT_EQ(CpusFromCgroupQuota("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpusFromCgroupQuota("-1 100000"), std::nullopt);  // cgroup v1's "no quota"
  EXPECT_EQ(CpusFromCgroupQuota(""), std::nullopt);
  EXPECT_EQ(CpusFromCgroupQuota("garbage"), std::nullopt);
  EXPECT_EQ(CpusFromCgroupQuota("100000 0"), std::nullopt);
}

// Pinned to one CPU (as taskset would), the process sees one, and a pool
// sized by default has one thread; unpinned, at most the host's count.
TEST(AvailableCpusTest, FollowsTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  const int before = AvailableCpus();
  EXPECT_GE(before, 1);
  EXPECT_LE(before, CPU_COUNT(&saved));
  int first = 0;
  while (!CPU_ISSET(first, &saved)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(AvailableCpus(), 1);
  {
    ThreadPool pool(0);
    EXPECT_EQ(pool.num_threads(), 1);
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_EQ(AvailableCpus(), before);
}

TEST(ThreadPoolTest, ParallelForCoversTheRangeOnce) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.num_threads(), 3);
  std::vector<std::atomic<int>> seen(1000);
  pool.ParallelFor(1000, 7, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) seen[i].fetch_add(1);
  });
  for (const std::atomic<int>& s : seen) EXPECT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace cohost::kernels::cpu
