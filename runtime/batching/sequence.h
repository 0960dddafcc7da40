// The scheduler's view of one request: its tokens, how many have K/V in the
// cache, its block table and its queue state. Owned by the engine thread.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/batching/block_allocator.h"
#include "runtime/batching/request.h"

namespace cohost::runtime {

enum class SeqStatus : uint8_t { kWaiting, kRunning, kFinished };

struct Sequence {
  RequestId id = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t num_prompt_tokens = 0;
  int32_t max_tokens = 0;   // generated tokens at most
  uint64_t cache_salt = 0;  // tenant salt for prefix hashes
  // Its tenant for fair sharing (FairShare: a hash of the name, 0 for none)
  // and the tenant's weight.
  uint64_t tenant_key = 0;
  double tenant_weight = 1;

  SeqStatus status = SeqStatus::kWaiting;
  int32_t num_computed_tokens = 0;  // tokens whose K/V are in the cache
  // Of the prompt, served from the prefix cache at its first admission.
  int32_t num_cached_prompt_tokens = 0;
  std::vector<BlockId> block_table;
  // Hashes of the full blocks of `tokens` computed so far (a prefix of
  // block_table once those blocks are cached).
  std::vector<BlockHash> block_hashes;
  // Leading entries of block_table already offered to the prefix cache (found
  // there or registered by KvCacheManager::CacheFullBlocks); reset by Free.
  int32_t num_cached_blocks = 0;

  int32_t num_preemptions = 0;
  // Set when preempted; cleared when the sequence samples a new token. A
  // sequence with this set is never chosen as a preemption victim (no thrashing).
  bool resumed_without_progress = false;
  int64_t arrival_order = 0;  // submission order, for FIFO admission
  int32_t priority = 0;       // higher is admitted first among waiting sequences
  int64_t start_order = -1;   // when it last started running; the newest is preempted first

  int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - num_prompt_tokens; }
  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  // Tokens still to compute before the sequence can sample.
  int32_t num_uncomputed() const { return num_tokens() - num_computed_tokens; }
};

}  // namespace cohost::runtime
