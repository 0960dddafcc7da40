// LlamaModel::Forward: one flattened varlen batch through the decoder. The
// same code drives every backend; host work is limited to validating the batch
// and a step's few uploads (metadata; sample specs and penalty terms when it
// samples on the device), all through host staging memory.
#include "runtime/model/llama_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_format.h"
#include "cohost/kernels/panels.h"
#include "common/status_macros.h"

namespace cohost::runtime {

namespace {
// Activation buffers start here and double when a larger batch arrives.
constexpr int32_t kInitialTokens = 64;
constexpr int32_t kInitialSamples = 8;
// A captured decode step's block tables hold at least this many entries per
// sequence, and a power of two: a context grows through few shapes.
constexpr int32_t kMinTableBucket = 16;
}  // namespace

kernels::WeightRef WeightMatrix::RowsFrom(int64_t row, size_t elem_size) const {
  int64_t first_row = 0;
  kernels::WeightFormat f = format;
  kernels::WeightLayout l = layout;
  const void* data = buf.data();
  for (const Part& p : parts) {
    if (p.first_row <= row) {
      first_row = p.first_row;
      f = p.format;
      l = p.layout;
      data = p.buf.data();
    }
  }
  // A product over panels starts one: anything else would read another
  // row's bytes as this one's.
  if (l == kernels::WeightLayout::kPanels16 && (row - first_row) % kernels::kPanelRows != 0) {
    std::fprintf(stderr, "WeightMatrix::RowsFrom: row %lld is inside a 16-row panel\n",
                 static_cast<long long>(row));
    std::abort();
  }
  const size_t row_bytes = f == kernels::WeightFormat::kDense
                               ? static_cast<size_t>(cols) * elem_size
                               : kernels::QuantRowBytes(f, cols);
  return {static_cast<const uint8_t*>(data) + static_cast<size_t>(row - first_row) * row_bytes, f,
          l};
}

size_t WeightMatrix::bytes() const {
  size_t b = buf.bytes();
  for (const Part& p : parts) b += p.buf.bytes();
  return b;
}

LlamaModel::LlamaModel(const ModelConfig& config, kernels::Backend* backend, LlamaWeights weights)
    : config_(config),
      backend_(backend),
      w_(std::move(weights)),
      elem_size_(kernels::DTypeSize(backend->compute_dtype())) {
  for (const kernels::DeviceBuffer* b : WeightBuffers()) weights_bytes_ += b->bytes();
}

std::vector<kernels::DeviceBuffer*> LlamaModel::WeightBuffers() {
  std::vector<kernels::DeviceBuffer*> out;
  auto add = [&](kernels::DeviceBuffer& b) {
    if (b.data() != nullptr && b.bytes() > 0) out.push_back(&b);
  };
  auto add_matrix = [&](WeightMatrix& m) {
    add(m.buf);
    for (WeightMatrix::Part& p : m.parts) add(p.buf);
  };
  add_matrix(w_.token_embd);
  add(w_.output_norm);
  add_matrix(w_.output);
  add(w_.inv_freq);
  for (LlamaLayerWeights& l : w_.layers) {
    add(l.attn_norm);
    add_matrix(l.wqkv);
    add(l.bqkv);
    add(l.q_norm);
    add(l.k_norm);
    add_matrix(l.wo);
    add(l.ffn_norm);
    add_matrix(l.w_gate_up);
    add_matrix(l.w_down);
    add_matrix(l.router);
    for (WeightMatrix& m : l.expert_gate_up) add_matrix(m);
    for (WeightMatrix& m : l.expert_down) add_matrix(m);
  }
  return out;
}

const std::array<kernels::DeviceBuffer LlamaModel::*, 16> LlamaModel::kWorkspace = {
    &LlamaModel::x_,
    &LlamaModel::delta_,
    &LlamaModel::normed_,
    &LlamaModel::qkv_,
    &LlamaModel::attn_,
    &LlamaModel::gate_up_,
    &LlamaModel::act_,
    &LlamaModel::moe_rows_,
    &LlamaModel::router_logits_,
    &LlamaModel::sample_x_,
    &LlamaModel::sample_delta_,
    &LlamaModel::sample_normed_,
    &LlamaModel::logits_,
    &LlamaModel::sample_ids_,
    &LlamaModel::sample_specs_,
    &LlamaModel::sample_logprobs_};

void LlamaModel::FreeWorkspace() {
  graphs_.Clear();  // they point at what goes
  for (kernels::DeviceBuffer LlamaModel::*b : kWorkspace) (this->*b).Reset();
  for (kernels::DeviceBuffer* b : {&penalties_, &masks_, &meta_, &moe_meta_, &staging_}) {
    b->Reset();
  }
  token_capacity_ = 0;
  sample_capacity_ = 0;
  staged_ = 0;
}

absl::StatusOr<size_t> LlamaModel::OffloadWeights() {
  if (backend_->AdoptsHostMemory()) {
    return absl::FailedPreconditionError(
        "OffloadWeights: the device's memory is the host's; nothing to offload");
  }
  if (weights_offloaded()) {
    return absl::FailedPreconditionError("OffloadWeights: already offloaded");
  }
  RETURN_IF_ERROR(backend_->Synchronize());  // no step still reads the weights
  std::vector<Offloaded> host;
  size_t bytes = 0;
  for (kernels::DeviceBuffer* b : WeightBuffers()) {
    // All copied before anything is freed: a failure leaves the model whole.
    ASSIGN_OR_RETURN(kernels::DeviceBuffer h,
                     kernels::DeviceBuffer::CreateStaging(backend_, b->bytes()));
    RETURN_IF_ERROR(backend_->CopyToHost(h.data(), b->data(), b->bytes()));
    bytes += h.bytes();
    host.push_back({b, std::move(h)});
  }
  for (Offloaded& o : host) o.slot->Reset();
  FreeWorkspace();
  offloaded_ = std::move(host);
  return bytes;
}

absl::Status LlamaModel::RestoreWeights() {
  if (!weights_offloaded()) return absl::FailedPreconditionError("RestoreWeights: not offloaded");
  std::vector<kernels::DeviceBuffer> device;
  device.reserve(offloaded_.size());
  for (const Offloaded& o : offloaded_) {
    ASSIGN_OR_RETURN(kernels::DeviceBuffer d,
                     kernels::DeviceBuffer::Create(backend_, o.host.bytes()));
    RETURN_IF_ERROR(backend_->CopyToDevice(d.data(), o.host.data(), o.host.bytes()));
    device.push_back(std::move(d));
  }
  RETURN_IF_ERROR(backend_->Synchronize());  // the copies read the host buffers until done
  for (size_t i = 0; i < device.size(); ++i) *offloaded_[i].slot = std::move(device[i]);
  offloaded_.clear();
  return absl::OkStatus();
}

void LlamaModel::EnableDecodeGraphs(bool on) {
  // A step with experts waits for its routes on the host: not one graph.
  graphs_enabled_ = on && backend_->can_capture() && !config_.moe();
  graphs_.Clear();
}

size_t LlamaModel::workspace_bytes() const {
  size_t bytes = 0;
  for (kernels::DeviceBuffer LlamaModel::*b : kWorkspace) bytes += (this->*b).bytes();
  return bytes;
}

size_t LlamaModel::TokenBytes(const ModelConfig& c, size_t elem_size) {
  const size_t moe_rows = c.moe() ? static_cast<size_t>(c.num_experts_used) * c.hidden_size : 0;
  const size_t elems = 3 * static_cast<size_t>(c.hidden_size) +
                       static_cast<size_t>(c.num_heads + 2 * c.num_kv_heads) * c.head_dim +
                       static_cast<size_t>(c.num_heads) * c.head_dim +
                       3 * static_cast<size_t>(c.ffn_width()) + moe_rows;
  return elems * elem_size + static_cast<size_t>(c.num_experts) * sizeof(float);
}

size_t LlamaModel::SampleBytes(const ModelConfig& c, size_t elem_size) {
  return 3 * static_cast<size_t>(c.hidden_size) * elem_size +
         static_cast<size_t>(c.vocab_size) * sizeof(float) + sizeof(int32_t) +
         sizeof(kernels::SampleSpec) +
         (1 + kernels::kMaxTopLogprobs) * sizeof(kernels::TokenLogprob);
}

size_t LlamaModel::InitialCapacity(int32_t wanted, bool samples) {
  return static_cast<size_t>(std::max(wanted, samples ? kInitialSamples : kInitialTokens));
}

absl::Status LlamaModel::Reserve(int32_t num_tokens, int32_t num_samples) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  const int64_t qkv_width = static_cast<int64_t>(c.num_heads + 2 * c.num_kv_heads) * c.head_dim;
  auto alloc = [&](kernels::DeviceBuffer& b, int64_t elems, size_t elem_size) -> absl::Status {
    b.Reset();  // free first: growing should not need old and new at once
    absl::StatusOr<kernels::DeviceBuffer> n =
        kernels::DeviceBuffer::Create(backend_, static_cast<size_t>(elems) * elem_size);
    if (!n.ok()) return n.status();
    b = *std::move(n);
    return absl::OkStatus();
  };
  if (num_tokens > token_capacity_ || num_samples > sample_capacity_) {
    graphs_.Clear();  // they point at the old buffers
  }
  if (num_tokens > token_capacity_) {
    const int32_t cap =
        std::max({num_tokens, kInitialTokens, std::min(2 * token_capacity_, INT32_MAX / 2)});
    token_capacity_ = 0;  // stays 0 if any allocation below fails
    const int64_t moe_rows = c.moe() ? int64_t{c.num_experts_used} * hidden : 0;
    for (auto [buf, width] : {std::pair{&x_, hidden},
                              {&delta_, hidden},
                              {&normed_, hidden},
                              {&qkv_, qkv_width},
                              {&attn_, static_cast<int64_t>(c.num_heads) * c.head_dim},
                              {&gate_up_, 2 * c.ffn_width()},
                              {&act_, c.ffn_width()},
                              {&moe_rows_, moe_rows}}) {
      RETURN_IF_ERROR(alloc(*buf, cap * width, elem_size_));
    }
    RETURN_IF_ERROR(alloc(router_logits_, cap * int64_t{c.num_experts}, sizeof(float)));
    token_capacity_ = cap;
  }
  if (num_samples > sample_capacity_) {
    const int32_t cap =
        std::max({num_samples, kInitialSamples, std::min(2 * sample_capacity_, INT32_MAX / 2)});
    sample_capacity_ = 0;
    for (kernels::DeviceBuffer* buf : {&sample_x_, &sample_delta_, &sample_normed_}) {
      RETURN_IF_ERROR(alloc(*buf, cap * hidden, elem_size_));
    }
    RETURN_IF_ERROR(alloc(logits_, cap * static_cast<int64_t>(c.vocab_size), sizeof(float)));
    RETURN_IF_ERROR(alloc(sample_ids_, cap, sizeof(int32_t)));
    RETURN_IF_ERROR(alloc(sample_specs_, cap, sizeof(kernels::SampleSpec)));
    RETURN_IF_ERROR(alloc(sample_logprobs_, int64_t{cap} * (1 + kernels::kMaxTopLogprobs),
                          sizeof(kernels::TokenLogprob)));
    sample_capacity_ = cap;
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::UploadMetadata(const Batch& b, int32_t table_width, int32_t context_bound,
                                        kernels::BatchLayout* layout, const int32_t** ids,
                                        const int32_t** rows) {
  // One int32 array: token_ids | positions | slot_mapping | seq_starts |
  // context_lens | sample_rows | block_tables. The tables come last, so that
  // every offset depends on the counts alone; each sequence's row is padded
  // to table_width entries (the pad is never read: past its context). It is
  // written in staging memory and copied from there.
  size_t offsets[7];
  const std::vector<int32_t>* parts[6] = {&b.token_ids,  &b.positions,    &b.slot_mapping,
                                          &b.seq_starts, &b.context_lens, &b.sample_rows};
  size_t count = 0;
  for (int i = 0; i < 6; ++i) {
    offsets[i] = count;
    count += parts[i]->size();
  }
  offsets[6] = count;
  count += static_cast<size_t>(b.num_seqs()) * table_width;
  const size_t bytes = count * sizeof(int32_t);
  ASSIGN_OR_RETURN(void* staged, StageSpace(bytes));
  auto* host = static_cast<int32_t*>(staged);
  for (int i = 0; i < 6; ++i) std::copy(parts[i]->begin(), parts[i]->end(), host + offsets[i]);
  const int32_t width = b.max_blocks_per_seq;
  int32_t* table = host + offsets[6];
  for (int32_t s = 0; s < b.num_seqs(); ++s, table += table_width) {
    const auto row = b.block_tables.begin() + static_cast<ptrdiff_t>(s) * width;
    std::copy(row, row + width, table);
    std::fill(table + width, table + table_width, 0);
  }
  if (bytes > meta_.bytes()) graphs_.Clear();  // they point at the old array
  RETURN_IF_ERROR(GrowBuffer(meta_, bytes));
  RETURN_IF_ERROR(backend_->CopyToDevice(meta_.data(), staged, bytes));
  const int32_t* base = meta_.as<int32_t>();
  *ids = base + offsets[0];
  layout->positions = base + offsets[1];
  layout->slot_mapping = base + offsets[2];
  layout->seq_starts = base + offsets[3];
  layout->context_lens = base + offsets[4];
  *rows = base + offsets[5];
  layout->block_tables = base + offsets[6];
  layout->num_seqs = b.num_seqs();
  layout->num_tokens = b.num_tokens();
  layout->max_blocks_per_seq = table_width;
  layout->max_query_len = b.max_query_len();
  layout->max_context_len = context_bound > 0 ? context_bound
                            : b.context_lens.empty()
                                ? 0
                                : *std::max_element(b.context_lens.begin(), b.context_lens.end());
  return absl::OkStatus();
}

absl::Status LlamaModel::Forward(const Batch& batch, KvCache& kv, std::vector<float>* logits) {
  if (logits == nullptr) return absl::InvalidArgumentError("Forward: null logits");
  logits->clear();
  RETURN_IF_ERROR(Run(batch, kv));
  RETURN_IF_ERROR(CopyLogits(batch, logits));
  return FinishStep();
}

absl::Status LlamaModel::CheckPenalties(const SamplePenalties& p, int32_t rows) {
  if (p.terms.empty()) return absl::OkStatus();
  bool ok = p.starts.size() == static_cast<size_t>(rows) + 1 && p.starts[0] == 0 &&
            p.starts[rows] == static_cast<int32_t>(p.terms.size());
  for (int32_t r = 0; ok && r < rows; ++r) ok = p.starts[r] <= p.starts[r + 1];
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ForwardSample: %d penalty starts for %d rows and %d terms",
                        p.starts.size(), rows, p.terms.size()));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::GrowBuffer(kernels::DeviceBuffer& buf, size_t bytes) {
  if (bytes <= buf.bytes()) return absl::OkStatus();
  buf.Reset();
  ASSIGN_OR_RETURN(buf, kernels::DeviceBuffer::Create(backend_, std::max<size_t>(2 * bytes, 4096)));
  return absl::OkStatus();
}

absl::StatusOr<void*> LlamaModel::StageSpace(size_t bytes) {
  constexpr size_t kAlign = 64;
  size_t offset = (staged_ + kAlign - 1) / kAlign * kAlign;
  if (offset + bytes > staging_.bytes()) {
    // The step's copies from the old buffer must be done before it goes; then
    // the new one is free from its start.
    RETURN_IF_ERROR(backend_->Synchronize());
    staging_.Reset();
    ASSIGN_OR_RETURN(staging_, kernels::DeviceBuffer::CreateStaging(
                                   backend_, std::max<size_t>(2 * bytes, 16384)));
    offset = 0;
  }
  staged_ = offset + bytes;
  return static_cast<char*>(staging_.data()) + offset;
}

absl::Status LlamaModel::Upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(void* staged, StageSpace(bytes));
  std::memcpy(staged, src, bytes);
  return backend_->CopyToDevice(dst, staged, bytes);
}

