// The device abstraction: memory, copies and the op list of docs/architecture.md.
// CpuBackend always builds and is the reference; CudaBackend mirrors it exactly.
// Every pointer argument is device memory in the backend's compute dtype unless
// its type says otherwise (int32 metadata is device memory too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/paged_kv.h"
#include "cohost/kernels/quant.h"
#include "cohost/kernels/rope.h"
#include "cohost/kernels/sample_spec.h"

namespace cohost::kernels {

enum class BackendKind : uint8_t { kCpu, kCuda };

class DeviceBuffer;

// Ops recorded to run again (a CUDA graph): Launch queues every op with the
// arguments it was captured with (the same pointers and sizes; what they
// point at as it is then). Owned by whoever captured it; the backend must
// outlive it.
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  virtual absl::Status Launch() = 0;
};

struct BackendCaps {
  DType compute_dtype = DType::kF32;
  DType kv_dtype = DType::kF32;  // what the paged KV cache stores (PagedKv::dtype)
  size_t total_memory = 0;       // bytes the device has in all
  size_t free_memory = 0;        // bytes free now (measured, not assumed)
  std::string device_name;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendKind kind() const = 0;
  virtual BackendCaps Caps() const = 0;
  DType compute_dtype() const { return Caps().compute_dtype; }
  DType kv_dtype() const { return Caps().kv_dtype; }

  // Another handle on this backend's device for one model's weights and
  // engine, so that models sharing a device do not share an ordering or an
  // error: on CUDA its own stream, cuBLAS handle and first error (one model's
  // refused op no longer fails the others; a fault that corrupts the device's
  // CUDA context still reaches all of them). Memory is the device's either
  // way, but a pointer goes back (Free, UnbackRange, ReleaseAddressSpace)
  // through the handle that made it, which must outlive it. nullptr: this
  // backend has nothing per model to separate (the CPU), use it directly.
  virtual absl::StatusOr<std::unique_ptr<Backend>> NewContext() { return nullptr; }
  // Device memory each context from NewContext holds beyond what is allocated
  // through it, at most (on CUDA: the cuBLASLt workspace, attention's split
  // scratch at its largest, the handle and the context's small buffers), so
  // that a model's footprint counts its context. 0 where NewContext gives
  // nothing (the CPU).
  virtual size_t ContextBytes() const { return 0; }

  // Records the ops `issue` calls on this backend into an OpGraph instead of
  // running them (nothing runs until Launch). An op refused while recording
  // fails the capture, not the backend: the error is returned and the
  // backend is as it was. `issue` may not copy, allocate or synchronize.
  // UNIMPLEMENTED where the backend has nothing to gain (the CPU).
  virtual absl::StatusOr<std::unique_ptr<OpGraph>> Capture(const std::function<void()>& issue) {
    (void)issue;
    return absl::UnimplementedError("this backend does not capture ops");
  }
  // Whether Capture can ever succeed here: false where it is always
  // UNIMPLEMENTED, so that a model does not shape its steps for graphs (block
  // tables padded to a bucket) that never come.
  virtual bool can_capture() const { return false; }
  // Changes whenever memory that ops use internally moves (CUDA: the op
  // scratch, grown for a larger attention plan): graphs captured before then
  // hold stale pointers and must be dropped.
  virtual uint64_t capture_epoch() const { return 0; }

