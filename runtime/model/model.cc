// Model::Create for the Llama family: every tensor checked against the config
// (a bad file is an error naming the tensor, never a crash), q/k/v and
// gate/up fused into one matrix each, everything uploaded to the backend.
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cohost/kernels/rope.h"
#include "common/status_macros.h"
#include "runtime/model/llama_model.h"

namespace cohost::runtime {
namespace {

using kernels::Backend;
using kernels::DeviceBuffer;

class TensorChecker {
 public:
  explicit TensorChecker(const ModelFile& file) : file_(file) {}

  // The tensor `name` with exactly `shape`, or INVALID_ARGUMENT naming it.
  absl::StatusOr<const HostTensor*> Get(const std::string& name,
                                        const std::vector<int64_t>& shape) const {
    auto it = file_.tensors.find(name);
    if (it == file_.tensors.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model %s: missing tensor '%s' [%s]", file_.path, name, absl::StrJoin(shape, ", ")));
    }
    const HostTensor& t = it->second;
    if (t.shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model %s: tensor '%s' has shape [%s], expected [%s]", file_.path, name,
                          absl::StrJoin(t.shape, ", "), absl::StrJoin(shape, ", ")));
    }
    if (static_cast<int64_t>(t.data.size()) != t.numel()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model %s: tensor '%s' holds %d values for shape [%s]", file_.path, name,
                          t.data.size(), absl::StrJoin(shape, ", ")));
    }
    return &t;
  }

 private:
  const ModelFile& file_;
};

absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const float* data, size_t n) {
  absl::StatusOr<DeviceBuffer> b =
      DeviceBuffer::Create(backend, n * kernels::DTypeSize(backend->compute_dtype()));
  if (!b.ok()) return b.status();
  RETURN_IF_ERROR(backend->UploadF32(b->data(), data, n));
  return b;
}

absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const HostTensor& t) {
  return Upload(backend, t.data.data(), t.data.size());
}

// Rows of each tensor in order, as one [sum(rows), cols] matrix.
absl::StatusOr<DeviceBuffer> UploadConcat(Backend* backend,
                                          const std::vector<const HostTensor*>& parts) {
  size_t n = 0;
  for (const HostTensor* t : parts) n += t->data.size();
  std::vector<float> joined;
  joined.reserve(n);
  for (const HostTensor* t : parts) joined.insert(joined.end(), t->data.begin(), t->data.end());
  return Upload(backend, joined.data(), joined.size());
}

}  // namespace

