// KvCache's groups on the CPU backend: the group geometry, backing and
// unbacking a prefix of groups, zeros after unbacking, and refusals.

#include "runtime/model/kv_cache.h"

#include <cstring>

#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  return c;
}

TEST(KvCacheGroupsTest, GroupBlocksTileTheGranule) {
  struct Case {
    int32_t kv_heads, head_dim, block_size;
    kernels::DType dtype;
    size_t granularity, min_group_bytes;
    int32_t want;
  };
  const Case cases[] = {
      // 16 x 3 x 64 x 4 = 12288 bytes a block per array: 3 pages, so 1 block.
      {3, 64, 16, kernels::DType::kF32, 4096, 0, 1},
      // 2048-byte blocks: 2 per 4 KiB page.
      {2, 64, 4, kernels::DType::kF32, 4096, 0, 2},
      // bf16 on a 2 MiB-granule GPU: 16 x 8 x 128 x 2 = 32 KiB, 64 blocks a granule.
      {8, 128, 16, kernels::DType::kBF16, size_t{2} << 20, 0, 64},
      // At least 1 MiB a group: 12288 x 2 layers x 2 = 49152 bytes a block -> 22 blocks.
      {3, 64, 16, kernels::DType::kF32, 4096, size_t{1} << 20, 22},
  };
  for (const Case& c : cases) {
    ModelConfig m = SmallConfig();
    m.num_kv_heads = c.kv_heads;
    m.head_dim = c.head_dim;
    EXPECT_EQ(KvCache::GroupBlocks(m, c.dtype, c.block_size, c.granularity, c.min_group_bytes),
              c.want)
        << c.kv_heads << "x" << c.head_dim << " block " << c.block_size;
  }
}

TEST(KvCacheGroupsTest, BacksAndUnbacksGroupsInAnyOrder) {
  auto backend = kernels::MakeCpuBackend(1);
  const ModelConfig c = SmallConfig();
  auto kv = KvCache::Create(backend.get(), c, /*num_blocks=*/10, /*block_size=*/16,
                            /*group_blocks=*/4, /*initial_groups=*/1);
  ASSERT_TRUE(kv.ok()) << kv.status();
  EXPECT_EQ((*kv)->num_groups(), 3) << "10 blocks in groups of 4";
  EXPECT_EQ((*kv)->num_groups_backed(), 1);
  EXPECT_EQ((*kv)->group_bytes(), size_t{4} * KvCache::BytesPerBlock(c, kernels::DType::kF32, 16));

  EXPECT_EQ((*kv)->BackGroup(0).code(), absl::StatusCode::kInvalidArgument) << "already backed";
  ASSERT_TRUE((*kv)->BackGroup(2).ok()) << "past a hole";
  ASSERT_TRUE((*kv)->BackGroup(1).ok());
  // Write into block 5 (group 1) and block 9 (group 2) of every array, then
  // give group 1 back: the CPU hands back zeros there, and group 2 keeps its
  // bytes.
  const size_t block_bytes = 16 * 3 * 64 * 4;
  for (int32_t l = 0; l < 2; ++l) {
    for (void* base : {(*kv)->Layer(l).k, (*kv)->Layer(l).v}) {
      std::memset(static_cast<char*>(base) + 5 * block_bytes, 0x5a, block_bytes);
      std::memset(static_cast<char*>(base) + 9 * block_bytes, 0x5b, block_bytes);
    }
  }
  ASSERT_TRUE((*kv)->UnbackGroup(1).ok());
  EXPECT_EQ((*kv)->UnbackGroup(1).code(), absl::StatusCode::kInvalidArgument) << "not backed";
  EXPECT_EQ((*kv)->num_groups_backed(), 2);
  EXPECT_FALSE((*kv)->IsBacked(1));
  const auto* k5 = static_cast<const unsigned char*>((*kv)->Layer(1).k) + 5 * block_bytes;
  for (size_t i = 0; i < block_bytes; i += 512) EXPECT_EQ(k5[i], 0) << i;
  const auto* v9 = static_cast<const unsigned char*>((*kv)->Layer(1).v) + 9 * block_bytes;
  for (size_t i = 0; i < block_bytes; i += 512) EXPECT_EQ(v9[i], 0x5b) << i;
  ASSERT_TRUE((*kv)->BackGroup(1).ok());
  EXPECT_EQ((*kv)->BackGroup(3).code(), absl::StatusCode::kInvalidArgument) << "past the end";
  EXPECT_EQ((*kv)->BackGroup(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*kv)->num_groups_backed(), 3);
}

TEST(KvCacheGroupsTest, RefusesGeometryTheBackendCannotBack) {
  auto backend = kernels::MakeCpuBackend(1);
  ModelConfig c = SmallConfig();
  c.num_kv_heads = 2;  // 2048-byte blocks: groups must be whole pages, so even
  EXPECT_EQ(KvCache::Create(backend.get(), c, 8, 4, /*group_blocks=*/3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(KvCache::Create(backend.get(), c, 8, 4, /*group_blocks=*/4).ok());
  EXPECT_EQ(KvCache::Create(backend.get(), c, 8, 4, 2, /*initial_groups=*/5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KvCache::Create(backend.get(), c, 0, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::runtime