absl::Status LlamaModel::FinishStep() {
  RETURN_IF_ERROR(backend_->Synchronize());
  staged_ = 0;
  return absl::OkStatus();
}

namespace {

// Where penalties_ holds a step's terms, their starts and the moved logits
// (each region 4-byte aligned: the terms are words).
static_assert(sizeof(kernels::PenaltyTerm) % alignof(float) == 0);
struct PenaltyLayout {
  size_t starts, saved, bytes;  // byte offsets, and the whole
  explicit PenaltyLayout(const SamplePenalties& p)
      : starts(p.terms.size() * sizeof(kernels::PenaltyTerm)),
        saved(starts + p.starts.size() * sizeof(int32_t)),
        bytes(saved + p.terms.size() * sizeof(float)) {}
  // The regions in a buffer laid out so.
  static const kernels::PenaltyTerm* Terms(void* base) {
    return static_cast<const kernels::PenaltyTerm*>(base);
  }
  const int32_t* Starts(void* base) const {
    return reinterpret_cast<const int32_t*>(static_cast<char*>(base) + starts);
  }
  float* Saved(void* base) const {
    return reinterpret_cast<float*>(static_cast<char*>(base) + saved);
  }
};

}  // namespace

absl::Status LlamaModel::ApplyPenalties(const SamplePenalties& p, int32_t rows, bool keep_raw) {
  if (p.terms.empty()) return absl::OkStatus();
  // Terms, then starts, staged together: one copy.
  const PenaltyLayout at(p);
  RETURN_IF_ERROR(GrowBuffer(penalties_, at.bytes));
  ASSIGN_OR_RETURN(void* staged, StageSpace(at.saved));
  std::memcpy(staged, p.terms.data(), at.starts);
  std::memcpy(static_cast<char*>(staged) + at.starts, p.starts.data(), at.saved - at.starts);
  RETURN_IF_ERROR(backend_->CopyToDevice(penalties_.data(), staged, at.saved));
  void* base = penalties_.data();
  backend_->ApplyPenalties(logits_.as<float>(), rows, config_.vocab_size, at.Starts(base),
                           PenaltyLayout::Terms(base), keep_raw ? at.Saved(base) : nullptr);
  return absl::OkStatus();
}

