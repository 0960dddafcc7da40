// Model::Create for the Llama family: every tensor checked against the config
// (a bad file is an error naming the tensor, never a crash), q/k/v and
// gate/up fused into one matrix each, everything uploaded to the backend.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/panels.h"
#include "cohost/kernels/quant.h"
#include "cohost/kernels/rope.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/mapped_file.h"
#include "runtime/model/llama_model.h"

namespace cohost::runtime {
namespace {

using kernels::Backend;
using kernels::DeviceBuffer;

class TensorChecker {
 public:
  explicit TensorChecker(ModelFile& file) : file_(file) {}

  // The tensor `name` with exactly `shape`, or INVALID_ARGUMENT naming it.
  absl::StatusOr<HostTensor*> Get(const std::string& name,
                                  const std::vector<int64_t>& shape) const {
    auto it = file_.tensors.find(name);
    if (it == file_.tensors.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model %s: missing tensor '%s' [%s]", file_.path, name, absl::StrJoin(shape, ", ")));
    }
    HostTensor& t = it->second;
    if (t.shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model %s: tensor '%s' has shape [%s], expected [%s]", file_.path, name,
                          absl::StrJoin(t.shape, ", "), absl::StrJoin(shape, ", ")));
    }
    if (t.quantized()) {
      const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(t.raw_type));
      if (traits == nullptr || t.shape.size() != 2 || t.shape[1] % traits->block_elems != 0 ||
          static_cast<int64_t>(t.stored().size()) !=
              t.numel() / traits->block_elems * traits->block_bytes) {
        return absl::InvalidArgumentError(
            absl::StrFormat("model %s: tensor '%s' holds %d bytes of blocks for shape [%s]",
                            file_.path, name, t.stored().size(), absl::StrJoin(shape, ", ")));
      }
      return &t;
    }
    if (static_cast<int64_t>(t.data.size()) != t.numel()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model %s: tensor '%s' holds %d values for shape [%s]", file_.path, name,
                          t.data.size(), absl::StrJoin(shape, ", ")));
    }
    return &t;
  }

 private:
  ModelFile& file_;
};

// Frees the host copies of tensors now on the device, as the load goes, so
// that the host and device copies of the whole model never coexist (on the
// CPU both are RAM: the peak was twice the weights).
void Release(std::initializer_list<HostTensor*> tensors) {
  for (HostTensor* t : tensors) {
    std::vector<float>().swap(t->data);
    std::vector<uint8_t>().swap(t->raw);
    t->mapped = {};
    t->mapping.reset();
  }
}

absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const float* data, size_t n) {
  absl::StatusOr<DeviceBuffer> b =
      DeviceBuffer::Create(backend, n * kernels::DTypeSize(backend->compute_dtype()));
  if (!b.ok()) return b.status();
  RETURN_IF_ERROR(backend->UploadF32(b->data(), data, n));
  return b;
}

// Rows of each tensor in order, as one [sum(rows), cols] matrix (of dense
// tensors; a quantized one is dequantized first).
absl::StatusOr<DeviceBuffer> UploadConcat(Backend* backend,
                                          const std::vector<const HostTensor*>& parts) {
  size_t n = 0;
  for (const HostTensor* t : parts) n += static_cast<size_t>(t->numel());
  std::vector<float> joined(n);
  size_t at = 0;
  for (const HostTensor* t : parts) {
    const auto count = static_cast<size_t>(t->numel());
    if (t->quantized()) {
      RETURN_IF_ERROR(DequantizeToF32(t->raw_type, t->stored(), t->numel(),
                                      absl::MakeSpan(joined.data() + at, count)));
    } else {
      std::copy(t->data.begin(), t->data.end(), joined.begin() + static_cast<ptrdiff_t>(at));
    }
    at += count;
  }
  return Upload(backend, joined.data(), joined.size());
}

absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const HostTensor& t) {
  return UploadConcat(backend, {&t});
}

