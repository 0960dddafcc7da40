// A sink that records a request's output and checks the sink protocol, and a
// gate it can block the engine thread on inside its first delta: everything
// submitted to that engine meanwhile stays queued, deterministically.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "gtest/gtest.h"
#include "runtime/batching/request.h"

namespace cohost::testing {

inline constexpr auto kGateWait = std::chrono::seconds(120);  // generous for sanitizers

// Blocks whoever calls Enter() until Open(); tells the test when someone is
// blocked.
class Gate {
 public:
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kGateWait, [this] { return entered_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool open_ = false;
};

// Records a request's output and checks the sink protocol (scheduled at most
// once, no delta after finish, exactly one finish).
class RecordingSink : public runtime::TokenSink {
 public:
  explicit RecordingSink(Gate* gate = nullptr) : gate_(gate) {}

  void OnScheduled() override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(scheduled_) << "scheduled twice";
    EXPECT_FALSE(finished_) << "scheduled after finish";
    scheduled_ = true;
  }
  bool OnDelta(const runtime::TokenDelta& d) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_FALSE(finished_) << "delta after finish";
      tokens_ += static_cast<int>(d.token_ids.size());
    }
    if (gate_ != nullptr) gate_->Enter();
    return true;
  }
  void OnFinish(const runtime::FinishInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(finished_) << "finished twice";
    finished_ = true;
    info_ = info;
    cv_.notify_all();
  }

  bool WaitFinished() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kGateWait, [this] { return finished_; });
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  bool scheduled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return scheduled_;
  }
  runtime::FinishInfo info() const {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }
  int tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  Gate* gate_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool scheduled_ = false;
  bool finished_ = false;
  int tokens_ = 0;
  runtime::FinishInfo info_;
};

}  // namespace cohost::testing