absl::Status LlamaModel::ApplyMasks(const SampleInputs& in, int32_t rows) {
  if (in.mask_of.empty()) return absl::OkStatus();
  const size_t words = (static_cast<size_t>(config_.vocab_size) + 63) / 64;
  const size_t num_masks = in.masks.size() / words;
  bool ok = in.mask_of.size() == static_cast<size_t>(rows) && in.masks.size() % words == 0;
  for (const int32_t m : in.mask_of) ok = ok && m >= -1 && m < static_cast<int64_t>(num_masks);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ForwardSample: %d mask indices and %d mask words for %d rows of %d words",
                        in.mask_of.size(), in.masks.size(), rows, words));
  }
  const size_t index_bytes = (in.mask_of.size() * sizeof(int32_t) + 7) / 8 * 8;
  const size_t bytes = index_bytes + in.masks.size() * sizeof(uint64_t);
  RETURN_IF_ERROR(GrowBuffer(masks_, bytes));
  ASSIGN_OR_RETURN(void* staged, StageSpace(bytes));
  std::memcpy(staged, in.mask_of.data(), in.mask_of.size() * sizeof(int32_t));
  std::memcpy(static_cast<char*>(staged) + index_bytes, in.masks.data(),
              in.masks.size() * sizeof(uint64_t));
  RETURN_IF_ERROR(backend_->CopyToDevice(masks_.data(), staged, bytes));
  char* base = static_cast<char*>(masks_.data());
  backend_->MaskRows(logits_.as<float>(), rows, config_.vocab_size,
                     reinterpret_cast<const int32_t*>(base),
                     reinterpret_cast<const uint64_t*>(base + index_bytes));
  return absl::OkStatus();
}

