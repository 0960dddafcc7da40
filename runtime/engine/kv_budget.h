// How an engine that shares its device's KV memory with other engines asks for
// more and gives it back: scheduler::KvPool implements this. Every call comes
// from the thread that steps the engines of the device.
//
// When the memory is all held, the oldest work wins (wound-wait). An engine's
// work is as old as the oldest request it serves: one it runs, or the one
// first in its queue (Engine::KvSeniority; not one that priorities keep
// waiting, which would lend a stream of younger requests its age). It asks
// with that age, and another engine preempts its sequences to give memory
// back only when its own work is younger; work as old or older that waits for
// memory gives nothing. Requests are ordered by id, which the Router hands
// out in submission order across every model, so the order is total; the
// engine with the oldest work on the device can always grow to its share,
// and waits only ever go from younger work to older, so none is circular.
#pragma once

#include <cstdint>
#include <limits>

#include "runtime/batching/request.h"

namespace cohost::runtime {

// Engine::ReclaimKv's `wounder`: an engine may preempt to give memory back
// when its work (Engine::KvSeniority) is younger, a higher id, than this.
inline constexpr RequestId kPreemptAlways = std::numeric_limits<RequestId>::min();
inline constexpr RequestId kPreemptNever = std::numeric_limits<RequestId>::max();

class KvBudget {
 public:
  virtual ~KvBudget() = default;
  // Grants `bytes` more to this engine, whose work is as old as request
  // `oldest`, taking memory back from other engines of the device if it must
  // and may; false when it cannot now.
  virtual bool Acquire(int64_t bytes, RequestId oldest) = 0;
  // Gives `bytes` back (the engine has already unbacked them).
  virtual void Release(int64_t bytes) = 0;
};

}  // namespace cohost::runtime
