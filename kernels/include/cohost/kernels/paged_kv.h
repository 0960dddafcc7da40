// The paged KV cache as every attention kernel sees it: the one contract
// between the runtime's block bookkeeping and the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "cohost/kernels/dtype.h"

namespace cohost::kernels {

// One layer's K and V pages. Logical token t of a sequence lives in page
// block_table[t / block_size] at row t % block_size.
struct PagedKv {
  void* k = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim] of `dtype`
  void* v = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim] of `dtype`
  int32_t num_blocks = 0;
  int32_t block_size = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  // The backend's kv_dtype(): fp32, fp16 or bf16 on the CPU (RopeWriteKv
  // rounds to it, attention widens it back); bf16 on CUDA.
  DType dtype = DType::kF32;
};

// A flattened varlen batch: the new tokens of num_seqs sequences concatenated.
// Every pointer is device memory (host memory for the CPU backend).
struct BatchLayout {
  const int32_t* seq_starts = nullptr;  // [num_seqs + 1] offsets into the new tokens
  const int32_t* context_lens =
      nullptr;  // [num_seqs] tokens in cache after this step, new ones included
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq] page ids
  const int32_t* positions = nullptr;     // [num_tokens] logical position of each new token
  const int32_t* slot_mapping =
      nullptr;  // [num_tokens] page * block_size + row; -1 = padding, not written
  int32_t num_seqs = 0;
  int32_t num_tokens = 0;
  int32_t max_blocks_per_seq = 0;
  // The longest new-token run of one sequence; 0: unknown (num_tokens bounds
  // it then). Given, it must bound every run: the CUDA kernels size their
  // grid by it (rows past it would go unwritten).
  int32_t max_query_len = 0;
  int32_t max_context_len = 0;  // longest context_lens entry (planning hint)
};

// A step's q, k and v: token t's heads start at q + t * q_stride and at
// k, v + t * kv_stride (elements). The model's one QKV product writes them as
// a single [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim] tensor of
// rows [q | k | v], so both strides are its width; three dense tensors have
// num_heads * head_dim and num_kv_heads * head_dim (Dense).
struct QkvRows {
  void* q = nullptr;
  void* k = nullptr;
  const void* v = nullptr;
  int64_t q_stride = 0;
  int64_t kv_stride = 0;

  static QkvRows Dense(void* q, void* k, const void* v, int32_t num_heads, int32_t num_kv_heads,
                       int32_t head_dim) {
    return {q, k, v, static_cast<int64_t>(num_heads) * head_dim,
            static_cast<int64_t>(num_kv_heads) * head_dim};
  }
};

}  // namespace cohost::kernels