  // Memory. Allocate returns RESOURCE_EXHAUSTED when the device is full.
  virtual absl::StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  // Host memory for uploads: a copy from it to the device reads it directly
  // (CUDA: page-locked, so the copy is a DMA the host does not wait for; the
  // host must not write a range until the copies queued from it are done).
  // The default is plain host memory. RESOURCE_EXHAUSTED when none is left.
  virtual absl::StatusOr<void*> AllocateStaging(size_t bytes);
  virtual void FreeStaging(void* ptr);
  // Where the device's memory is the host's (the CPU): a buffer that takes
  // `bytes` over without a copy (leaving it empty), given back through Free
  // like any other. A loaded matrix then exists once, not twice, while it is
  // uploaded. nullopt elsewhere (and for no bytes): allocate and copy.
  virtual std::optional<DeviceBuffer> AdoptHostBytes(std::vector<uint8_t>& bytes);
  // The same for bytes in a read-only mapping (a model file's), which `owner`
  // keeps alive until the buffer is freed; the buffer must never be written.
  // nullopt where the device's memory is its own, for no bytes, or for bytes
  // another buffer already took over.
  virtual std::optional<DeviceBuffer> AdoptMapped(absl::Span<const uint8_t> bytes,
                                                  std::shared_ptr<const void> owner);
  // Whether AdoptHostBytes and AdoptMapped take bytes over (the device's
  // memory is the host's): a loader may then leave weights where they are.
  virtual bool AdoptsHostMemory() const { return false; }
  // Calls fn(begin, end) over disjoint ranges covering [0, n), on the host
  // threads the backend computes with where it has them (the CPU backend's
  // pool, idle between its ops), else on the calling thread: host work that
  // splits by row, such as sampling on the host. Ranges may run at once, so
  // fn must touch only its own rows' state, and must not call the backend
  // (the CPU pool runs one job at a time: a nested call would wait on
  // itself). Other work on the backend waits while it runs.
  virtual void HostParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n > 0) fn(0, n);
  }
  // src: host memory, or the backend's own (a copy on the device). Queued:
  // pageable host memory is read before the call returns, staging memory
  // (AllocateStaging) when the copy runs.
  virtual absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Converts n host floats into the compute dtype at dst.
  virtual absl::Status UploadF32(void* dst, const float* src, size_t n) = 0;
  // Converts n compute-dtype elements at src into host floats.
  virtual absl::Status DownloadF32(float* dst, const void* src, size_t n) = 0;
  // Waits for queued work; reports any asynchronous kernel failure.
  virtual absl::Status Synchronize() = 0;

  // ---- virtual memory, for pools that grow and shrink (runtime::KvCache) ----
  // Address space is reserved once; ranges of it are backed by memory on
  // demand and handed back, each range a multiple of vm_granularity() at such
  // an offset. A range must be unbacked exactly as it was backed. Reads of an
  // unbacked range are undefined (the CPU gives zeros); kernels never make one.
  virtual size_t vm_granularity() const = 0;
  // INVALID_ARGUMENT for 0 or a size not a multiple of the granularity;
  // RESOURCE_EXHAUSTED when the address space cannot be had.
  virtual absl::StatusOr<void*> ReserveAddressSpace(size_t bytes) = 0;
  // Unbacks what is still backed inside, then gives the range back.
  virtual void ReleaseAddressSpace(void* base, size_t bytes) = 0;
  // RESOURCE_EXHAUSTED when the device has no memory for it.
  virtual absl::Status BackRange(void* addr, size_t bytes) = 0;
  // Waits for queued work that may read the range, then frees its memory.
  virtual absl::Status UnbackRange(void* addr, size_t bytes) = 0;

  // ---- ops ----
  // out[i, :] = table[ids[i], :]. Ids were validated against the vocab upstream.
  // The table is dense or, where SupportsWeightFormat takes its format, rows
  // of blocks (each looked-up row dequantized).
  virtual void Embedding(const int32_t* ids /*[n]*/, int32_t n, WeightRef table /*[vocab, hidden]*/,
                         int32_t hidden, void* out /*[n, hidden]*/) = 0;

  // If residual != nullptr: residual += x first, then normalizes residual.
  // out = residual_or_x / rms(residual_or_x) * weight.
  virtual void RmsNorm(const void* x /*[n, hidden]*/, void* residual /*[n, hidden] or null*/,
                       const void* weight /*[hidden]*/, int32_t n, int32_t hidden, float eps,
                       void* out /*[n, hidden]*/) = 0;
  // In place, each of the first `heads` runs of head_dim values in every row
  // (rows row_stride elements apart): v = v / rms(v) * weight, one weight
  // for every head. Qwen3's q and k norms, on the QKV product's rows before
  // RoPE; the arithmetic is RmsNorm's.
  virtual void HeadRmsNorm(void* x /*[rows, row_stride]*/, int32_t rows, int64_t row_stride,
                           int32_t heads, int32_t head_dim, const void* weight /*[head_dim]*/,
                           float eps) = 0;

  // c = a * w^T (+ bias broadcast over rows when bias != nullptr). w is dense
  // in the compute dtype, or n rows of quantized blocks (k a multiple of 32)
  // in a format SupportsWeightFormat accepts.
  virtual void Gemm(const void* a /*[m, k]*/, WeightRef w /*[n, k]*/,
                    const void* bias /*[n] or null*/, int32_t m, int32_t n, int32_t k,
                    void* c /*[m, n]*/) = 0;
  // Gemm for each part, all of the same activations a [m, k]: what a fused
  // matrix split by rows runs (q, k and v, each in its own format; gate and
  // up, into the columns of one output), and a mixture of experts' products,
  // each part over its own range of a's rows (GemmPart::first_row, rows). A backend may read a once
  // for all of them (the CPU quantizes it once, and runs all the parts' tiles in one pass over its
  // pool); by default, one Gemm each, a row at a time where the output's rows are not n apart
  // (slow: a backend that keeps weights split overrides this; the ones that fuse them never split).
  virtual void GroupedGemm(const void* a /*[m, k]*/, const GemmPart* parts, int32_t num_parts,
                           int32_t m, int32_t k) {
    const size_t elem = DTypeSize(compute_dtype());
    for (int32_t i = 0; i < num_parts; ++i) {
      const GemmPart& p = parts[i];
      const char* rows_of_a =
          static_cast<const char*>(a) + static_cast<size_t>(p.first_row) * k * elem;
      const int32_t rows = p.Rows(m);
      if (p.RowStride() == p.n) {
        Gemm(rows_of_a, p.w, p.bias, rows, p.n, k, p.c);
        continue;
      }
      for (int32_t r = 0; r < rows; ++r) {
        Gemm(rows_of_a + static_cast<size_t>(r) * k * elem, p.w, p.bias, 1, p.n, k,
             static_cast<char*>(p.c) + static_cast<size_t>(r) * p.RowStride() * elem);
      }
    }
  }
  // Gemm without a bias, written as fp32 whatever the compute dtype: the
  // lm_head, whose logits are sampled and compared, must not be rounded to 16
  // bits (bf16's step is 0.125 between 16 and 32). The default is Gemm, which
  // is right only for an fp32 compute dtype; every other backend overrides it.
  virtual void GemmToF32(const void* a /*[m, k]*/, WeightRef w /*[n, k]*/, int32_t m, int32_t n,
                         int32_t k, float* c /*[m, n] fp32*/) {
    Gemm(a, w, nullptr, m, n, k, c);
  }
  // Whether Gemm takes weights in `format` (kDense always).
  virtual bool SupportsWeightFormat(WeightFormat format) const {
    return format == WeightFormat::kDense;
  }
  // How Gemm reads rows of `format` fastest. A loader lays a matrix out so
  // where it can (cohost/kernels/panels.h: FitsPanels, PackPanels) and says
  // so in its WeightRefs; Gemm takes kRows of every format it supports.
  virtual WeightLayout PreferredLayout(WeightFormat format) const {
    (void)format;
    return WeightLayout::kRows;
  }

  // OK when PagedAttention and RopeWriteKv take heads of `head_dim`;
  // otherwise UNIMPLEMENTED, naming the head sizes this backend has kernels
  // for. Model::Create asks before any weight is uploaded.
  virtual absl::Status CheckHeadDim(int32_t head_dim) const {
    (void)head_dim;
    return absl::OkStatus();
  }

  // x += y elementwise.
  virtual void Add(void* x /*[n]*/, const void* y /*[n]*/, int64_t n) = 0;

  // out = silu(gate) * up, with gate_up packed per row as [gate | up].
  virtual void SiluMul(const void* gate_up /*[n, 2 * inter]*/, int32_t n, int32_t inter,
                       void* out /*[n, inter]*/) = 0;

  // Rotates q, k in place (RopeSpec: which pairs, by what angles) and writes
  // k, v into the pages.
  virtual void RopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                           const RopeSpec& rope, const PagedKv& kv) = 0;

  // Causal attention of each new token over its sequence's cached context
  // (prefix pages plus the new tokens themselves, already written), GQA-aware.
  // Covers decode (1 new token) and prefill chunks alike. Token t's q heads
  // start at q + t * q_stride (QkvRows).
  virtual void PagedAttention(const void* q, int64_t q_stride, const BatchLayout& batch,
                              const PagedKv& kv, int32_t num_heads, float scale,
                              void* out /*[num_tokens, num_heads, head_dim]*/) = 0;

  // out[r] = row r's token drawn as specs[r] says (SampleSpec; temperature 0:
  // the first column of the largest logit): sampling on the device, so that
  // only ids cross to the host. NaN counts as -inf and never wins; a row with
  // nothing above -inf gives 0; +inf logits share all the mass.
  virtual void SampleRows(const float* x /*[rows, width] fp32*/, int32_t rows, int32_t width,
                          const SampleSpec* specs /*[rows]*/, int32_t* out /*[rows]*/) = 0;

  // Row r's PenaltyTerms, terms[starts[r], starts[r + 1]), applied to its
  // logits in place (before SampleRows). A row names each token once; a
  // token outside [0, width) is skipped. Where `saved` is not null, saved[i]
  // = term i's logit before it moved (left as is for a skipped token), for
  // RestoreLogits.
  virtual void ApplyPenalties(float* x /*[rows, width] fp32*/, int32_t rows, int32_t width,
                              const int32_t* starts /*[rows + 1]*/,
                              const PenaltyTerm* terms /*[starts[rows]]*/,
                              float* saved /*[starts[rows]] or null*/) = 0;

  // A grammar's masks (constrained decoding), applied before ApplyPenalties:
  // where mask_of[r] >= 0, every token of row r whose bit is clear in mask
  // m = mask_of[r] becomes -inf: the bit of token t is bit t % 64 of
  // masks[m * words + t / 64], words = (width + 63) / 64. Other rows are left
  // as they are.
  virtual void MaskRows(float* x /*[rows, width] fp32*/, int32_t rows, int32_t width,
                        const int32_t* mask_of /*[rows]*/,
                        const uint64_t* masks /*[masks, words]*/) = 0;

  // Undoes ApplyPenalties with the same terms: x[r, term i's token] =
  // saved[i], token outside [0, width) skipped, so that each row holds its
  // raw logits again, bit for bit (logprobs read the model's distribution
  // without a copy of the rows).
  virtual void RestoreLogits(float* x /*[rows, width] fp32*/, int32_t rows, int32_t width,
                             const int32_t* starts /*[rows + 1]*/,
                             const PenaltyTerm* terms /*[starts[rows]]*/,
                             const float* saved /*[starts[rows]]*/) = 0;

  // Row r's log-softmax (LogprobsOfRow, row_logprobs.h) at chosen[r] and at
  // its top_n most likely tokens: out[r * (1 + top_n)] = {chosen[r], its
  // logprob}, then the top_n, higher logit first, ties to the lower id. Only
  // ids and logprobs cross to the host. top_n in [0, min(width,
  // kMaxTopLogprobs)]. A backend may sum the normalizer in float where the
  // reference sums in double.
  virtual void RowLogprobs(const float* x /*[rows, width] fp32*/, int32_t rows, int32_t width,
                           const int32_t* chosen /*[rows]*/, int32_t top_n,
                           TokenLogprob* out /*[rows, 1 + top_n]*/) = 0;

  // out[r, :] = x[rows[r], :].
  virtual void GatherRows(const void* x /*[n, width]*/, const int32_t* rows /*[num_rows]*/,
                          int32_t num_rows, int32_t width, void* out /*[num_rows, width]*/) = 0;

  // A mixture of experts' outputs, weighted into each token's row: out[t, :]
  // = sum over j < k of weights[t * k + j] * y[rows[t * k + j], :], summed in
  // fp32 in order of j and rounded once (runtime/model/moe_routing.h: y holds
  // the experts' rows, `rows` their ExpertRoute::row_of_pair).
  virtual void MoeCombine(const void* y /*[*, width]*/, const int32_t* rows /*[n, k]*/,
                          const float* weights /*[n, k] fp32*/, int32_t n, int32_t k, int32_t width,
                          void* out /*[n, width]*/) = 0;
};

