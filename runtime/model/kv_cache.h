// Device storage of the paged KV cache: per layer, K and V pages of
// [num_blocks, block_size, num_kv_heads, head_dim] in the compute dtype. Which
// sequence owns which block is the BlockAllocator's business, not this file's.
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

  static absl::StatusOr<std::unique_ptr<KvCache>> Create(kernels::Backend* backend,
                                                         const ModelConfig& config,
                                                         int32_t num_blocks, int32_t block_size);

  kernels::PagedKv Layer(int32_t layer) const;
  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_layers() const { return static_cast<int32_t>(k_.size()); }

 private:
  KvCache() = default;
  std::vector<kernels::DeviceBuffer> k_, v_;
  int32_t num_blocks_ = 0, block_size_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
};

}  // namespace cohost::runtime