absl::StatusOr<LlamaWeights> UploadLlamaWeights(const ModelFile& file, Backend* backend) {
  const ModelConfig& c = file.config;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_rows = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_rows = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  TensorChecker check(file);
  LlamaWeights w;
  const HostTensor* t = nullptr;

  ASSIGN_OR_RETURN(t, check.Get("token_embd.weight", {vocab, hidden}));
  ASSIGN_OR_RETURN(w.token_embd, Upload(backend, *t));
  ASSIGN_OR_RETURN(t, check.Get("output_norm.weight", {hidden}));
  ASSIGN_OR_RETURN(w.output_norm, Upload(backend, *t));
  if (!c.tie_word_embeddings) {
    ASSIGN_OR_RETURN(t, check.Get("output.weight", {vocab, hidden}));
    ASSIGN_OR_RETURN(w.output, Upload(backend, *t));
  }

  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrFormat("blk.%d.", l);
    LlamaLayerWeights lw;
    const HostTensor *wq, *wk, *wv, *gate, *up;
    ASSIGN_OR_RETURN(t, check.Get(p + "attn_norm.weight", {hidden}));
    ASSIGN_OR_RETURN(lw.attn_norm, Upload(backend, *t));
    ASSIGN_OR_RETURN(wq, check.Get(p + "attn_q.weight", {q_rows, hidden}));
    ASSIGN_OR_RETURN(wk, check.Get(p + "attn_k.weight", {kv_rows, hidden}));
    ASSIGN_OR_RETURN(wv, check.Get(p + "attn_v.weight", {kv_rows, hidden}));
    ASSIGN_OR_RETURN(lw.wqkv, UploadConcat(backend, {wq, wk, wv}));
    if (c.attention_bias) {
      const HostTensor *bq, *bk, *bv;
      ASSIGN_OR_RETURN(bq, check.Get(p + "attn_q.bias", {q_rows}));
      ASSIGN_OR_RETURN(bk, check.Get(p + "attn_k.bias", {kv_rows}));
      ASSIGN_OR_RETURN(bv, check.Get(p + "attn_v.bias", {kv_rows}));
      ASSIGN_OR_RETURN(lw.bqkv, UploadConcat(backend, {bq, bk, bv}));
    }
    ASSIGN_OR_RETURN(t, check.Get(p + "attn_output.weight", {hidden, q_rows}));
    ASSIGN_OR_RETURN(lw.wo, Upload(backend, *t));
    ASSIGN_OR_RETURN(t, check.Get(p + "ffn_norm.weight", {hidden}));
    ASSIGN_OR_RETURN(lw.ffn_norm, Upload(backend, *t));
    ASSIGN_OR_RETURN(gate, check.Get(p + "ffn_gate.weight", {inter, hidden}));
    ASSIGN_OR_RETURN(up, check.Get(p + "ffn_up.weight", {inter, hidden}));
    ASSIGN_OR_RETURN(lw.w_gate_up, UploadConcat(backend, {gate, up}));
    ASSIGN_OR_RETURN(t, check.Get(p + "ffn_down.weight", {hidden, inter}));
    ASSIGN_OR_RETURN(lw.w_down, Upload(backend, *t));
    w.layers.push_back(std::move(lw));
  }

  // RoPE inverse frequencies stay fp32 on every backend (RopeWriteKv reads floats).
  kernels::RopeParams rope;
  rope.rotary_dim = c.head_dim;
  rope.theta = c.rope_theta;
  if (c.rope_scaling.kind == RopeScaling::Kind::kLlama3) {
    rope.llama3_factor = c.rope_scaling.factor;
    rope.llama3_low_freq_factor = c.rope_scaling.low_freq_factor;
    rope.llama3_high_freq_factor = c.rope_scaling.high_freq_factor;
    rope.llama3_original_max_position = c.rope_scaling.original_max_position_embeddings;
  }
  std::vector<float> inv_freq(c.head_dim / 2);
  kernels::RopeInvFreq(rope, inv_freq.data());
  ASSIGN_OR_RETURN(w.inv_freq, DeviceBuffer::Create(backend, inv_freq.size() * sizeof(float)));
  if (absl::Status s = backend->CopyToDevice(w.inv_freq.data(), inv_freq.data(),
                                             inv_freq.size() * sizeof(float));
      !s.ok()) {
    return s;
  }
  return w;
}

size_t Model::PredictWeightsBytes(const ModelConfig& config, kernels::DType dtype) {
  size_t elems = 0;
  for (const auto& [name, shape] : ExpectedTensors(config)) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    elems += n;
  }
  // The RoPE inverse frequencies stay fp32.
  return elems * kernels::DTypeSize(dtype) + static_cast<size_t>(config.head_dim / 2) * 4;
}

size_t Model::PredictWorkspaceBytes(const ModelConfig& config, kernels::DType dtype, int32_t tokens,
                                    int32_t samples) {
  const size_t elems = LlamaModel::InitialCapacity(tokens, false) * LlamaModel::TokenWidth(config) +
                       LlamaModel::InitialCapacity(samples, true) * LlamaModel::SampleWidth(config);
  return elems * kernels::DTypeSize(dtype);
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelFile& file, Backend* backend) {
  if (backend == nullptr) return absl::InvalidArgumentError("Model::Create: null backend");
  const ModelConfig& c = file.config;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("model %s: %s", file.path, s.message()));
  }
  if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2") {
    return absl::InvalidArgumentError(
        absl::StrFormat("model %s: architecture '%s' is not supported (llama, mistral, qwen2)",
                        file.path, c.architecture));
  }
  absl::StatusOr<LlamaWeights> w = UploadLlamaWeights(file, backend);
  if (!w.ok()) return w.status();
  return std::make_unique<LlamaModel>(c, backend, *std::move(w));
}

}  // namespace cohost::runtime
