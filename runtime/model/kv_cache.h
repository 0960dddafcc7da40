// Device storage of the paged KV cache: per layer, K and V pages of
// [num_blocks, block_size, num_kv_heads, head_dim] in the backend's kv_dtype(). Which
// sequence owns which block is the BlockAllocator's business, not this file's.
//
// Each per-layer array is a reserved address range (Backend::ReserveAddressSpace)
// backed with memory a group of blocks at a time: group g is blocks
// [g * group_blocks, (g + 1) * group_blocks), the same offsets in all 2 x layers
// arrays, and group_blocks is chosen so that every array's share of a group is
// a whole number of the backend's VM granules. A fixed pool backs every group at
// creation; an elastic one (an engine sharing a device's KV pool) backs and
// unbacks groups as its share grows and shrinks. Pointers never move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/paged_kv.h"
#include "runtime/loader/model_config.h"

namespace cohost::runtime {

class KvCache {
 public:
  // Bytes one block takes across all layers, K and V.
  static size_t BytesPerBlock(const ModelConfig& config, kernels::DType dtype, int32_t block_size);

  // The smallest number of blocks per group that makes each per-layer array's
  // share a multiple of `granularity` and a group (all layers, K and V) at
  // least `min_group_bytes`.
  static int32_t GroupBlocks(const ModelConfig& config, kernels::DType dtype, int32_t block_size,
                             size_t granularity, size_t min_group_bytes);

  // Room for num_blocks blocks in groups of group_blocks (0: the smallest the
  // backend allows), of which the first initial_groups (-1: all) are backed.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(kernels::Backend* backend,
                                                         const ModelConfig& config,
                                                         int32_t num_blocks, int32_t block_size,
                                                         int32_t group_blocks = 0,
                                                         int32_t initial_groups = -1);
  ~KvCache();  // unbacks every group and gives the address space back
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Backs group g (the backend's RESOURCE_EXHAUSTED when it has no memory;
  // nothing changes then) or unbacks it, in any order, as the BlockAllocator's
  // groups are added and drained.
  absl::Status BackGroup(int32_t group);
  absl::Status UnbackGroup(int32_t group);

  kernels::PagedKv Layer(int32_t layer) const;
  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_layers() const { return static_cast<int32_t>(k_.size()); }
  kernels::DType dtype() const { return dtype_; }
  int32_t group_blocks() const { return group_blocks_; }
  int32_t num_groups() const { return num_groups_; }
  int32_t num_groups_backed() const { return groups_backed_; }
  // Unique among the caches this process has made, so that what was made for
  // one cache (a captured decode graph) is never used with another, even one
  // mapped where an earlier one was.
  uint64_t id() const { return id_; }
  bool IsBacked(int32_t group) const { return group >= 0 && group < num_groups_ && backed_[group]; }
  // Memory one group takes, all layers, K and V.
  size_t group_bytes() const { return 2 * k_.size() * group_array_bytes_; }

 private:
  KvCache() = default;
  kernels::Backend* backend_ = nullptr;
  std::vector<void*> k_, v_;      // per layer: reserved ranges of array_bytes_ each
  size_t array_bytes_ = 0;        // one layer's K (or V) range
  size_t group_array_bytes_ = 0;  // one group's share of one array
  int32_t num_blocks_ = 0, block_size_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
  int32_t group_blocks_ = 0, num_groups_ = 0, groups_backed_ = 0;
  std::vector<bool> backed_;  // [num_groups]
  kernels::DType dtype_ = kernels::DType::kF32;
  uint64_t id_ = 0;
};

}  // namespace cohost::runtime