void LlamaModel::RestoreRawLogits(const SamplePenalties& p, int32_t rows) {
  if (p.terms.empty()) return;
  const PenaltyLayout at(p);
  void* base = penalties_.data();
  backend_->RestoreLogits(logits_.as<float>(), rows, config_.vocab_size, at.Starts(base),
                          PenaltyLayout::Terms(base), at.Saved(base));
}

absl::Status LlamaModel::ForwardSample(const Batch& batch, KvCache& kv, const SampleInputs& in,
                                       SampledRows* out) {
  if (out == nullptr) return absl::InvalidArgumentError("ForwardSample: null output");
  const int32_t rows = static_cast<int32_t>(in.specs.size());
  if (in.specs.size() != batch.sample_rows.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("ForwardSample: %d specs for %d sample rows",
                                                      in.specs.size(), batch.sample_rows.size()));
  }
  if (in.top_logprobs > kernels::kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrFormat("ForwardSample: %d top logprobs (at most %d)",
                                                      in.top_logprobs, kernels::kMaxTopLogprobs));
  }
  RETURN_IF_ERROR(CheckPenalties(in.penalties, rows));
  out->ids.clear();
  out->logprobs.clear();
  out->top = std::clamp(in.top_logprobs, 0, config_.vocab_size);
  const bool logprobs = in.top_logprobs >= 0 && rows > 0;
  if (!in.mask_of.empty() && logprobs) {
    // A mask moves logits past what RestoreRawLogits puts back.
    return absl::InvalidArgumentError("ForwardSample: masks with logprobs (draw on the host)");
  }
  RETURN_IF_ERROR(Run(batch, kv));
  if (rows == 0) return FinishStep();
  RETURN_IF_ERROR(ApplyMasks(in, rows));
  RETURN_IF_ERROR(ApplyPenalties(in.penalties, rows, /*keep_raw=*/logprobs));
  RETURN_IF_ERROR(
      Upload(sample_specs_.data(), in.specs.data(), in.specs.size() * sizeof(kernels::SampleSpec)));
  backend_->SampleRows(logits_.as<float>(), rows, config_.vocab_size,
                       sample_specs_.as<kernels::SampleSpec>(), sample_ids_.as<int32_t>());
  if (logprobs) {
    // The backend runs these in order: the draw saw the moved logits, the
    // logprobs read the raw ones.
    RestoreRawLogits(in.penalties, rows);
    backend_->RowLogprobs(logits_.as<float>(), rows, config_.vocab_size, sample_ids_.as<int32_t>(),
                          out->top, sample_logprobs_.as<kernels::TokenLogprob>());
  }
  out->ids.resize(rows);
  absl::Status s =
      backend_->CopyToHost(out->ids.data(), sample_ids_.data(), rows * sizeof(int32_t));
  if (s.ok() && logprobs) {
    out->logprobs.resize(static_cast<size_t>(rows) * (1 + out->top));
    s = backend_->CopyToHost(out->logprobs.data(), sample_logprobs_.data(),
                             out->logprobs.size() * sizeof(kernels::TokenLogprob));
  }
  if (s.ok()) s = FinishStep();
  if (!s.ok()) {
    out->ids.clear();
    out->logprobs.clear();
  }
  return s;
}

