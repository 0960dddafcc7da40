// A TokenSink that keeps what a request produced (its token ids, its finish)
// for a test to read from another thread. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "runtime/batching/request.h"

namespace cohost::testing {

class CollectingSink : public runtime::TokenSink {
 public:
  bool OnDelta(const runtime::TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    ids_.insert(ids_.end(), d.token_ids.begin(), d.token_ids.end());
    return true;
  }
  void OnFinish(const runtime::FinishInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    info_ = info;
    cv_.notify_all();
  }
  // False if the request has not finished within `timeout`.
  bool Wait(std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return finished_; });
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  std::vector<int32_t> ids() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }
  int tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(ids_.size());
  }
  runtime::FinishInfo info() const {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> ids_;
  bool finished_ = false;
  runtime::FinishInfo info_;
};

}  // namespace cohost::testing
