// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM2) over a
// kernels::Backend: weights in device memory and one Forward per step.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cohost/kernels/backend.h"
#include "runtime/loader/model_config.h"
#include "runtime/loader/model_file.h"
#include "runtime/model/batch.h"
#include "runtime/model/decode_graphs.h"
#include "runtime/model/kv_cache.h"

namespace cohost::runtime {

// The penalty terms of a step's sample rows (Backend::ApplyPenalties): row
// r's are terms[starts[r], starts[r + 1]). Empty: no row has any.
struct SamplePenalties {
  std::vector<int32_t> starts;
  std::vector<kernels::PenaltyTerm> terms;
};

// What Model::ForwardSample draws a step's sample rows with.
struct SampleInputs {
  std::vector<kernels::SampleSpec> specs;  // one per sample row; temperature 0: the argmax
  SamplePenalties penalties;
  // >= 0: every row's logprobs (Backend::RowLogprobs) under its raw logits,
  // before penalties, with this many alternatives (at most
  // kernels::kMaxTopLogprobs; fewer where the vocabulary is smaller).
  int32_t top_logprobs = -1;
  // Grammar masks (Backend::MaskRows), applied before the penalties: empty,
  // or one per sample row, -1 where the row has none, else the index of its
  // mask in `masks` (words of (vocab + 63) / 64 bits each).
  std::vector<int32_t> mask_of;
  std::vector<uint64_t> masks;
};

// What Model::ForwardSample brings back to the host.
struct SampledRows {
  std::vector<int32_t> ids;  // one per sample row
  // Row r's {chosen, then `top` alternatives} at logprobs[r * (1 + top)];
  // empty unless SampleInputs::top_logprobs >= 0.
  std::vector<kernels::TokenLogprob> logprobs;
  int32_t top = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  // Checks every tensor's presence and shape against file.config, then uploads
  // the weights in the backend's compute dtype, freeing each tensor's host
  // copy once it is uploaded (pass the file with std::move; a copy keeps the
  // caller's).
  static absl::StatusOr<std::unique_ptr<Model>> Create(ModelFile file, kernels::Backend* backend);

  // Whether a load onto `backend` keeps linear layers in their quantized
  // blocks (its Gemm takes every block format).
  static bool KeepsQuantizedWeights(const kernels::Backend& backend);

  // Device memory Create will allocate for the weights of a model with
  // `config` on a backend computing in `dtype` (keeping quantized weights
  // quantized, if `keep_quantized`, by config.stored_types): what placement
  // plans with before loading (weights_bytes() of the result equals it).
  static size_t PredictWeightsBytes(const ModelConfig& config, kernels::DType dtype,
                                    bool keep_quantized = false);

  // Device memory for the activations of a step of up to `tokens` new tokens
  // and `samples` sampled rows, once ReserveWorkspace(tokens, samples) has run
  // on a fresh model (workspace_bytes() then equals it).
  static size_t PredictWorkspaceBytes(const ModelConfig& config, kernels::DType dtype,
                                      int32_t tokens, int32_t samples);

  virtual const ModelConfig& config() const = 0;
  virtual kernels::Backend* backend() const = 0;
  // Device memory its weights take, as allocated on the backend.
  virtual size_t weights_bytes() const = 0;
  // Allocates the activations of the largest step now, so that steps up to it
  // allocate nothing; RESOURCE_EXHAUSTED when the device is full.
  virtual absl::Status ReserveWorkspace(int32_t tokens, int32_t samples) = 0;
  // Device memory the activations take now, without what a step sizes for
  // itself: its int32 metadata and its penalty terms (with, for logprobs,
  // the logits they move), a few bytes per term.
  virtual size_t workspace_bytes() const = 0;

  // Runs one flattened batch; writes the logits of batch.sample_rows, in order,
  // to *logits as [sample_rows.size(), vocab_size] host floats. K/V of the new
  // tokens are written into `kv` at batch.slot_mapping.
  virtual absl::Status Forward(const Batch& batch, KvCache& kv, std::vector<float>* logits) = 0;
  // Forward that samples on the device: the token of each row of
  // batch.sample_rows, in order, drawn as in.specs say (Backend::SampleRows;
  // temperature 0 is the Sampler's greedy choice), after in.penalties move
  // its logits (Backend::ApplyPenalties), with logprobs where asked. Only ids
  // and logprobs cross to the host, never a row of logits.
  virtual absl::Status ForwardSample(const Batch& batch, KvCache& kv, const SampleInputs& in,
                                     SampledRows* out) = 0;

  // Where the backend's memory is its own (a GPU): copies the weights into
  // host staging memory (Backend::AllocateStaging; page-locked on CUDA) and
  // frees them and every activation and step buffer on the device, so that
  // an evicted model comes back with one copy instead of reading its file
  // (vLLM's sleep level 1). Returns the host bytes it then holds.
  // FAILED_PRECONDITION where the backend adopts host memory (the CPU
  // reloads from the page cache) or the weights are already offloaded;
  // RESOURCE_EXHAUSTED where host memory runs out (nothing changed then).
  virtual absl::StatusOr<size_t> OffloadWeights() = 0;
  // The offloaded weights back on the device, the host copy freed;
  // RESOURCE_EXHAUSTED when the device is full (still offloaded then).
  // FAILED_PRECONDITION unless they were offloaded.
  virtual absl::Status RestoreWeights() = 0;
  virtual bool weights_offloaded() const = 0;

  // Decode steps (one new token per sequence) run from captured graphs
  // (DecodeGraphs) where the backend captures ops, and the model has no
  // experts (their routes are planned on the host); off by default.
  virtual void EnableDecodeGraphs(bool on) = 0;
  virtual DecodeGraphStats decode_graph_stats() const = 0;
};

}  // namespace cohost::runtime
