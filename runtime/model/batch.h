// runtime::Batch: one step's flattened varlen batch, exactly the metadata the
// kernels read (docs/architecture.md, "Paged KV layout").
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace cohost::runtime {

struct Batch {
  std::vector<int32_t> token_ids;     // [num_tokens] new tokens of all sequences, concatenated
  std::vector<int32_t> positions;     // [num_tokens] logical position of each new token
  std::vector<int32_t> seq_starts;    // [num_seqs + 1] offsets into token_ids
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq], padded with 0 (null block)
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> context_lens;  // [num_seqs] tokens cached after this step, new ones included
  std::vector<int32_t> slot_mapping;  // [num_tokens] block * block_size + row; -1 = padding
  std::vector<int32_t> sample_rows;   // token indices whose logits Forward returns, in order

  int32_t num_seqs() const { return static_cast<int32_t>(context_lens.size()); }
  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  // The longest run of new tokens of one sequence (1 in a decode step).
  int32_t max_query_len() const;

  // Internal consistency and bounds against the cache geometry and vocab; the
  // runtime builds batches, so a failure here is a bug upstream, reported
  // instead of letting a kernel read out of bounds.
  absl::Status Validate(int32_t num_blocks, int32_t block_size, int32_t vocab_size) const;
};

// Fills *b with one sequence whose K/V lives in blocks 1..num_blocks-1 in order
// (block 0 is the null block): new tokens at positions [first_pos, first_pos +
// tokens.size()), returning the last one's logits when `sample`. The layout of
// the one-sequence Generator, the reference tests and the benchmarks.
void FillSingleSequenceBatch(absl::Span<const int32_t> tokens, int32_t first_pos,
                             int32_t num_blocks, int32_t block_size, bool sample, Batch* b);

}  // namespace cohost::runtime
