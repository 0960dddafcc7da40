// A small persistent thread pool for the CPU kernels: ParallelFor splits an
// index range into chunks that the calling thread and the workers share.
// One ParallelFor runs at a time; concurrent callers are serialized.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

namespace cohost::kernels::cpu {

// The CPUs this process may run on: its affinity mask (sched_getaffinity,
// so taskset and cpusets count), capped by a cgroup CPU quota (a container's
// --cpus: cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us,
// rounded up). At least 1. hardware_concurrency counts the host's cores,
// which oversubscribes a container many times over.
int AvailableCpus();
// The quota in a cgroup v2 cpu.max line ("200000 100000" -> 2, "150000
// 100000" -> 2, "max 100000" -> nullopt); nullopt for anything unreadable.
std::optional<int> CpusFromCgroupQuota(std::string_view cpu_max);

// The CPUs of this process's affinity mask, in order (empty if unreadable).
std::vector<int> AffinityCpus();

class ThreadPool {
 public:
  // num_threads counts the calling thread; <= 0 means AvailableCpus(). With
  // `pin`, worker i (1..num_threads-1) is bound to the i-th CPU of the
  // affinity mask (wrapping around), leaving the first to the calling
  // thread, which the pool does not bind: a worker then keeps its caches
  // and is never moved onto another worker's core, but cannot move off its
  // own when another process takes it. Off by default (bench/RESULTS.md,
  // "Pinning the pool's workers").
  explicit ThreadPool(int num_threads, bool pin = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Whether the workers were bound to CPUs (asked for, and the mask read).
  bool pinned() const { return pinned_; }

  // Calls fn(begin, end) over disjoint ranges covering [0, n). Ranges hold at
  // least `grain` indices (except the last), so tiny loops stay on one thread.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct Job;
  void WorkerLoop();

  std::mutex call_mu_;  // serializes ParallelFor callers
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  Job* job_ = nullptr;       // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_
  // Workers inside the current job: changed under mu_, read without it by
  // a caller watching for the job's end.
  std::atomic<int> active_{0};
  std::atomic<uint64_t> published_{0};  // generation_, for workers watching without mu_
  bool stop_ = false;                   // guarded by mu_
  bool pinned_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace cohost::kernels::cpu
