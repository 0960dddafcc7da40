// ThreadPool: workers watch for the next job for ten microseconds,
// then sleep on a condition variable (no long spinning, so other processes
// sharing the cores get them).
#include "thread_pool.h"

#include <sched.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace cohost::kernels::cpu {
namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return f ? s.str() : std::string();
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return v;
}

// Polls `done` for up to kSpin, pausing between polls; the caller then
// takes the mutex and sleeps on its condition if still needed. Bounded so
// that a process sharing the cores loses at most that much to a waiter
// (OpenBLAS's spinning threads, which wait far longer, collapsed there).
constexpr auto kSpin = std::chrono::microseconds(10);

template <typename Done>
void SpinUntil(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  while (!done()) {
    for (int i = 0; i < 64; ++i) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
    if (std::chrono::steady_clock::now() > until) return;
  }
}

}  // namespace

std::optional<int> CpusFromCgroupQuota(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' ')) {
    cpu_max.remove_suffix(1);
  }
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::optional<int64_t> quota = ParseInt(cpu_max.substr(0, space));
  const std::optional<int64_t> period = ParseInt(cpu_max.substr(space + 1));
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // "max": no quota
  return static_cast<int>(std::min<int64_t>((*quota + *period - 1) / *period, 1 << 20));
}

std::vector<int> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

int AvailableCpus() {
  const std::vector<int> mask = AffinityCpus();
  int cpus = mask.empty() ? static_cast<int>(std::thread::hardware_concurrency())
                          : static_cast<int>(mask.size());
  std::optional<int> quota = CpusFromCgroupQuota(ReadSmallFile("/sys/fs/cgroup/cpu.max"));
  if (!quota) {
    // cgroup v1: the same two numbers in two files.
    const std::string v1 = ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    const std::string period = ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (!v1.empty() && !period.empty()) {
      quota = CpusFromCgroupQuota(v1.substr(0, v1.find('\n')) + " " + period);
    }
  }
  if (quota) cpus = std::min(cpus, *quota);
  return std::max(cpus, 1);
}

struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n;
  int64_t chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next{0};

  void Run() {
    for (int64_t c = next.fetch_add(1); c < num_chunks; c = next.fetch_add(1)) {
      const int64_t begin = c * chunk;
      (*fn)(begin, std::min(n, begin + chunk));
    }
  }
};

ThreadPool::ThreadPool(int num_threads, bool pin) {
  if (num_threads <= 0) num_threads = AvailableCpus();
  num_threads = std::max(num_threads, 1);
  const std::vector<int> cpus = pin ? AffinityCpus() : std::vector<int>();
  pinned_ = !cpus.empty();
  workers_.reserve(num_threads - 1);
  for (int i = 1; i < num_threads; ++i) {
    const int cpu = pinned_ ? cpus[static_cast<size_t>(i) % cpus.size()] : -1;
    workers_.emplace_back([this, cpu] {
      if (cpu >= 0) {
        // Best effort: a mask changed since it was read leaves this worker
        // where the OS puts it.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof(one), &one);
      }
      WorkerLoop();
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    Job* job;
    // A step's products come a few microseconds apart: watch for the next
    // briefly before sleeping, which costs a futex wake-up per job.
    SpinUntil([&] { return published_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lk(mu_);
      work_cv_.wait(lk, [&] { return stop_ || (job_ != nullptr && generation_ != seen); });
      if (stop_) return;
      seen = generation_;
      job = job_;
      active_.fetch_add(1, std::memory_order_relaxed);
    }
    job->Run();
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (active_.fetch_sub(1, std::memory_order_release) == 1) done_cv_.notify_all();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t threads = num_threads();
  if (threads == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven work (attention rows differ in length).
  int64_t num_chunks = std::min<int64_t>((n + grain - 1) / grain, threads * 4);
  const int64_t chunk = (n + num_chunks - 1) / num_chunks;
  num_chunks = (n + chunk - 1) / chunk;

  std::lock_guard<std::mutex> call_lk(call_mu_);
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = chunk;
  job.num_chunks = num_chunks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &job;
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  work_cv_.notify_all();
  job.Run();
  // Every chunk has been claimed; wait for workers still running theirs so the
  // job (on this stack) outlives them.
  SpinUntil([&] { return active_.load(std::memory_order_acquire) == 0; });
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [&] { return active_.load(std::memory_order_relaxed) == 0; });
  job_ = nullptr;
}

}  // namespace cohost::kernels::cpu
