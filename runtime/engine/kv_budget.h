// How an engine that shares its device's KV memory with other engines asks for
// more and gives it back: scheduler::KvPool implements this. Every call comes
// from the thread that steps the engines of the device.
//
// When the memory is all held, the oldest work wins (wound-wait): an engine
// asks on behalf of its oldest live request, and another engine preempts its
// sequences to give memory back only when every request it has is younger.
// Requests are ordered by id, which the Router hands out in submission order
// across every model, so the order is total and never changes; the engine
// holding the oldest request on the device can always grow to its share, and
// no two engines can each wait for the other.
#pragma once

#include <cstdint>
#include <limits>

#include "runtime/batching/request.h"

namespace cohost::runtime {

// Engine::ReclaimKv's `wounder`: an engine may preempt to give memory back
// when its oldest live request is younger (a higher id) than this.
inline constexpr RequestId kPreemptAlways = std::numeric_limits<RequestId>::min();
inline constexpr RequestId kPreemptNever = std::numeric_limits<RequestId>::max();

class KvBudget {
 public:
  virtual ~KvBudget() = default;
  // Grants `bytes` more to this engine, whose oldest live request is
  // `oldest`, taking memory back from other engines of the device if it must
  // and may; false when it cannot now.
  virtual bool Acquire(int64_t bytes, RequestId oldest) = 0;
  // Gives `bytes` back (the engine has already unbacked them).
  virtual void Release(int64_t bytes) = 0;
};

}  // namespace cohost::runtime
