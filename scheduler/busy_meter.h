// How busy a model keeps its device: the fraction of wall time its steps
// took, as a moving estimate that forgets with a time constant (a step `tau`
// ago counts 1/e as much as one now). Placement reads it as the model's
// expected load. Thread-safe.
#pragma once

#include <chrono>
#include <mutex>

#include "runtime/batching/request.h"

namespace cohost::scheduler {

class BusyMeter {
 public:
  explicit BusyMeter(runtime::Clock::duration tau = std::chrono::seconds(60)) : tau_(tau) {}

  // A step of `seconds` that ended at `end`.
  void Record(double seconds, runtime::Clock::time_point end = runtime::Clock::now());
  // The busy fraction at `now`, in [0, 1]; 0 before any step.
  double Load(runtime::Clock::time_point now = runtime::Clock::now()) const;

 private:
  // `decayed_` carried from `last_` to `t`.
  double DecayedAt(runtime::Clock::time_point t) const;

  const runtime::Clock::duration tau_;
  mutable std::mutex mu_;
  double decayed_ = 0;               // guarded by mu_: step seconds, each weighted by its age
  runtime::Clock::time_point last_;  // guarded by mu_
};

}  // namespace cohost::scheduler
