// Token-weighted fair sharing between tenants: a virtual token counter per
// tenant (VTC; Sheng et al., "Fairness in Serving Large Language Models", OSDI
// 2024). Every token computed for a tenant's sequence (prompt or generated,
// prefix-cache hits excluded) adds 1 / weight to its counter; the step
// scheduler serves the tenant with the smallest counter first. A tenant that
// becomes active (its first live sequence) starts at the smallest counter of
// the active ones, so that idle time banks no credit. Tenants are keys (a hash
// of the name; 0 for none). Owned by the stepping thread.
#pragma once

#include <cstdint>

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
  int32_t num_active() const { return static_cast<int32_t>(entries_.size()); }

 private:
  struct Entry {
    double counter = 0;
    int32_t live = 0;
  };
  absl::flat_hash_map<uint64_t, Entry> entries_;
};

}  // namespace cohost::runtime