absl::Status LlamaModel::CopyLogits(const Batch& batch, std::vector<float>* logits) {
  const size_t n = batch.sample_rows.size() * static_cast<size_t>(config_.vocab_size);
  if (n == 0) return absl::OkStatus();
  logits->resize(n);
  absl::Status s = backend_->CopyToHost(logits->data(), logits_.data(), n * sizeof(float));
  if (!s.ok()) logits->clear();
  return s;
}

absl::Status LlamaModel::Run(const Batch& batch, KvCache& kv) {
  const ModelConfig& c = config_;
  if (weights_offloaded()) {
    return absl::FailedPreconditionError("Forward: the weights are offloaded (RestoreWeights)");
  }
  if (kv.num_layers() != c.num_layers || kv.Layer(0).num_kv_heads != c.num_kv_heads ||
      kv.Layer(0).head_dim != c.head_dim) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Forward: kv cache has %d layers of %d kv heads x %d; model needs %d x %d x %d",
        kv.num_layers(), kv.Layer(0).num_kv_heads, kv.Layer(0).head_dim, c.num_layers,
        c.num_kv_heads, c.head_dim));
  }
  if (absl::Status s = batch.Validate(kv.num_blocks(), kv.block_size(), c.vocab_size); !s.ok()) {
    return s;
  }
  const int32_t T = batch.num_tokens();
  const int32_t S = static_cast<int32_t>(batch.sample_rows.size());
  if (T == 0) return absl::OkStatus();
  if (staged_ > 0) {
    // The last step failed before its end: its copies may still read staging.
    RETURN_IF_ERROR(backend_->Synchronize());
    staged_ = 0;
  }
  RETURN_IF_ERROR(Reserve(T, S));
  // A decode step (one new token per sequence) may run from a captured
  // graph: its block tables are padded to a bucket and its attention planned
  // for the bucket's context, so that a shape's ops see the same sizes at
  // every step.
  const bool captured = graphs_enabled_ && T == batch.num_seqs() && batch.max_query_len() == 1;
  const int32_t width =
      captured ? std::max(kMinTableBucket, static_cast<int32_t>(std::bit_ceil(
                                               static_cast<uint32_t>(batch.max_blocks_per_seq))))
               : batch.max_blocks_per_seq;
  Step step;
  step.tokens = T;
  step.samples = S;
  RETURN_IF_ERROR(UploadMetadata(batch, width, captured ? width * kv.block_size() : 0, &step.layout,
                                 &step.ids, &step.rows));
  if (!captured) return Issue(step, kv);
  absl::Status issued;
  RETURN_IF_ERROR(
      graphs_.Run(DecodeShape{T, S, width, kv.id()}, [&] { issued = Issue(step, kv); }));
  return issued;
}