// The format a Gemm takes for a stored type kept as it came: the one of the
// same name (both are GGUF's names), if any; F32 is dense.
std::optional<kernels::WeightFormat> FormatOf(GgmlType t) {
  const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(t));
  if (traits == nullptr || t == GgmlType::kF32) return std::nullopt;
  const std::string_view name(traits->name.data(), traits->name.size());
  for (size_t f = 1; f < kernels::kWeightFormats; ++f) {
    const auto format = static_cast<kernels::WeightFormat>(f);
    if (kernels::WeightFormatName(format) == name) return format;
  }
  return std::nullopt;
}

// How a group's parts may sit in one buffer when their block formats differ.
enum class Fusion {
  kJoined,    // one format for all rows: a backend that copies runs one Gemm over them
  kRowSplit,  // each part's rows in its own format: the forward runs a product per part
};

// The one rule for a (fused) matrix, which UploadMatrix follows and
// PredictWeightsBytes predicts (`types`: each part's type as it arrives, kF32
// for one that came dense): the format each part keeps, or nullopt for dense.
// It stays in its blocks when every part is stored in a format a quantized
// Gemm takes. Parts in different formats (a Q4_K_M file's q and k in Q4_K or
// Q5_0, its v in Q6_K or Q8_0) keep their own where the group may be split by
// rows; otherwise they are joined as Q8_0, each part requantized from its own
// values: 8.5 bits a value instead of fp32's 32, at an error below each 32
// values' largest / 254.
std::optional<std::vector<kernels::WeightFormat>> KeptFormats(const std::vector<GgmlType>& types,
                                                              Fusion fusion) {
  std::vector<kernels::WeightFormat> formats;
  for (GgmlType t : types) {
    const std::optional<kernels::WeightFormat> f = FormatOf(t);
    if (!f) return std::nullopt;
    formats.push_back(*f);
  }
  if (formats.empty()) return std::nullopt;
  const bool uniform = std::all_of(formats.begin(), formats.end(),
                                   [&](kernels::WeightFormat f) { return f == formats[0]; });
  if (!uniform && fusion == Fusion::kJoined)
    formats.assign(types.size(), kernels::WeightFormat::kQ8_0);
  return formats;
}

