// Host memory that evicted models' weights may stay in (cohost serve's
// --offload-memory-mb), shared by every device's models: where a device's
// memory is its own, an evicted model's weights are copied into page-locked
// host memory (Model::OffloadWeights) while they fit here, so that its next
// load is one copy back instead of a read of its file (vLLM's sleep level 1).
#pragma once

#include <atomic>
#include <cstdint>

namespace cohost::scheduler {

class OffloadBudget {
 public:
  explicit OffloadBudget(int64_t capacity) : capacity_(capacity) {}

  // Takes `bytes` if they fit beside what is held; false leaves it as it was.
  bool TryTake(int64_t bytes) {
    int64_t held = held_.load();
    do {
      if (bytes < 0 || held + bytes > capacity_) return false;
    } while (!held_.compare_exchange_weak(held, held + bytes));
    return true;
  }
  void Give(int64_t bytes) { held_ -= bytes; }

  int64_t capacity() const { return capacity_; }
  int64_t held() const { return held_.load(); }

 private:
  const int64_t capacity_;
  std::atomic<int64_t> held_{0};
};

}  // namespace cohost::scheduler
