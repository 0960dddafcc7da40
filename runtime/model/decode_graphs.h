// The decode steps a model has captured (Backend::Capture: CUDA graphs), one
// per step shape, so that a decode step is one launch instead of one per op.
// A shape is captured the second time it runs eagerly (the first grows
// whatever the ops need), and runs from its graph after that; one the
// backend refuses to capture stays eager. Everything an op is given must be
// the same at every step of a shape: the model keys graphs by what its
// pointers and sizes depend on, and Clears them whenever it reallocates.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "cohost/kernels/backend.h"

namespace cohost::runtime {

// What a decode step's ops depend on beyond the model's own buffers.
struct DecodeShape {
  int32_t tokens = 0;       // = sequences: one new token each
  int32_t samples = 0;      // rows sampled
  int32_t table_width = 0;  // block-table entries per sequence, bucketed
  uint64_t kv_cache = 0;    // KvCache::id(): its pages, block size and count

  bool operator==(const DecodeShape&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const DecodeShape& s) {
    return H::combine(std::move(h), s.tokens, s.samples, s.table_width, s.kv_cache);
  }
};

struct DecodeGraphStats {
  int64_t captures = 0;  // graphs made
  int64_t launches = 0;  // steps run from a graph
  int64_t refusals = 0;  // shapes the backend would not capture
};

class DecodeGraphs {
 public:
  // Graphs kept at most; past it, new shapes run eagerly.
  static constexpr size_t kMaxGraphs = 64;

  explicit DecodeGraphs(kernels::Backend* backend) : backend_(backend) {}

  // Queues the step: from `shape`'s graph, by capturing it, or by calling
  // `issue` (the step's ops) eagerly. A shape of another KV cache than the
  // last one's drops every graph and shape seen: those will not come again.
  absl::Status Run(const DecodeShape& shape, const std::function<void()>& issue);
  // Drops every graph (the model moved a buffer they point at, or the
  // backend its scratch); each shape is captured again at its next step,
  // one refused before too.
  void Clear();

  const DecodeGraphStats& stats() const { return stats_; }

 private:
  struct Entry {
    std::unique_ptr<kernels::OpGraph> graph;
    int32_t eager_runs = 0;
    bool refused = false;
  };

  kernels::Backend* backend_;
  // Drops every graph and every shape seen.
  void Reset();

  uint64_t epoch_ = 0;     // backend_->capture_epoch() the graphs were made in
  uint64_t kv_cache_ = 0;  // the KvCache::id() of the shapes seen: one at a time
  absl::flat_hash_map<DecodeShape, Entry> entries_;
  size_t graphs_ = 0;
  DecodeGraphStats stats_;
};

}  // namespace cohost::runtime