// `x` (a multiple of 32 values) as Q8_0 blocks, as llama.cpp quantizes:
// d = max|x| / 127 stored as fp16, q = round(x / d), halves away from zero.
// INVALID_ARGUMENT where a block's scale would pass fp16's range (a crafted
// file's blocks dequantize to ~6e7 at most; that scale would be inf, which
// the file's own scale checks never saw).
absl::StatusOr<std::vector<uint8_t>> QuantizeToQ80(const std::vector<float>& x) {
  constexpr float kF16Max = 65504.f;
  std::vector<kernels::BlockQ8_0> blocks(x.size() / kernels::kQuantBlock);
  for (size_t b = 0; b < blocks.size(); ++b) {
    const float* v = x.data() + b * kernels::kQuantBlock;
    float amax = 0;
    for (int i = 0; i < kernels::kQuantBlock; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.f;
    if (!(d <= kF16Max)) {
      return absl::InvalidArgumentError(absl::StrCat("a weight block's values (up to ", amax,
                                                     ") are too large to requantize to Q8_0"));
    }
    const float id = d != 0 ? 1.f / d : 0.f;
    blocks[b].d = kernels::F32ToF16(d);
    for (int i = 0; i < kernels::kQuantBlock; ++i) {
      blocks[b].qs[i] = static_cast<int8_t>(std::clamp(std::round(v[i] * id), -127.f, 127.f));
    }
  }
  std::vector<uint8_t> out(blocks.size() * sizeof(kernels::BlockQ8_0));
  std::memcpy(out.data(), blocks.data(), out.size());
  return out;
}

// A part of a mixed group: its values requantized to Q8_0.
absl::StatusOr<std::vector<uint8_t>> RequantizedToQ80(const HostTensor& t) {
  std::vector<float> values(static_cast<size_t>(t.numel()));
  RETURN_IF_ERROR(DequantizeToF32(t.raw_type, t.stored(), t.numel(), absl::MakeSpan(values)));
  return QuantizeToQ80(values);
}

// A part's rows in `format`: its stored bytes, or (a part of a joined mixed
// group) its values requantized into `scratch`.
absl::StatusOr<absl::Span<const uint8_t>> BlocksIn(const HostTensor& t,
                                                   kernels::WeightFormat format,
                                                   std::vector<uint8_t>* scratch) {
  if (FormatOf(t.raw_type) == format) return t.stored();
  ASSIGN_OR_RETURN(*scratch, RequantizedToQ80(t));
  return absl::MakeConstSpan(*scratch);
}

// Stored rows rearranged per piece by PlaceInPanels: whole panels, about
// this many bytes.
constexpr size_t kPanelPieceBytes = size_t{1} << 20;

// The matrix of rows of `cols` values at `stored` (in the file's mapping, or
// a loaded copy about to be freed) as panels (cohost/kernels/panels.h) in a
// buffer of its own, a piece at a time: into the buffer itself where the
// backend's memory is the host's, else through a small host buffer. Each
// piece's stored pages are dropped once rearranged (DropWholePages), so the
// matrix is never resident twice.
absl::StatusOr<DeviceBuffer> PlaceInPanels(Backend* backend, kernels::WeightFormat format,
                                           int64_t cols, absl::Span<const uint8_t> stored) {
  ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::Create(backend, stored.size()));
  const size_t panel = kernels::kPanelRows * kernels::QuantRowBytes(format, cols);
  const size_t per_piece = std::max<size_t>(1, kPanelPieceBytes / panel) * panel;
  const bool host = backend->AdoptsHostMemory();
  std::vector<uint8_t> piece(host ? 0 : std::min(per_piece, stored.size()));
  for (size_t at = 0; at < stored.size(); at += per_piece) {
    const size_t n = std::min(per_piece, stored.size() - at);
    uint8_t* dst = host ? static_cast<uint8_t*>(b.data()) + at : piece.data();
    kernels::PackPanels(format, static_cast<int64_t>(n / panel) * kernels::kPanelRows, cols,
                        stored.data() + at, dst);
    if (!host) RETURN_IF_ERROR(backend->CopyToDevice(static_cast<uint8_t*>(b.data()) + at, dst, n));
    DropWholePages(stored.data() + at, n);
  }
  return b;
}

// One part's rows in `format` in a buffer of their own, in the layout the
// backend prefers where they fit it (`layout` says which): rearranged into
// panels; else the loaded bytes themselves where the backend takes them
// over (its memory is host memory: AdoptMapped for bytes in the file's
// mapping, AdoptHostBytes for a loaded copy), else copied.
absl::StatusOr<DeviceBuffer> PlacePart(Backend* backend, HostTensor& t,
                                       kernels::WeightFormat format,
                                       kernels::WeightLayout* layout) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const bool panels = backend->PreferredLayout(format) == kernels::WeightLayout::kPanels16 &&
                      kernels::FitsPanels(format, rows);
  *layout = panels ? kernels::WeightLayout::kPanels16 : kernels::WeightLayout::kRows;
  if (FormatOf(t.raw_type) == format) {
    if (panels) {
      absl::StatusOr<DeviceBuffer> b = PlaceInPanels(backend, format, cols, t.stored());
      std::vector<uint8_t>().swap(t.raw);  // dropped as it went, even on an error
      return b;
    }
    std::optional<DeviceBuffer> adopted = t.mapped.empty()
                                              ? backend->AdoptHostBytes(t.raw)
                                              : backend->AdoptMapped(t.mapped, t.mapping);
    if (adopted) return *std::move(adopted);
  }
  std::vector<uint8_t> scratch;
  ASSIGN_OR_RETURN(const absl::Span<const uint8_t> bytes, BlocksIn(t, format, &scratch));
  if (panels) return PlaceInPanels(backend, format, cols, bytes);
  ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::Create(backend, bytes.size()));
  RETURN_IF_ERROR(backend->CopyToDevice(b.data(), bytes.data(), bytes.size()));
  return b;
}

