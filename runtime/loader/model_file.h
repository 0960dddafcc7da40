// A model as read from disk: its config, its tokenizer description and its
// tensors dequantized to fp32 on the host, under canonical (GGUF-style) names.
// LoadModelFile accepts a .gguf file or a Hugging Face directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/model_config.h"
#include "runtime/loader/tokenizer_spec.h"

namespace cohost::runtime {

// Row-major fp32; a matrix of a linear layer is [out_features, in_features].
// A matrix kept quantized (LoadOptions::keep_quantized) holds its rows of
// blocks as they lie in the file in `raw` instead, and `data` is empty.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  GgmlType raw_type = GgmlType::kF32;  // a block type (Q4_K, ...) when raw is set
  std::vector<uint8_t> raw;
  bool quantized() const { return !raw.empty(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Canonical tensor names (N = layer index):
//   token_embd.weight [vocab, hidden]          output_norm.weight [hidden]
//   output.weight [vocab, hidden] (absent when tied to token_embd)
//   blk.N.attn_norm.weight [hidden]            blk.N.ffn_norm.weight [hidden]
//   blk.N.attn_q.weight [heads*head_dim, hidden]  (rotate-half RoPE order)
//   blk.N.attn_k.weight [kv_heads*head_dim, hidden] (rotate-half RoPE order)
//   blk.N.attn_v.weight [kv_heads*head_dim, hidden]
//   blk.N.attn_q.bias / attn_k.bias / attn_v.bias (when config.attention_bias)
//   blk.N.attn_output.weight [hidden, heads*head_dim]
//   blk.N.ffn_gate.weight, blk.N.ffn_up.weight [inter, hidden]
//   blk.N.ffn_down.weight [hidden, inter]
struct ModelFile {
  std::string path;
  ModelConfig config;
  TokenizerSpec tokenizer;
  absl::flat_hash_map<std::string, HostTensor> tensors;
};

// Every tensor `config` needs, canonical name -> row-major shape.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(
    const ModelConfig& config);

// Called with bytes processed so far and the total, from the loading thread.
using LoadProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

struct LoadOptions {
  bool load_tensors = true;  // false: config and tokenizer only (fast)
  // The matrices (the embedding too) stored in a block type (Q8_0, Q4_K, ...)
  // stay in their blocks instead of becoming fp32.
  bool keep_quantized = false;
  LoadProgressFn progress;  // optional
};

// Dispatches on what `path` is: a .gguf file, or a directory holding
// config.json and model.safetensors / model.safetensors.index.json (and
// tokenizer.json or tokenizer.model). Every error names the file and the
// problem; a malformed file never crashes.
absl::StatusOr<ModelFile> LoadModelFile(const std::string& path, const LoadOptions& options = {});

}  // namespace cohost::runtime
