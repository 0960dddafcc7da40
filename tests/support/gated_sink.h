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

// A RecordingSink that holds the engine thread in each of its deltas until
// the test lets that step go on (or opens it for good): the engine, and so
// everything else on its device, advances a step at a time on the test's
// word.
class SteppedSink : public RecordingSink {
 public:
  bool OnDelta(const runtime::TokenDelta& d) override {
    RecordingSink::OnDelta(d);
    std::unique_lock<std::mutex> lock(step_mu_);
    ++held_;
    step_cv_.notify_all();
    step_cv_.wait(lock, [this] { return open_ || permits_ > 0; });
    if (!open_) --permits_;
    return true;
  }
  // Waits until `n` deltas have been held (the n-th may still be).
  bool WaitHeld(int n = 1) {
    std::unique_lock<std::mutex> lock(step_mu_);
    return step_cv_.wait_for(lock, kGateWait, [&] { return held_ >= n; });
  }
  void LetOneGo() {
    std::lock_guard<std::mutex> lock(step_mu_);
    ++permits_;
    step_cv_.notify_all();
  }
  // Lets the held step go on, then waits until the next delta is held.
  bool Advance() {
    int held;
    {
      std::lock_guard<std::mutex> lock(step_mu_);
      held = held_;
    }
    LetOneGo();
    return WaitHeld(held + 1);
  }
  void Open() {
    std::lock_guard<std::mutex> lock(step_mu_);
    open_ = true;
    step_cv_.notify_all();
  }

 private:
  std::mutex step_mu_;
  std::condition_variable step_cv_;
  int held_ = 0, permits_ = 0;
  bool open_ = false;
};

}  // namespace cohost::testing
