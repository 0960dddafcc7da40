#include "scheduler/eviction.h"

#include <algorithm>
#include <numeric>
#include <tuple>

namespace cohost::scheduler {

std::optional<std::vector<size_t>> PickEvictions(absl::Span<const EvictionCandidate> candidates,
                                                 int64_t need, int64_t free,
                                                 runtime::Clock::time_point now) {
  if (need <= free) return std::vector<size_t>{};
  std::vector<size_t> evictable;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EvictionCandidate& c = candidates[i];
    if (c.idle && c.keep_alive && now - c.last_used >= *c.keep_alive) evictable.push_back(i);
  }
  std::stable_sort(evictable.begin(), evictable.end(), [&](size_t a, size_t b) {
    const EvictionCandidate &x = candidates[a], &y = candidates[b];
    return std::tie(x.priority, x.last_used) < std::tie(y.priority, y.last_used);
  });
  std::vector<size_t> picked;
  for (size_t i : evictable) {
    if (need <= free) break;
    picked.push_back(i);
    free += candidates[i].bytes;
  }
  if (need > free) return std::nullopt;
  // A later (larger) victim can make earlier ones unneeded. Those the others
  // cover stay, weighed from the last taken (the one the order would keep
  // longest) back, so that what goes is still the least worth keeping.
  for (size_t k = picked.size(); k-- > 0;) {
    if (free - candidates[picked[k]].bytes >= need) {
      free -= candidates[picked[k]].bytes;
      picked.erase(picked.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }
  return picked;
}

}  // namespace cohost::scheduler
