#include "runtime/model/decode_graphs.h"

#include <utility>

namespace cohost::runtime {

absl::Status DecodeGraphs::Run(const DecodeShape& shape, const std::function<void()>& issue) {
  if (backend_->capture_epoch() != epoch_) {
    Clear();
    epoch_ = backend_->capture_epoch();
  }
  if (shape.kv_cache != kv_cache_) {
    Reset();  // the last cache's shapes will not come again
    kv_cache_ = shape.kv_cache;
  }
  auto it = entries_.find(shape);
  if (it == entries_.end()) {
    if (entries_.size() >= 4 * kMaxGraphs) Reset();  // shapes seen, bounded
    it = entries_.emplace(shape, Entry{}).first;
  }
  Entry& e = it->second;
  if (e.graph != nullptr) {
    ++stats_.launches;
    return e.graph->Launch();
  }
  if (e.refused || e.eager_runs == 0 || graphs_ >= kMaxGraphs) {
    ++e.eager_runs;
    issue();
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> graph = backend_->Capture(issue);
  if (!graph.ok()) {
    e.refused = true;
    ++stats_.refusals;
    issue();
    return absl::OkStatus();
  }
  // The captured ops did not run: this step runs from the graph.
  e.graph = *std::move(graph);
  ++graphs_;
  ++stats_.captures;
  ++stats_.launches;
  return e.graph->Launch();
}

void DecodeGraphs::Reset() {
  entries_.clear();
  graphs_ = 0;
}

void DecodeGraphs::Clear() {
  // The shapes' eager runs still count: what grew for them is in place. A
  // refusal is tried again: it may have been the growth, in the capture,
  // that the eager run after it did (a scratch the first step could not grow).
  for (auto& [shape, entry] : entries_) {
    entry.graph.reset();
    entry.refused = false;
  }
  graphs_ = 0;
}

}  // namespace cohost::runtime