// The parts' rows as one matrix: their blocks kept as KeptFormats says where
// the backend's Gemm takes every format, else dense. Kept parts are split,
// each in its own buffer, where their formats differ or the backend takes
// loaded bytes over (nothing is copied then); else joined in one buffer.
absl::StatusOr<WeightMatrix> UploadMatrix(Backend* backend, const std::vector<HostTensor*>& parts,
                                          Fusion fusion = Fusion::kJoined) {
  WeightMatrix m;
  m.cols = parts[0]->shape[1];
  std::vector<GgmlType> types(parts.size());
  std::transform(parts.begin(), parts.end(), types.begin(),
                 [](const HostTensor* t) { return t->quantized() ? t->raw_type : GgmlType::kF32; });
  const std::optional<std::vector<kernels::WeightFormat>> formats = KeptFormats(types, fusion);
  if (!formats || !std::all_of(formats->begin(), formats->end(), [&](kernels::WeightFormat f) {
        return backend->SupportsWeightFormat(f);
      })) {
    ASSIGN_OR_RETURN(
        m.buf, UploadConcat(backend, std::vector<const HostTensor*>(parts.begin(), parts.end())));
    return m;
  }
  m.format = (*formats)[0];
  if (parts.size() == 1) {
    ASSIGN_OR_RETURN(m.buf, PlacePart(backend, *parts[0], m.format, &m.layout));
    return m;
  }
  const bool mixed = std::any_of(formats->begin(), formats->end(),
                                 [&](kernels::WeightFormat f) { return f != m.format; });
  if (mixed || backend->AdoptsHostMemory()) {
    int64_t row = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      kernels::WeightLayout layout;
      ASSIGN_OR_RETURN(DeviceBuffer b, PlacePart(backend, *parts[i], (*formats)[i], &layout));
      m.parts.push_back({row, (*formats)[i], layout, std::move(b)});
      if (i == 0) m.layout = layout;
      row += parts[i]->shape[0];
    }
    return m;
  }
  size_t bytes = 0;
  for (const HostTensor* t : parts) bytes += kernels::QuantRowBytes(m.format, t->numel());
  ASSIGN_OR_RETURN(m.buf, DeviceBuffer::Create(backend, bytes));
  size_t at = 0;
  for (const HostTensor* t : parts) {
    std::vector<uint8_t> scratch;
    ASSIGN_OR_RETURN(const absl::Span<const uint8_t> blocks, BlocksIn(*t, m.format, &scratch));
    RETURN_IF_ERROR(backend->CopyToDevice(static_cast<uint8_t*>(m.buf.data()) + at, blocks.data(),
                                          blocks.size()));
    at += blocks.size();
  }
  return m;
}

}  // namespace

