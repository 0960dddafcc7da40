// Coalescing of queued stream output.

#include "server/delta_backlog.h"

#include <utility>

namespace cohost::server {

size_t DeltaBacklog::Bytes(const runtime::TokenDelta& d) {
  return d.text.size() + d.token_ids.size() * sizeof(int32_t);
}

void DeltaBacklog::Push(runtime::TokenDelta delta) {
  bytes_ += Bytes(delta);
  deltas_.push_back(std::move(delta));
}

void DeltaBacklog::TakeInto(v1::GenerateResponse* out, size_t max_bytes) {
  size_t taken = 0;
  while (!deltas_.empty()) {
    const runtime::TokenDelta& d = deltas_.front();
    const size_t b = Bytes(d);
    if (taken > 0 && taken + b > max_bytes) break;
    out->mutable_text()->append(d.text);
    out->mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
    taken += b;
    bytes_ -= b;
    deltas_.pop_front();
  }
}

void DeltaBacklog::Clear() {
  deltas_.clear();
  bytes_ = 0;
}

}  // namespace cohost::server