void LlamaModel::GateUp(const void* x, const WeightMatrix& w, int32_t rows, int32_t inter,
                        void* out) {
  const int32_t H = config_.hidden_size;
  if (!w.split()) {
    backend_->Gemm(x, w.Ref(), nullptr, rows, 2 * inter, H, out);
    return;
  }
  // Gate and up in their own buffers: each fills its half of every row.
  const kernels::GemmPart parts[] = {
      {w.Ref(), nullptr, inter, out, 2 * inter},
      {w.RowsFrom(inter, elem_size_), nullptr, inter, static_cast<char*>(out) + inter * elem_size_,
       2 * inter},
  };
  backend_->GroupedGemm(x, parts, 2, rows, H);
}

absl::Status LlamaModel::MoeFfn(const LlamaLayerWeights& lw, int32_t T) {
  const ModelConfig& c = config_;
  kernels::Backend& be = *backend_;
  const int32_t H = c.hidden_size, E = c.num_experts, k = c.num_experts_used;
  const int32_t I = c.expert_intermediate_size;
  be.GemmToF32(normed_.data(), lw.router.Ref(), T, E, H, router_logits_.as<float>());
  router_host_.resize(static_cast<size_t>(T) * E);
  RETURN_IF_ERROR(be.CopyToHost(router_host_.data(), router_logits_.data(),
                                router_host_.size() * sizeof(float)));
  // CopyToHost waited for every op and copy queued so far: the step's
  // staging space is free again (else each layer's route would take more,
  // and a step reallocate it every few layers), and moe_meta_, which the
  // last layer's ops read, may be replaced.
  staged_ = 0;
  RouteTokens(router_host_.data(), T, E, k, c.norm_topk_prob, &route_);
  // token_of_row | row_of_pair | weights: one copy.
  static_assert(sizeof(float) == sizeof(int32_t));
  const int32_t pairs = T * k;
  const size_t ints = static_cast<size_t>(pairs) * sizeof(int32_t);
  RETURN_IF_ERROR(GrowBuffer(moe_meta_, 3 * ints));
  ASSIGN_OR_RETURN(void* staged, StageSpace(3 * ints));
  char* host = static_cast<char*>(staged);
  std::memcpy(host, route_.token_of_row.data(), ints);
  std::memcpy(host + ints, route_.row_of_pair.data(), ints);
  std::memcpy(host + 2 * ints, route_.weights.data(), ints);
  RETURN_IF_ERROR(be.CopyToDevice(moe_meta_.data(), staged, 3 * ints));
  const char* meta = static_cast<const char*>(moe_meta_.data());
  const auto* token_of_row = reinterpret_cast<const int32_t*>(meta);
  const auto* row_of_pair = reinterpret_cast<const int32_t*>(meta + ints);
  const auto* weights = reinterpret_cast<const float*>(meta + 2 * ints);

  be.GatherRows(normed_.data(), token_of_row, pairs, H, moe_rows_.data());
  // Each expert's products over its own rows, every expert's in one grouped
  // product (GemmPart's row ranges: the CPU quantizes the rows once and runs
  // all experts' tiles in one pass over its pool).
  std::vector<kernels::GemmPart>& parts = moe_parts_;
  parts.clear();
  for (int32_t e = 0; e < E; ++e) {
    const int32_t r = route_.starts[e], rows = route_.rows(e);
    if (rows == 0) continue;
    const WeightMatrix& w = lw.expert_gate_up[e];
    void* out = At(gate_up_, int64_t{r} * 2 * I);
    if (!w.split()) {
      parts.push_back({w.Ref(), nullptr, 2 * I, out, 0, r, rows});
    } else {
      // Gate and up in their own buffers: each fills its half of the rows.
      parts.push_back({w.Ref(), nullptr, I, out, 2 * I, r, rows});
      parts.push_back({w.RowsFrom(I, elem_size_), nullptr, I,
                       static_cast<char*>(out) + I * elem_size_, 2 * I, r, rows});
    }
  }
  be.GroupedGemm(moe_rows_.data(), parts.data(), static_cast<int32_t>(parts.size()), pairs, H);
  be.SiluMul(gate_up_.data(), pairs, I, act_.data());
  // The down products into the rows, whose inputs are spent.
  parts.clear();
  for (int32_t e = 0; e < E; ++e) {
    const int32_t r = route_.starts[e], rows = route_.rows(e);
    if (rows == 0) continue;
    parts.push_back(
        {lw.expert_down[e].Ref(), nullptr, H, At(moe_rows_, int64_t{r} * H), 0, r, rows});
  }
  be.GroupedGemm(act_.data(), parts.data(), static_cast<int32_t>(parts.size()), pairs, I);
  be.MoeCombine(moe_rows_.data(), row_of_pair, weights, T, k, H, delta_.data());
  return absl::OkStatus();
}