absl::StatusOr<LlamaWeights> UploadLlamaWeights(ModelFile& file, Backend* backend) {
  const ModelConfig& c = file.config;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_rows = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_rows = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  TensorChecker check(file);
  LlamaWeights w;
  HostTensor* t = nullptr;

  ASSIGN_OR_RETURN(t, check.Get("token_embd.weight", {vocab, hidden}));
  ASSIGN_OR_RETURN(w.token_embd, UploadMatrix(backend, {t}));
  Release({t});
  ASSIGN_OR_RETURN(t, check.Get("output_norm.weight", {hidden}));
  ASSIGN_OR_RETURN(w.output_norm, Upload(backend, *t));
  Release({t});
  if (!c.tie_word_embeddings) {
    ASSIGN_OR_RETURN(t, check.Get("output.weight", {vocab, hidden}));
    ASSIGN_OR_RETURN(w.output, UploadMatrix(backend, {t}));
    Release({t});
  }

  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrFormat("blk.%d.", l);
    LlamaLayerWeights lw;
    HostTensor *wq, *wk, *wv, *gate, *up;
    ASSIGN_OR_RETURN(t, check.Get(p + "attn_norm.weight", {hidden}));
    ASSIGN_OR_RETURN(lw.attn_norm, Upload(backend, *t));
    Release({t});
    ASSIGN_OR_RETURN(wq, check.Get(p + "attn_q.weight", {q_rows, hidden}));
    ASSIGN_OR_RETURN(wk, check.Get(p + "attn_k.weight", {kv_rows, hidden}));
    ASSIGN_OR_RETURN(wv, check.Get(p + "attn_v.weight", {kv_rows, hidden}));
    ASSIGN_OR_RETURN(lw.wqkv, UploadMatrix(backend, {wq, wk, wv}, Fusion::kRowSplit));
    Release({wq, wk, wv});
    if (c.qk_norm()) {
      ASSIGN_OR_RETURN(t, check.Get(p + "attn_q_norm.weight", {c.head_dim}));
      ASSIGN_OR_RETURN(lw.q_norm, Upload(backend, *t));
      Release({t});
      ASSIGN_OR_RETURN(t, check.Get(p + "attn_k_norm.weight", {c.head_dim}));
      ASSIGN_OR_RETURN(lw.k_norm, Upload(backend, *t));
      Release({t});
    }
    if (c.attention_bias) {
      HostTensor *bq, *bk, *bv;
      ASSIGN_OR_RETURN(bq, check.Get(p + "attn_q.bias", {q_rows}));
      ASSIGN_OR_RETURN(bk, check.Get(p + "attn_k.bias", {kv_rows}));
      ASSIGN_OR_RETURN(bv, check.Get(p + "attn_v.bias", {kv_rows}));
      ASSIGN_OR_RETURN(lw.bqkv, UploadConcat(backend, {bq, bk, bv}));
      Release({bq, bk, bv});
    }
    ASSIGN_OR_RETURN(t, check.Get(p + "attn_output.weight", {hidden, q_rows}));
    ASSIGN_OR_RETURN(lw.wo, UploadMatrix(backend, {t}));
    Release({t});
    ASSIGN_OR_RETURN(t, check.Get(p + "ffn_norm.weight", {hidden}));
    ASSIGN_OR_RETURN(lw.ffn_norm, Upload(backend, *t));
    Release({t});
    if (c.moe()) {
      const int64_t expert_inter = c.expert_intermediate_size;
      ASSIGN_OR_RETURN(t, check.Get(p + "ffn_gate_inp.weight", {c.num_experts, hidden}));
      ASSIGN_OR_RETURN(lw.router, UploadMatrix(backend, {t}));
      Release({t});
      for (int32_t e = 0; e < c.num_experts; ++e) {
        ASSIGN_OR_RETURN(gate,
                         check.Get(ExpertTensorName(l, "ffn_gate", e), {expert_inter, hidden}));
        ASSIGN_OR_RETURN(up, check.Get(ExpertTensorName(l, "ffn_up", e), {expert_inter, hidden}));
        ASSIGN_OR_RETURN(lw.expert_gate_up.emplace_back(), UploadMatrix(backend, {gate, up}));
        Release({gate, up});
        ASSIGN_OR_RETURN(t, check.Get(ExpertTensorName(l, "ffn_down", e), {hidden, expert_inter}));
        ASSIGN_OR_RETURN(lw.expert_down.emplace_back(), UploadMatrix(backend, {t}));
        Release({t});
      }
      w.layers.push_back(std::move(lw));
      continue;
    }
    ASSIGN_OR_RETURN(gate, check.Get(p + "ffn_gate.weight", {inter, hidden}));
    ASSIGN_OR_RETURN(up, check.Get(p + "ffn_up.weight", {inter, hidden}));
    ASSIGN_OR_RETURN(lw.w_gate_up, UploadMatrix(backend, {gate, up}));
    Release({gate, up});
    ASSIGN_OR_RETURN(t, check.Get(p + "ffn_down.weight", {hidden, inter}));
    ASSIGN_OR_RETURN(lw.w_down, UploadMatrix(backend, {t}));
    Release({t});
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

bool Model::KeepsQuantizedWeights(const kernels::Backend& backend) {
  for (size_t f = 1; f < kernels::kWeightFormats; ++f) {
    if (!backend.SupportsWeightFormat(static_cast<kernels::WeightFormat>(f))) return false;
  }
  return true;
}

size_t Model::PredictWeightsBytes(const ModelConfig& config, kernels::DType dtype,
                                  bool keep_quantized) {
  std::map<std::string, size_t> numel;
  std::map<std::string, int64_t> cols;
  for (const auto& [name, shape] : ExpectedTensors(config)) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    numel[name] = n;
    cols[name] = shape.size() == 2 ? shape[1] : 0;
  }
  // The RoPE inverse frequencies stay fp32.
  size_t bytes = static_cast<size_t>(config.head_dim / 2) * 4;
  // The matrices UploadMatrix fuses, each group kept in blocks as KeptFormats
  // says, fused as UploadLlamaWeights fuses them.
  std::vector<std::pair<std::vector<std::string>, Fusion>> groups = {
      {{"token_embd.weight"}, Fusion::kJoined}};
  if (!config.tie_word_embeddings) groups.push_back({{"output.weight"}, Fusion::kJoined});
  for (int32_t l = 0; l < config.num_layers; ++l) {
    const std::string p = absl::StrFormat("blk.%d.", l);
    groups.push_back(
        {{p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"}, Fusion::kRowSplit});
    groups.push_back({{p + "attn_output.weight"}, Fusion::kJoined});
    if (config.moe()) {
      groups.push_back({{p + "ffn_gate_inp.weight"}, Fusion::kJoined});
      for (int32_t e = 0; e < config.num_experts; ++e) {
        groups.push_back({{ExpertTensorName(l, "ffn_gate", e), ExpertTensorName(l, "ffn_up", e)},
                          Fusion::kJoined});
        groups.push_back({{ExpertTensorName(l, "ffn_down", e)}, Fusion::kJoined});
      }
      continue;
    }
    groups.push_back({{p + "ffn_gate.weight", p + "ffn_up.weight"}, Fusion::kJoined});
    groups.push_back({{p + "ffn_down.weight"}, Fusion::kJoined});
  }
  for (const auto& [group, fusion] : groups) {
    if (!keep_quantized) break;
    std::vector<GgmlType> types;
    for (const std::string& name : group) {
      auto it = config.stored_types.find(name);
      // What the loader did not keep arrives dense.
      types.push_back(it != config.stored_types.end() && KeepsRowsAsStored(it->second, cols[name])
                          ? it->second
                          : GgmlType::kF32);
    }
    const std::optional<std::vector<kernels::WeightFormat>> formats = KeptFormats(types, fusion);
    if (!formats) continue;
    for (size_t i = 0; i < group.size(); ++i) {
      bytes += kernels::QuantRowBytes((*formats)[i], static_cast<int64_t>(numel[group[i]]));
      numel.erase(group[i]);
    }
  }
  for (const auto& [name, n] : numel) bytes += n * kernels::DTypeSize(dtype);
  return bytes;
}

size_t Model::PredictWorkspaceBytes(const ModelConfig& config, kernels::DType dtype, int32_t tokens,
                                    int32_t samples) {
  const size_t elem_size = kernels::DTypeSize(dtype);
  return LlamaModel::InitialCapacity(tokens, false) * LlamaModel::TokenBytes(config, elem_size) +
         LlamaModel::InitialCapacity(samples, true) * LlamaModel::SampleBytes(config, elem_size);
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(ModelFile file, Backend* backend) {
  if (backend == nullptr) return absl::InvalidArgumentError("Model::Create: null backend");
  const ModelConfig& c = file.config;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("model %s: %s", file.path, s.message()));
  }
  if (!SupportedArchitecture(c.architecture)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model %s: architecture %s is not supported (%s)", file.path,
                        Quote(c.architecture), SupportedArchitectures()));
  }
  if (absl::Status s = backend->CheckHeadDim(c.head_dim); !s.ok()) {
    return absl::Status(s.code(), absl::StrFormat("model %s: %s", file.path, s.message()));
  }
  absl::StatusOr<LlamaWeights> w = UploadLlamaWeights(file, backend);
  if (!w.ok()) return w.status();
  return std::make_unique<LlamaModel>(c, backend, *std::move(w));
}

}  // namespace cohost::runtime