// Always available. `kv_dtype`: what its KV caches store, any DType (fp16 and
// bf16 halve the cache; fp32, the default, is the exact reference).
// `pin_threads`: its pool's workers each bound to one CPU (cpu::ThreadPool).
std::unique_ptr<Backend> MakeCpuBackend(int num_threads = 0, DType kv_dtype = DType::kF32,
                                        bool pin_threads = false);

// NOT_FOUND / UNAVAILABLE when built without CUDA or no device is present.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index);
// The CUDA devices visible to this process; 0 without CUDA or without a
// driver.
int CudaDeviceCount();

// RAII buffer of a backend's: device memory, or host staging memory.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Create(Backend* backend, size_t bytes);
  // Host memory from AllocateStaging, given back through FreeStaging.
  static absl::StatusOr<DeviceBuffer> CreateStaging(Backend* backend, size_t bytes);
  // Owns `data`, memory of `backend`'s that it did not Allocate (see
  // AdoptHostBytes): Reset gives it back through backend->Free all the same.
  static DeviceBuffer Adopt(Backend* backend, void* data, size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  void Reset();

 private:
  static absl::StatusOr<DeviceBuffer> Make(Backend* backend, size_t bytes, bool staging);

  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool staging_ = false;
};

}  // namespace cohost::kernels
