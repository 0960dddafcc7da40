// Output a stream has produced but not yet written: engine deltas queued
// behind the write in flight, taken out as coalesced messages (text
// concatenated, token ids and their logprobs appended) of bounded size. Nothing is ever dropped
// or split: a single delta larger than the bound goes out alone. Not
// thread-safe (the reactor guards it).
#pragma once

#include <cstddef>
#include <deque>

#include "cohost/v1/inference.pb.h"
#include "runtime/batching/request.h"

namespace cohost::server {

class DeltaBacklog {
 public:
  // A delta's weight in a message: its text bytes, 4 per token id, 8 per
  // logprob entry.
  static size_t Bytes(const runtime::TokenDelta& d);
  // What a queued delta holds in memory beyond that (its own object).
  static constexpr size_t kHeldBytes = sizeof(runtime::TokenDelta);

  void Push(runtime::TokenDelta delta);
  // Appends the oldest deltas to out's text and token_ids while the message
  // stays within max_bytes (at least one delta when any is queued).
  void TakeInto(v1::GenerateResponse* out, size_t max_bytes);
  void Clear();

  bool empty() const { return deltas_.empty(); }
  // The memory the queued deltas hold: their weight and kHeldBytes each (a
  // one-token delta weighs a few bytes and holds a hundred).
  size_t bytes() const { return bytes_; }

 private:
  std::deque<runtime::TokenDelta> deltas_;
  size_t bytes_ = 0;
};

}  // namespace cohost::server
