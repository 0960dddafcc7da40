// Test fixtures: a tiny random-weight Llama model and a byte-level tokenizer
// that fits its vocabulary, for engine and scheduler tests that need real
// forward passes without the default model.
#pragma once

#include <cstdint>

#include "runtime/loader/model_file.h"
#include "runtime/loader/tokenizer_spec.h"

namespace cohost::runtime::testing {

struct TinyModelOptions {
  int32_t vocab_size = 272;  // 256 byte tokens, an end token (256) and a few more
  int32_t max_position_embeddings = 256;
  uint32_t seed = 7;
  // The decoder's shape: tiny by default; the CUDA model test asks for the
  // head sizes its kernels take (64, 128).
  int32_t hidden_size = 32;
  int32_t intermediate_size = 48;
  int32_t num_layers = 2;
  int32_t num_heads = 4;
  int32_t num_kv_heads = 2;
  int32_t head_dim = 8;
  // Qwen3's per-head q and k norms (architecture "qwen3").
  bool qk_norm = false;
  // > 0: Qwen3-MoE ("qwen3moe", with qk_norm's norms): that many experts in
  // place of each FFN, 2 used a token, each intermediate_size wide.
  int32_t experts = 0;
};

ModelFile MakeTinyModelFile(const TinyModelOptions& options = {});

// Byte-level BPE with no merges: token b < 256 is byte b; token 256 is the
// end-of-sequence control token "<eos>"; the rest are normal tokens "<tN>".
TokenizerSpec MakeByteTokenizerSpec(int32_t vocab_size = 272);
// The same with a reasoning model's think tags as added (user-defined)
// tokens: "<think>" is kThinkOpen, "</think>" kThinkClose.
inline constexpr int32_t kThinkOpen = 270, kThinkClose = 271;
TokenizerSpec MakeThinkingTokenizerSpec();

}  // namespace cohost::runtime::testing
