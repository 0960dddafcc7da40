// The Llama-family decoder behind Model: its weights in device memory (q/k/v
// and gate/up fused at load, or kept as their parts where the backend took the
// loaded bytes over) and the activation buffers one Forward reuses.
// Internal to runtime/; everything else talks to Model.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/loader/model_file.h"
#include "runtime/model/model.h"
#include "runtime/model/moe_routing.h"

namespace cohost::runtime {

// A linear layer's matrix [rows, cols]: dense in the compute dtype, or rows of
// quantized blocks where the backend's Gemm takes them. A fused group (q, k,
// v; gate, up) is one buffer, or split into its parts, each in its own
// buffer and format: where the parts keep different block formats (q, k and
// v of a Q4_K_M file), and where the backend took each part's loaded bytes
// over (AdoptHostBytes, AdoptMapped) instead of copying them together.
struct WeightMatrix {
  struct Part {
    int64_t first_row = 0;
    kernels::WeightFormat format = kernels::WeightFormat::kDense;
    kernels::WeightLayout layout = kernels::WeightLayout::kRows;
    kernels::DeviceBuffer buf;
  };

  kernels::DeviceBuffer buf;                                     // every row, unless split
  kernels::WeightFormat format = kernels::WeightFormat::kDense;  // the first row's
  kernels::WeightLayout layout = kernels::WeightLayout::kRows;   // the first row's
  int64_t cols = 0;
  std::vector<Part> parts;  // empty unless split

