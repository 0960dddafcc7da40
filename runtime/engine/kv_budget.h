// How an engine that shares its device's KV memory with other engines asks for
// more and gives it back: scheduler::KvPool implements this. Every call comes
// from the thread that steps the engines of the device.
#pragma once

#include <cstdint>

namespace cohost::runtime {

class KvBudget {
 public:
  virtual ~KvBudget() = default;
  // Grants `bytes` more to this engine, taking it back from other engines of
  // the device if it must and may; false when it cannot now.
  virtual bool Acquire(int64_t bytes) = 0;
  // Gives `bytes` back (the engine has already unbacked them).
  virtual void Release(int64_t bytes) = 0;
};

}  // namespace cohost::runtime
