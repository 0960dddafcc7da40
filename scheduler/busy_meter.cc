#include "scheduler/busy_meter.h"

#include <algorithm>
#include <cmath>

namespace cohost::scheduler {

double BusyMeter::DecayedAt(runtime::Clock::time_point t) const {
  if (decayed_ == 0) return 0;
  const double age = std::chrono::duration<double>(t - last_).count();
  const double tau = std::chrono::duration<double>(tau_).count();
  return decayed_ * std::exp(-std::max(age, 0.0) / tau);
}

void BusyMeter::Record(double seconds, runtime::Clock::time_point end) {
  std::lock_guard<std::mutex> lock(mu_);
  // A step recorded out of order (two threads' clocks read apart) counts at
  // the later time: the estimate never runs backwards.
  const runtime::Clock::time_point t = std::max(end, last_);
  decayed_ = DecayedAt(t) + std::max(seconds, 0.0);
  last_ = t;
}

double BusyMeter::Load(runtime::Clock::time_point now) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Busy a fraction f of the time for long, the decayed sum is f * tau (the
  // integral of f e^(-age/tau)); a load that just started ramps up over tau.
  const double tau = std::chrono::duration<double>(tau_).count();
  return std::clamp(DecayedAt(now) / tau, 0.0, 1.0);
}

}  // namespace cohost::scheduler