  bool split() const { return !parts.empty(); }
  // All rows, for one Gemm; a split matrix needs a Gemm per part (RowsFrom).
  kernels::WeightRef Ref() const {
    return split() ? RowsFrom(0, 0) : kernels::WeightRef{buf.data(), format, layout};
  }
  // The rows from `row` on (dense elements are `elem_size` bytes); in a split
  // matrix, the Gemm that reads them must stay within `row`'s part, and in
  // panels `row` starts one (kPanelRows).
  kernels::WeightRef RowsFrom(int64_t row, size_t elem_size) const;
  // Bytes of every buffer.
  size_t bytes() const;
};

struct LlamaLayerWeights {
  kernels::DeviceBuffer attn_norm;  // [hidden]
  WeightMatrix wqkv;           // [(num_heads + 2 * num_kv_heads) * head_dim, hidden], rows q; k; v
  kernels::DeviceBuffer bqkv;  // [(num_heads + 2 * num_kv_heads) * head_dim] or empty
  kernels::DeviceBuffer q_norm;    // [head_dim] or empty (ModelConfig::qk_norm())
  kernels::DeviceBuffer k_norm;    // [head_dim] or empty
  WeightMatrix wo;                 // [hidden, num_heads * head_dim]
  kernels::DeviceBuffer ffn_norm;  // [hidden]
  WeightMatrix w_gate_up;          // [2 * inter, hidden], rows gate; up
  WeightMatrix w_down;             // [hidden, inter]
  // With experts (ModelConfig::moe()), in place of w_gate_up and w_down: the
  // router, and each expert's gate and up, and down, as the dense FFN's
  // (inter = expert_intermediate_size).
  WeightMatrix router;                       // [num_experts, hidden]
  std::vector<WeightMatrix> expert_gate_up;  // [num_experts] of [2 * inter, hidden]
  std::vector<WeightMatrix> expert_down;     // [num_experts] of [hidden, inter]
};

struct LlamaWeights {
  WeightMatrix token_embd;            // [vocab, hidden]; rows looked up, and the tied lm_head
  kernels::DeviceBuffer output_norm;  // [hidden]
  WeightMatrix output;                // [vocab, hidden]; empty when tied to token_embd
  kernels::DeviceBuffer inv_freq;     // fp32 [head_dim / 2], RoPE inverse frequencies
  std::vector<LlamaLayerWeights> layers;
};

// Checks every tensor of `file` against file.config (INVALID_ARGUMENT naming
// the tensor) and uploads them: in the backend's compute dtype, except the
// matrices the file kept quantized, which stay in their blocks when the
// backend's Gemm takes the format (and are dequantized when it does not).
// Each tensor's host copy is freed once it is on the device.
absl::StatusOr<LlamaWeights> UploadLlamaWeights(ModelFile& file, kernels::Backend* backend);

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, kernels::Backend* backend, LlamaWeights weights);

  const ModelConfig& config() const override { return config_; }
  kernels::Backend* backend() const override { return backend_; }
  size_t weights_bytes() const override { return weights_bytes_; }
  absl::Status ReserveWorkspace(int32_t tokens, int32_t samples) override {
    return Reserve(tokens, samples);
  }
  size_t workspace_bytes() const override;
  absl::Status Forward(const Batch& batch, KvCache& kv, std::vector<float>* logits) override;
  absl::Status ForwardSample(const Batch& batch, KvCache& kv, const SampleInputs& in,
                             SampledRows* out) override;
  absl::StatusOr<size_t> OffloadWeights() override;
  absl::Status RestoreWeights() override;
  bool weights_offloaded() const override { return !offloaded_.empty(); }
  void EnableDecodeGraphs(bool on) override;
  DecodeGraphStats decode_graph_stats() const override { return graphs_.stats(); }

  // Bytes of activations per token and per sampled row (activations of
  // `elem_size` bytes; fp32 router logits and logits), and the first
  // capacity Reserve allocates: what Model::PredictWorkspaceBytes uses.
  static size_t TokenBytes(const ModelConfig& c, size_t elem_size);
  static size_t SampleBytes(const ModelConfig& c, size_t elem_size);
  static size_t InitialCapacity(int32_t wanted, bool samples);

 private:
  // Every weight buffer that holds bytes, in a fixed order.
  std::vector<kernels::DeviceBuffer*> WeightBuffers();
  // Frees the activation, step and staging buffers (Reserve starts over).
  void FreeWorkspace();
  // Activation buffers for up to num_tokens new tokens and num_samples rows.
  absl::Status Reserve(int32_t num_tokens, int32_t num_samples);
  // The decoder on one batch, up to the fp32 logits of its sample rows in
  // logits_ (queued on the backend, not waited for).
  absl::Status Run(const Batch& batch, KvCache& kv);
  // What a step's ops are given beyond the model's buffers: the same at every
  // step of a captured shape.
  struct Step {
    int32_t tokens = 0, samples = 0;
    kernels::BatchLayout layout;  // over meta_
    const int32_t* ids = nullptr;
    const int32_t* rows = nullptr;
  };
  // The step's ops, queued on the backend (or recorded, under Capture).
  // A model with experts waits for each layer's router logits (MoeFfn).
  absl::Status Issue(const Step& step, const KvCache& kv);
  // out = the FFN's gate and up products of `rows` rows of x, [rows, 2 *
  // inter] (a product per part where `w` is split).
  void GateUp(const void* x, const WeightMatrix& w, int32_t rows, int32_t inter, void* out);
  // The mixture of experts on normed_'s T rows, into delta_: the router's
  // logits to the host, the tokens routed there (RouteTokens), each
  // expert's rows gathered and multiplied, and combined (MoeCombine).
  absl::Status MoeFfn(const LlamaLayerWeights& lw, int32_t T);
  // INVALID_ARGUMENT when p's starts do not index its terms by `rows` rows.
  static absl::Status CheckPenalties(const SamplePenalties& p, int32_t rows);
  // Uploads `p` (checked) and applies it to logits_'s first `rows` rows;
  // with `keep_raw`, the logits it moves are kept in penalties_ for
  // RestoreRawLogits.
  absl::Status ApplyPenalties(const SamplePenalties& p, int32_t rows, bool keep_raw);
  // Uploads `in`'s masks (checked) and applies them to logits_'s first
  // `rows` rows, where it has any.
  absl::Status ApplyMasks(const SampleInputs& in, int32_t rows);
  // Puts back the logits ApplyPenalties(p, rows, true) moved, so that the
  // logprobs read the model's distribution.
  void RestoreRawLogits(const SamplePenalties& p, int32_t rows);
  // Space for `bytes` of this step's uploads in host staging memory
  // (Backend::AllocateStaging: on CUDA a copy from it is a DMA the host does
  // not wait for), 64-byte aligned. A step's regions do not overlap; the
  // space is free again once the step's copies are done (FinishStep, or the
  // next Run where a step failed before it).
  absl::StatusOr<void*> StageSpace(size_t bytes);
  // Copies `bytes` from host memory to the device through the staging space.
  absl::Status Upload(void* dst, const void* src, size_t bytes);
  // A step's last call: waits for its work, so its staging space is free.
  absl::Status FinishStep();
  // Grows `buf` to at least `bytes` (twice that, at least 4 KB) where it is
  // smaller: buffers whose size depends on the step, not the capacity.
  absl::Status GrowBuffer(kernels::DeviceBuffer& buf, size_t bytes);
  // logits_'s rows of the batch's sample rows, to the host.
  absl::Status CopyLogits(const Batch& batch, std::vector<float>* logits);
  // Copies the step's int32 metadata to the device in one transfer and points
  // `layout`, `ids` and `rows` at it: block tables `table_width` entries per
  // sequence (at least the batch's), and the attention planned for contexts
  // up to `context_bound` (0: the batch's longest).
  absl::Status UploadMetadata(const Batch& batch, int32_t table_width, int32_t context_bound,
                              kernels::BatchLayout* layout, const int32_t** ids,
                              const int32_t** rows);
  // Byte offset `elems` elements of the compute dtype into `buf`.
  void* At(const kernels::DeviceBuffer& buf, int64_t elems) const {
    return static_cast<char*>(buf.data()) + elems * elem_size_;
  }

  ModelConfig config_;
  kernels::Backend* backend_;
  LlamaWeights w_;
  size_t elem_size_;
  size_t weights_bytes_ = 0;

  int32_t token_capacity_ = 0;
  int32_t sample_capacity_ = 0;
  // The buffers Reserve sizes for the largest step: the workspace.
  static const std::array<kernels::DeviceBuffer LlamaModel::*, 16> kWorkspace;
  kernels::DeviceBuffer x_;       // [tokens, hidden] residual stream
  kernels::DeviceBuffer delta_;   // [tokens, hidden] output of the last sublayer
  kernels::DeviceBuffer normed_;  // [tokens, hidden]
  // [tokens, (num_heads + 2 * num_kv_heads) * head_dim]: a row [q | k | v] per
  // token, as the QKV product writes it (kernels::QkvRows).
  kernels::DeviceBuffer qkv_;
  kernels::DeviceBuffer attn_;  // [tokens, num_heads * head_dim]
  // [tokens, 2 * ffn_width] and [tokens, ffn_width] (ModelConfig::ffn_width:
  // with experts, a token's k experts' rows, in the route's order).
  kernels::DeviceBuffer gate_up_;
  kernels::DeviceBuffer act_;
  // With experts: [tokens * k, hidden], the rows each expert multiplies, then
  // its products; [tokens, num_experts] fp32 router logits.
  kernels::DeviceBuffer moe_rows_;
  kernels::DeviceBuffer router_logits_;
  kernels::DeviceBuffer sample_x_, sample_delta_, sample_normed_;  // [samples, hidden]
  kernels::DeviceBuffer logits_;                                   // [samples, vocab] fp32
  kernels::DeviceBuffer sample_ids_;                               // [samples] int32 drawn tokens
  kernels::DeviceBuffer sample_specs_;                             // [samples] SampleSpec
  kernels::DeviceBuffer sample_logprobs_;  // [samples, 1 + kMaxTopLogprobs] TokenLogprob
  // A step's PenaltyTerms, their row starts, then (for logprobs) the logits
  // they moved: layout by PenaltyLayout.
  kernels::DeviceBuffer penalties_;
  kernels::DeviceBuffer masks_;  // a step's mask_of (padded to 8 bytes), then its masks
  kernels::DeviceBuffer meta_;   // int32 step metadata, see UploadMetadata
  // A layer's route on the device: token_of_row, row_of_pair (int32), weights (fp32).
  kernels::DeviceBuffer moe_meta_;
  std::vector<float> router_host_;  // the router logits, on the host
  ExpertRoute route_;
  std::vector<kernels::GemmPart> moe_parts_;  // a layer's experts' products
  // While offloaded: each weight buffer (emptied) and its host copy.
  struct Offloaded {
    kernels::DeviceBuffer* slot;
    kernels::DeviceBuffer host;
  };
  std::vector<Offloaded> offloaded_;
  kernels::DeviceBuffer staging_;  // host staging for a step's uploads (StageSpace)
  size_t staged_ = 0;              // bytes of it the step's copies use
  bool graphs_enabled_ = false;
  DecodeGraphs graphs_{backend_};
};

}  // namespace cohost::runtime
