// Waiting in tests on state other threads change (engine loops, gRPC streams):
// poll a condition until it holds or a generous timeout passes. The condition
// decides the outcome; the timeout only bounds a hang.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace cohost::testing {

inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace cohost::testing
