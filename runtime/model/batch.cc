// Batch::Validate: every index a kernel will follow is checked here, on the
// host, before any metadata reaches the device.
#include "runtime/model/batch.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_format.h"

namespace cohost::runtime {
namespace {

template <typename... Args>
absl::Status Fail(const absl::FormatSpec<Args...>& format, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrFormat(format, args...));
}

}  // namespace

int32_t Batch::max_query_len() const {
  int32_t longest = 0;
  for (size_t s = 0; s + 1 < seq_starts.size(); ++s) {
    longest = std::max(longest, seq_starts[s + 1] - seq_starts[s]);
  }
  return longest;
}

absl::Status Batch::Validate(int32_t num_blocks, int32_t block_size, int32_t vocab_size) const {
  if (num_blocks <= 0 || block_size <= 0) {
    return Fail("batch: cache geometry num_blocks=%d block_size=%d", num_blocks, block_size);
  }
  const int32_t ns = num_seqs();
  const int64_t nt = static_cast<int64_t>(token_ids.size());
  if (nt > INT32_MAX / 2) return Fail("batch: %d tokens is too many", nt);
  if (positions.size() != token_ids.size() || slot_mapping.size() != token_ids.size()) {
    return Fail("batch: %d token ids but %d positions and %d slots", nt, positions.size(),
                slot_mapping.size());
  }
  if (seq_starts.size() != static_cast<size_t>(ns) + 1) {
    return Fail("batch: %d sequences need %d seq_starts, got %d", ns, ns + 1, seq_starts.size());
  }
  if (seq_starts[0] != 0 || seq_starts[ns] != nt) {
    return Fail("batch: seq_starts must run from 0 to %d, got %d..%d", nt, seq_starts[0],
                seq_starts[ns]);
  }
  if (max_blocks_per_seq < 0 ||
      block_tables.size() != static_cast<size_t>(ns) * static_cast<size_t>(max_blocks_per_seq)) {
    return Fail("batch: block_tables has %d entries, expected %d sequences x %d",
                block_tables.size(), ns, max_blocks_per_seq);
  }
  for (size_t i = 0; i < block_tables.size(); ++i) {
    if (block_tables[i] < 0 || block_tables[i] >= num_blocks) {
      return Fail("batch: block_tables[%d] = %d outside [0, %d)", i, block_tables[i], num_blocks);
    }
  }
  for (int32_t s = 0; s < ns; ++s) {
    if (seq_starts[s + 1] < seq_starts[s]) {
      return Fail("batch: seq_starts decrease at sequence %d (%d -> %d)", s, seq_starts[s],
                  seq_starts[s + 1]);
    }
  }
  const int64_t capacity = static_cast<int64_t>(max_blocks_per_seq) * block_size;
  for (int32_t s = 0; s < ns; ++s) {
    const int32_t begin = seq_starts[s], end = seq_starts[s + 1];
    const int32_t ctx = context_lens[s];
    if (ctx < end - begin || ctx > capacity) {
      return Fail("batch: sequence %d has context_len %d with %d new tokens and room for %d", s,
                  ctx, end - begin, capacity);
    }
    const int32_t* table = block_tables.data() + static_cast<size_t>(s) * max_blocks_per_seq;
    for (int32_t i = begin; i < end; ++i) {
      const int32_t pos = positions[i];
      if (pos < 0 || pos >= ctx) {
        return Fail("batch: token %d (sequence %d) has position %d outside [0, %d)", i, s, pos,
                    ctx);
      }
      const int32_t slot = slot_mapping[i];
      if (slot == -1) continue;
      // The kernels write K/V at the slot but read it back through the block
      // table: the two must name the same (page, row).
      const int64_t want =
          static_cast<int64_t>(table[pos / block_size]) * block_size + pos % block_size;
      if (slot != want) {
        return Fail(
            "batch: token %d (sequence %d, position %d) has slot %d; its block table says %d", i, s,
            pos, slot, want);
      }
    }
  }
  for (int64_t i = 0; i < nt; ++i) {
    if (token_ids[i] < 0 || token_ids[i] >= vocab_size) {
      return Fail("batch: token_ids[%d] = %d outside vocab [0, %d)", i, token_ids[i], vocab_size);
    }
  }
  for (size_t r = 0; r < sample_rows.size(); ++r) {
    if (sample_rows[r] < 0 || sample_rows[r] >= nt) {
      return Fail("batch: sample_rows[%d] = %d outside [0, %d)", r, sample_rows[r], nt);
    }
  }
  return absl::OkStatus();
}

void FillSingleSequenceBatch(absl::Span<const int32_t> tokens, int32_t first_pos,
                             int32_t num_blocks, int32_t block_size, bool sample, Batch* b) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  b->token_ids.assign(tokens.begin(), tokens.end());
  b->positions.resize(n);
  b->slot_mapping.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t pos = first_pos + i;
    b->positions[i] = pos;
    b->slot_mapping[i] = (1 + pos / block_size) * block_size + pos % block_size;
  }
  b->seq_starts = {0, n};
  b->context_lens = {first_pos + n};
  b->max_blocks_per_seq = num_blocks - 1;
  b->block_tables.resize(num_blocks - 1);
  for (int32_t i = 0; i < num_blocks - 1; ++i) b->block_tables[i] = i + 1;
  b->sample_rows.clear();
  if (sample) b->sample_rows.push_back(n - 1);
}

}  // namespace cohost::runtime
