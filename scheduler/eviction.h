// Which resident models to evict so that a model that is loading fits its
// device: a pure function of what each candidate reports, tested as tables.
// Only idle models (nothing queued or running) whose keep-alive has passed may
// go: the lowest `priority` first (the configuration's), and within a priority
// the least recently used first; a model with work, or within its keep-alive,
// never does, whatever its priority. Evicting more than needed is avoided:
// candidates are taken in that order until the need is met, then any taken
// whose memory the others already cover stays.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "runtime/batching/request.h"

namespace cohost::scheduler {

struct EvictionCandidate {
  int64_t bytes = 0;  // memory its eviction frees
  bool idle = false;  // nothing queued or running
  runtime::Clock::time_point last_used;
  std::optional<std::chrono::seconds> keep_alive;  // nullopt: never evicted
  int32_t priority = 0;                            // lower goes first
};

// Indices of the candidates to evict so that `need` bytes fit in `free` bytes,
// in the order above; empty when they already fit; nullopt when even every evictable
// candidate would not free enough (then nothing should be evicted).
std::optional<std::vector<size_t>> PickEvictions(absl::Span<const EvictionCandidate> candidates,
                                                 int64_t need, int64_t free,
                                                 runtime::Clock::time_point now);

}  // namespace cohost::scheduler
