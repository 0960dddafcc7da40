// Token-weighted fair sharing between tenants: a virtual token counter per
// tenant (VTC; Sheng et al., "Fairness in Serving Large Language Models", OSDI
// 2024). Every token computed for a tenant's sequence (prompt or generated,
// prefix-cache hits excluded) adds 1 / weight to its counter; the step
// scheduler serves the tenant with the smallest counter first. A tenant that
// becomes active (its first live sequence) starts at the smallest counter of
// the active ones, so that idle time banks no credit. Tenants are keys (a hash
// of the name; 0 for none). One per engine, or one shared by every engine of a
// device (EngineConfig::fair_share), so that a tenant's tokens on one model
// count against it on the others. Thread-safe: an engine unloaded on another
// thread leaves while the device's executor steps the rest.
#pragma once

#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace cohost::runtime {

class FairShare {
 public:
  // A sequence of `tenant` became live / finished. A tenant with no live
  // sequence is forgotten.
  void Join(uint64_t tenant);
  void Leave(uint64_t tenant);
  // `tokens` computed for `tenant`, whose weight is `weight` (> 0; anything
  // else counts as 1).
  void Charge(uint64_t tenant, int64_t tokens, double weight);
  // The tenant's virtual tokens; 0 for an unknown tenant.
  double Counter(uint64_t tenant) const;
  int32_t num_active() const;

 private:
  struct Entry {
    double counter = 0;
    int32_t live = 0;
  };
  // std::mutex, not absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, which then cannot see an absl::Mutex's locking.
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace cohost::runtime
