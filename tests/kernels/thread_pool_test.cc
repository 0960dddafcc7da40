// The CPU thread pool's size: the CPUs this process may use (affinity mask,
// cgroup quota), ParallelFor covering its range exactly once, loop after
// loop, workers bound to CPUs when asked, and OpenBLAS held to the backend's
// thread count.

#include "kernels/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"

// OpenBLAS's own (cblas.h is the kernels library's private include).
extern "C" int openblas_get_num_threads(void);  // NOLINT(readability-identifier-naming)

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

// Back-to-back loops of every size (the workers catch most of them while
// still watching for the next, some after sleeping), each covering its
// range exactly once; then the pool is destroyed with its workers watching.
TEST(ThreadPoolTest, BackToBackLoopsEachCoverTheirRangeOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(64);
  for (int round = 0; round < 2000; ++round) {
    const int64_t n = 1 + round % 64;
    pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) seen[i].fetch_add(1);
    });
    if (round % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].exchange(0), 1) << round << " " << i;
  }
}

// What each of a pool's threads may run on, as each reports it from inside
// one chunk of a loop (every chunk waits until all threads hold one, so each
// thread takes exactly one): the calling thread's mask first.
std::vector<std::vector<int>> ThreadMasks(ThreadPool& pool) {
  const int n = pool.num_threads();
  std::mutex mu;
  std::vector<std::vector<int>> worker_masks;
  std::vector<int> caller_mask;
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> inside{0};
  pool.ParallelFor(n, 1, [&](int64_t, int64_t) {
    inside.fetch_add(1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (inside.load() < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard<std::mutex> lk(mu);
    if (std::this_thread::get_id() == caller) {
      caller_mask = AffinityCpus();
    } else {
      worker_masks.push_back(AffinityCpus());
    }
  });
  EXPECT_EQ(inside.load(), n) << "every thread took one chunk";
  std::sort(worker_masks.begin(), worker_masks.end());
  worker_masks.insert(worker_masks.begin(), caller_mask);
  return worker_masks;
}

// Pinned, worker i is bound to the i-th CPU of the mask (wrapping), and the
// calling thread is left as it was; unpinned, every thread keeps the mask.
TEST(ThreadPoolTest, PinningBindsEachWorkerToOneCpuOfTheMask) {
  const std::vector<int> cpus = AffinityCpus();
  ASSERT_FALSE(cpus.empty());
  {
    ThreadPool pool(3, /*pin=*/true);
    EXPECT_TRUE(pool.pinned());
    std::vector<std::vector<int>> want = {{cpus[1 % cpus.size()]}, {cpus[2 % cpus.size()]}};
    std::sort(want.begin(), want.end());
    want.insert(want.begin(), cpus);
    EXPECT_EQ(ThreadMasks(pool), want);
  }
  {
    ThreadPool pool(3);
    EXPECT_FALSE(pool.pinned());
    EXPECT_EQ(ThreadMasks(pool), std::vector<std::vector<int>>(3, cpus));
  }
  EXPECT_EQ(AffinityCpus(), cpus) << "the calling thread's own mask is untouched";
}

// OpenBLAS (the reference path's dense GEMMs) is held to the backend's
// thread count instead of the cores it sees.
TEST(CpuBackendTest, OpenBlasThreadsFollowTheBackendsPool) {
  using kernels::Backend;
  using kernels::MakeCpuBackend;
  const std::unique_ptr<Backend> one = MakeCpuBackend(1);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  const std::unique_ptr<Backend> two = MakeCpuBackend(2);
  EXPECT_GE(openblas_get_num_threads(), 1);
  EXPECT_LE(openblas_get_num_threads(), 2);
}

}  // namespace
}  // namespace cohost::kernels::cpu
