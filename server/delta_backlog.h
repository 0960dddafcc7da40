// Output a stream has produced but not yet written: engine deltas (and the
// reasoning and calls split from their text, if any) queued behind the write
// in flight, taken out as coalesced messages (text and reasoning
// concatenated, token ids, their logprobs and the calls appended, a streamed
// call's pieces joined) of bounded size. Nothing is ever dropped or split: a
// single delta larger than the bound goes out alone. Not thread-safe (the
// reactor guards it).
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "cohost/v1/inference.pb.h"
#include "runtime/batching/request.h"
#include "runtime/tokenizer/tool_call_split.h"

namespace cohost::server {

class DeltaBacklog {
 public:
  // A delta's weight in a message: its text, reasoning and calls' bytes, 4
  // per token id, 8 per logprob entry.
  static size_t Bytes(const runtime::TokenDelta& d, size_t split_bytes = 0);

  // What a queued delta holds in memory beyond that (its own object, and
  // its reasoning's).
  static constexpr size_t kHeldBytes = sizeof(runtime::TokenDelta) + sizeof(std::string);

  // `reasoning`, `calls`: split from the delta's text (which holds the rest).
  void Push(runtime::TokenDelta delta, std::string reasoning = {},
            std::vector<runtime::ParsedToolCall> calls = {});
  // Appends the oldest deltas to out's text and token_ids while the message
  // stays within max_bytes (at least one delta when any is queued).
  void TakeInto(v1::GenerateResponse* out, size_t max_bytes);
  void Clear();

  bool empty() const { return entries_.empty(); }
  // The memory the queued deltas hold: their weight and kHeldBytes each (a
  // one-token delta weighs a few bytes and holds a hundred).
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    runtime::TokenDelta delta;
    std::string reasoning;
    std::vector<runtime::ParsedToolCall> calls;
    size_t split_bytes = 0;  // of the reasoning and calls
  };
  std::deque<Entry> entries_;
  size_t bytes_ = 0;
};

}  // namespace cohost::server
