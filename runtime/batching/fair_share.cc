#include "runtime/batching/fair_share.h"

#include <algorithm>
#include <limits>

namespace cohost::runtime {

void FairShare::Join(uint64_t tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(tenant);
  if (it != entries_.end()) {
    ++it->second.live;
    return;
  }
  double floor = std::numeric_limits<double>::infinity();
  for (const auto& [key, e] : entries_) floor = std::min(floor, e.counter);
  entries_[tenant] = Entry{entries_.empty() ? 0.0 : floor, 1};
}

void FairShare::Leave(uint64_t tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(tenant);
  if (it == entries_.end()) return;
  if (--it->second.live <= 0) entries_.erase(it);
}

void FairShare::Charge(uint64_t tenant, int64_t tokens, double weight) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(tenant);
  if (it == entries_.end() || tokens <= 0) return;
  const double w = weight > 0 ? weight : 1.0;
  it->second.counter += static_cast<double>(tokens) / w;
}

double FairShare::Counter(uint64_t tenant) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(tenant);
  return it == entries_.end() ? 0.0 : it->second.counter;
}

int32_t FairShare::num_active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int32_t>(entries_.size());
}

}  // namespace cohost::runtime
