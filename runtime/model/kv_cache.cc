// KvCache: one reserved K and one reserved V range per layer, backed a group of
// blocks at a time.
#include "runtime/model/kv_cache.h"

#include <atomic>
#include <limits>
#include <numeric>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

// Bytes of one block in one per-layer array.
size_t BlockArrayBytes(const ModelConfig& config, kernels::DType dtype, int32_t block_size) {
  return static_cast<size_t>(block_size) * static_cast<size_t>(config.num_kv_heads) *
         static_cast<size_t>(config.head_dim) * kernels::DTypeSize(dtype);
}

}  // namespace

size_t KvCache::BytesPerBlock(const ModelConfig& config, kernels::DType dtype, int32_t block_size) {
  return 2 * static_cast<size_t>(config.num_layers) * BlockArrayBytes(config, dtype, block_size);
}

int32_t KvCache::GroupBlocks(const ModelConfig& config, kernels::DType dtype, int32_t block_size,
                             size_t granularity, size_t min_group_bytes) {
  const size_t block = BlockArrayBytes(config, dtype, block_size);
  if (block == 0 || granularity == 0) return 1;
  // lcm(block, granularity) / block blocks tile the granule exactly.
  const size_t unit = granularity / std::gcd(block, granularity);
  const size_t per_block_all = BytesPerBlock(config, dtype, block_size);
  size_t units = 1;
  if (per_block_all > 0 && min_group_bytes > unit * per_block_all) {
    units = (min_group_bytes + unit * per_block_all - 1) / (unit * per_block_all);
  }
  const size_t blocks = unit * units;
  return blocks > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)
             ? std::numeric_limits<int32_t>::max() / 2
             : static_cast<int32_t>(blocks);
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(kernels::Backend* backend,
                                                         const ModelConfig& config,
                                                         int32_t num_blocks, int32_t block_size,
                                                         int32_t group_blocks,
                                                         int32_t initial_groups) {
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
  const kernels::DType dtype = backend->kv_dtype();
  const size_t granularity = backend->vm_granularity();
  const size_t block = BlockArrayBytes(config, dtype, block_size);
  const int32_t min_group = GroupBlocks(config, dtype, block_size, granularity, 0);
  if (group_blocks <= 0) group_blocks = min_group;
  if (group_blocks % min_group != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kv cache: %d blocks per group is not a multiple of %d, which the backend's %d-byte "
        "granules need",
        group_blocks, min_group, granularity));
  }
  const int64_t num_groups = (int64_t{num_blocks} + group_blocks - 1) / group_blocks;
  if (initial_groups < 0) initial_groups = static_cast<int32_t>(num_groups);
  if (initial_groups > num_groups) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv cache: %d groups backed of %d", initial_groups, num_groups));
  }
  // num_groups * group_blocks < 2^31 + group_blocks, so only bytes can overflow.
  const size_t rows = static_cast<size_t>(num_groups) * static_cast<size_t>(group_blocks);
  if (rows > std::numeric_limits<size_t>::max() / block) {
    return absl::ResourceExhaustedError("kv cache: size overflows");
  }

  std::unique_ptr<KvCache> kv(new KvCache());
  kv->backend_ = backend;
  kv->num_blocks_ = num_blocks;
  kv->block_size_ = block_size;
  kv->num_kv_heads_ = config.num_kv_heads;
  kv->head_dim_ = config.head_dim;
  kv->dtype_ = dtype;
  kv->group_blocks_ = group_blocks;
  kv->num_groups_ = static_cast<int32_t>(num_groups);
  static std::atomic<uint64_t> next_id{1};
  kv->id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  kv->backed_.assign(kv->num_groups_, false);
  kv->group_array_bytes_ = static_cast<size_t>(group_blocks) * block;
  kv->array_bytes_ = rows * block;
  for (int32_t l = 0; l < config.num_layers; ++l) {
    for (auto* arrays : {&kv->k_, &kv->v_}) {
      absl::StatusOr<void*> range = backend->ReserveAddressSpace(kv->array_bytes_);
      if (!range.ok()) {
        // Ranges reserved so far are given back by kv's destructor.
        return absl::ResourceExhaustedError(
            absl::StrFormat("kv cache: reserving %d blocks x %d tokens (%d bytes per layer, layer "
                            "%d): %s",
                            num_blocks, block_size, kv->array_bytes_, l, range.status().message()));
      }
      arrays->push_back(*range);
    }
  }
  for (int32_t g = 0; g < initial_groups; ++g) RETURN_IF_ERROR(kv->BackGroup(g));
  return kv;
}

KvCache::~KvCache() {
  for (int32_t g = 0; g < num_groups_; ++g) {
    if (backed_[g]) UnbackGroup(g).IgnoreError();  // nowhere to report; released anyway
  }
  for (const std::vector<void*>* arrays : {&k_, &v_}) {
    for (void* base : *arrays) backend_->ReleaseAddressSpace(base, array_bytes_);
  }
}

absl::Status KvCache::BackGroup(int32_t group) {
  if (group < 0 || group >= num_groups_ || backed_[group]) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv cache: backing group %d, which is %s", group,
                        group < 0 || group >= num_groups_ ? "out of range" : "backed"));
  }
  const size_t offset = static_cast<size_t>(group) * group_array_bytes_;
  // All arrays or none: a failure unbacks what this call backed.
  std::vector<void*> done;
  for (const std::vector<void*>* arrays : {&k_, &v_}) {
    for (void* base : *arrays) {
      void* at = static_cast<char*>(base) + offset;
      absl::Status s = backend_->BackRange(at, group_array_bytes_);
      if (!s.ok()) {
        for (void* p : done) backend_->UnbackRange(p, group_array_bytes_).IgnoreError();
        return absl::Status(s.code(), absl::StrFormat("kv cache: backing group %d (%d bytes): %s",
                                                      group, group_bytes(), s.message()));
      }
      done.push_back(at);
    }
  }
  backed_[group] = true;
  ++groups_backed_;
  return absl::OkStatus();
}

absl::Status KvCache::UnbackGroup(int32_t group) {
  if (group < 0 || group >= num_groups_ || !backed_[group]) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv cache: unbacking group %d, which is not backed", group));
  }
  const size_t offset = static_cast<size_t>(group) * group_array_bytes_;
  absl::Status result;
  for (const std::vector<void*>* arrays : {&k_, &v_}) {
    for (void* base : *arrays) {
      result.Update(backend_->UnbackRange(static_cast<char*>(base) + offset, group_array_bytes_));
    }
  }
  backed_[group] = false;
  --groups_backed_;
  return result;
}

kernels::PagedKv KvCache::Layer(int32_t layer) const {
  kernels::PagedKv p;
  p.k = k_[layer];
  p.v = v_[layer];
  p.num_blocks = num_blocks_;
  p.block_size = block_size_;
  p.num_kv_heads = num_kv_heads_;
  p.head_dim = head_dim_;
  p.dtype = dtype_;
  return p;
}

}  // namespace cohost::runtime