absl::Status LlamaModel::Issue(const Step& step, const KvCache& kv) {
  const ModelConfig& c = config_;
  const int32_t T = step.tokens, S = step.samples;
  const kernels::BatchLayout& layout = step.layout;
  const int32_t* ids = step.ids;
  const int32_t* rows = step.rows;
  kernels::Backend& be = *backend_;
  const int32_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int32_t q_width = c.num_heads * hd, kv_width = c.num_kv_heads * hd;
  const float eps = c.rms_norm_eps;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const kernels::RopePairs rope_pairs =
      c.rope_adjacent_pairs ? kernels::RopePairs::kAdjacent : kernels::RopePairs::kHalves;
  // One row per token, [q | k | v]: the QKV product's output as it stands.
  const int32_t qkv_width = q_width + 2 * kv_width;
  void* q = qkv_.data();
  void* k = At(qkv_, q_width);
  void* v = At(qkv_, q_width + kv_width);
  const kernels::QkvRows qkv{q, k, v, qkv_width, qkv_width};

  be.Embedding(ids, T, w_.token_embd.Ref(), H, x_.data());
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const LlamaLayerWeights& lw = w_.layers[l];
    // Pre-attention norm; from layer 1 on it first adds the last MLP output.
    be.RmsNorm(l == 0 ? x_.data() : delta_.data(), l == 0 ? nullptr : x_.data(),
               lw.attn_norm.data(), T, H, eps, normed_.data());
    const bool bias = lw.bqkv.data() != nullptr;
    if (!lw.wqkv.split()) {
      be.Gemm(normed_.data(), lw.wqkv.Ref(), bias ? lw.bqkv.data() : nullptr, T, qkv_width, H, q);
    } else {
      // A product per part of the weight rows (a split matrix's parts are
      // q, k and v), each filling its columns of every row.
      const kernels::GemmPart parts[] = {
          {lw.wqkv.Ref(), bias ? lw.bqkv.data() : nullptr, q_width, q, qkv_width},
          {lw.wqkv.RowsFrom(q_width, elem_size_), bias ? At(lw.bqkv, q_width) : nullptr, kv_width,
           k, qkv_width},
          {lw.wqkv.RowsFrom(q_width + kv_width, elem_size_),
           bias ? At(lw.bqkv, q_width + kv_width) : nullptr, kv_width, v, qkv_width},
      };
      be.GroupedGemm(normed_.data(), parts, 3, T, H);
    }
    if (c.qk_norm()) {
      be.HeadRmsNorm(q, T, qkv_width, c.num_heads, hd, lw.q_norm.data(), eps);
      be.HeadRmsNorm(k, T, qkv_width, c.num_kv_heads, hd, lw.k_norm.data(), eps);
    }
    const kernels::PagedKv pages = kv.Layer(l);
    be.RopeWriteKv(qkv, layout, c.num_heads,
                   kernels::RopeSpec{w_.inv_freq.as<float>(), hd, rope_pairs}, pages);
    be.PagedAttention(q, qkv_width, layout, pages, c.num_heads, scale, attn_.data());
    be.Gemm(attn_.data(), lw.wo.Ref(), nullptr, T, H, q_width, delta_.data());
    be.RmsNorm(delta_.data(), x_.data(), lw.ffn_norm.data(), T, H, eps, normed_.data());
    if (c.moe()) {
      RETURN_IF_ERROR(MoeFfn(lw, T));
      continue;
    }
    GateUp(normed_.data(), lw.w_gate_up, T, I, gate_up_.data());
    be.SiluMul(gate_up_.data(), T, I, act_.data());
    be.Gemm(act_.data(), lw.w_down.Ref(), nullptr, T, H, I, delta_.data());
  }
  if (S > 0) {
    // Final norm and lm_head only on the rows that sample.
    be.GatherRows(x_.data(), rows, S, H, sample_x_.data());
    be.GatherRows(delta_.data(), rows, S, H, sample_delta_.data());
    be.RmsNorm(sample_delta_.data(), sample_x_.data(), w_.output_norm.data(), S, H, eps,
               sample_normed_.data());
    const kernels::WeightRef lm_head =
        w_.output.bytes() != 0 ? w_.output.Ref() : w_.token_embd.Ref();
    be.GemmToF32(sample_normed_.data(), lm_head, S, c.vocab_size, H, logits_.as<float>());
  }
  return absl::OkStatus();
}

}  // namespace cohost::runtime
