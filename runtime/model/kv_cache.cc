// KvCache: one K and one V allocation per layer, sized from the config.
#include "runtime/model/kv_cache.h"

#include <limits>

#include "absl/strings/str_format.h"

namespace cohost::runtime {

size_t KvCache::BytesPerBlock(const ModelConfig& config, kernels::DType dtype, int32_t block_size) {
  return 2 * static_cast<size_t>(config.num_layers) * static_cast<size_t>(block_size) *
         static_cast<size_t>(config.num_kv_heads) * static_cast<size_t>(config.head_dim) *
         kernels::DTypeSize(dtype);
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(kernels::Backend* backend,
                                                         const ModelConfig& config,
                                                         int32_t num_blocks, int32_t block_size) {
  if (backend == nullptr) return absl::InvalidArgumentError("kv cache: null backend");
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kv cache: num_blocks=%d and block_size=%d must be positive", num_blocks, block_size));
  }
  if (config.num_layers <= 0 || config.num_kv_heads <= 0 || config.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv cache: config has %d layers, %d kv heads, head_dim %d",
                        config.num_layers, config.num_kv_heads, config.head_dim));
  }
  const size_t row_elems = static_cast<size_t>(config.num_kv_heads) * config.head_dim;
  const size_t elem = kernels::DTypeSize(backend->compute_dtype());
  const size_t rows = static_cast<size_t>(num_blocks) * block_size;
  // num_blocks and block_size are int32, so rows * row_elems fits in 64 bits;
  // only the byte count can overflow.
  if (rows * row_elems > std::numeric_limits<size_t>::max() / elem) {
    return absl::ResourceExhaustedError("kv cache: size overflows");
  }
  const size_t layer_bytes = rows * row_elems * elem;

  std::unique_ptr<KvCache> kv(new KvCache());
  kv->num_blocks_ = num_blocks;
  kv->block_size_ = block_size;
  kv->num_kv_heads_ = config.num_kv_heads;
  kv->head_dim_ = config.head_dim;
  kv->k_.reserve(config.num_layers);
  kv->v_.reserve(config.num_layers);
  for (int32_t l = 0; l < config.num_layers; ++l) {
    for (auto* pages : {&kv->k_, &kv->v_}) {
      absl::StatusOr<kernels::DeviceBuffer> b = kernels::DeviceBuffer::Create(backend, layer_bytes);
      if (!b.ok()) {
        // Buffers allocated so far are released by kv's destructor.
        return absl::ResourceExhaustedError(absl::StrFormat(
            "kv cache: allocating %d blocks x %d tokens (%d bytes per layer, layer %d): %s",
            num_blocks, block_size, layer_bytes, l, b.status().message()));
      }
      pages->push_back(*std::move(b));
    }
  }
  return kv;
}

kernels::PagedKv KvCache::Layer(int32_t layer) const {
  kernels::PagedKv p;
  p.k = k_[layer].data();
  p.v = v_[layer].data();
  p.num_blocks = num_blocks_;
  p.block_size = block_size_;
  p.num_kv_heads = num_kv_heads_;
  p.head_dim = head_dim_;
  return p;
}

}  // namespace cohost::runtime
