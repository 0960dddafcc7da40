// A model as read from disk: its config, its tokenizer description and its
// tensors dequantized to fp32 on the host, under canonical (GGUF-style) names.
// LoadModelFile accepts a .gguf file or a Hugging Face directory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/model_config.h"
#include "runtime/loader/tokenizer_spec.h"

namespace cohost::runtime {

// Row-major fp32; a matrix of a linear layer is [out_features, in_features].
// A matrix kept as stored (LoadOptions::keep_quantized) holds its rows of
// blocks as they lie in the file instead, and `data` is empty: copied into
// `raw`, or (LoadOptions::map_weights, bytes that need no change) a view of
// the file's read-only mapping in `mapped`, which `mapping` keeps alive.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  GgmlType raw_type = GgmlType::kF32;  // the stored type when kept as stored
  std::vector<uint8_t> raw;
  absl::Span<const uint8_t> mapped;
  std::shared_ptr<const void> mapping;
  bool quantized() const { return !raw.empty() || !mapped.empty(); }
  // The stored bytes, wherever they are.
  absl::Span<const uint8_t> stored() const {
    return mapped.empty() ? absl::MakeConstSpan(raw) : mapped;
  }
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
// and in place of the three FFN matrices, in a model with experts
// (config.moe(); E = expert index, expert_inter = expert_intermediate_size):
//   blk.N.ffn_gate_inp.weight [num_experts, hidden] (the router)
//   blk.N.ffn_gate.E.weight, blk.N.ffn_up.E.weight [expert_inter, hidden]
//   blk.N.ffn_down.E.weight [hidden, expert_inter]
struct ModelFile {
  std::string path;
  ModelConfig config;
  TokenizerSpec tokenizer;
  absl::flat_hash_map<std::string, HostTensor> tensors;
};

// An expert's canonical tensor: blk.<layer>.<part>.<expert>.weight, part
// ffn_gate, ffn_up or ffn_down.
std::string ExpertTensorName(int32_t layer, absl::string_view part, int32_t expert);

// Every tensor `config` needs, canonical name -> row-major shape.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(
    const ModelConfig& config);

// UNIMPLEMENTED "<path>: tensor '<name>' ..." for the first of `names` (the
// file's, canonical where they have a canonical name) that the model does
// not use: a norm or bias of another architecture, or a layer past
// num_layers, would otherwise be left out of the computation unnoticed (as
// llama.cpp refuses "wrong number of tensors"). Llama 3's rope_freqs.weight
// (read into the config) and a tied model's output.weight (the embedding
// serves) are used.
absl::Status CheckNoUnusedTensors(const ModelConfig& config, const std::vector<std::string>& names,
                                  const std::string& path);

// Called with bytes processed so far and the total, from the loading thread.
using LoadProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

struct LoadOptions {
  bool load_tensors = true;  // false: config and tokenizer only (fast)
  // The matrices (the embedding too) stored in a block type (Q8_0, Q4_K, ...)
  // or in F16 / BF16 (KeepsRowsAsStored) stay as stored instead of becoming
  // fp32.
  bool keep_quantized = false;
  // With keep_quantized, for a backend whose memory is host memory: a kept
  // GGUF matrix that needs no change stays in the file's mapping (a view, no
  // copy: its pages are the page cache's, shared with other processes)
  // instead of being copied. Checked all the same.
  bool map_weights = false;
  LoadProgressFn progress;  // optional
};

// Dispatches on what `path` is: a .gguf file, or a directory holding
// config.json and model.safetensors / model.safetensors.index.json (and
// tokenizer.json or tokenizer.model). Every error names the file and the
// problem; a malformed file never crashes.
absl::StatusOr<ModelFile> LoadModelFile(const std::string& path, const LoadOptions& options = {});

}  // namespace cohost::runtime
