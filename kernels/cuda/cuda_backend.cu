// CudaBackend: kernels::Backend on one CUDA device, computing in bf16. One
// stream per backend; memory is stream-ordered (cudaMallocAsync). Ops return
// void, so the first failure of any op (bad argument, unsupported shape, CUDA
// or cuBLAS error) is recorded and reported by Synchronize and the copies to
// host; after it the backend stays failed, as a CUDA context does after a
// kernel fault.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "attention_plan.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "common/status_macros.h"
#include "cublas_api.h"
#include "cuda_common.cuh"
#include "cuda_ops.cuh"
#include "dispatch.cuh"
#include "driver_vm.h"
#include "lt_gemm.h"

namespace cohost::kernels {
namespace {

using cuda::bf16;
using cuda::CudaStatus;

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaContext(int device, std::string name,
                                                         size_t total_memory);

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, std::string name, size_t total_memory, cudaStream_t stream,
              const cuda::CublasApi* blas, cublasHandle_t cublas, std::unique_ptr<cuda::LtGemm> lt)
      : device_(device),
        name_(std::move(name)),
        total_memory_(total_memory),
        stream_(stream),
        blas_(blas),
        cublas_(cublas),
        lt_(std::move(lt)),
        vm_status_(cuda::DriverVm::Load(&vm_)) {
    int sms = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_) == cudaSuccess) {
      num_sms_ = sms;
    } else {
      cudaGetLastError();  // no SM count: attention plans one split
    }
    CUmemAllocationProp prop = AllocationProp();
    size_t g = 0;
    if (vm_status_.ok() &&
        vm_.granularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) == CUDA_SUCCESS && g > 0) {
      granularity_ = g;
    }
  }

  ~CudaBackend() override {
    // Teardown errors have nowhere to go; the stream is drained first so no
    // queued work outlives the handle.
    cudaSetDevice(device_);
    if (scratch_ != nullptr) cudaFreeAsync(scratch_, stream_);
    cudaStreamSynchronize(stream_);  // no matmul still runs on cuBLASLt's handle
    // Ranges still backed (an owner that never unbacked them) go back to the
    // device: their handles are this context's.
    for (const auto& [addr, backed] : backed_) {
      vm_.unmap(addr, backed.bytes);
      vm_.release(backed.handle);
    }
    // And the address space they lay in (an owner that never released it).
    for (const auto& [base, bytes] : reserved_) vm_.address_free(base, bytes);
    lt_.reset();  // frees its workspace (cuBLAS's too: nothing runs on it now) on the stream
    cudaStreamSynchronize(stream_);
    blas_->destroy(cublas_);
    cudaStreamDestroy(stream_);
    cudaGetLastError();
  }

  BackendKind kind() const override { return BackendKind::kCuda; }

  absl::StatusOr<std::unique_ptr<Backend>> NewContext() override {
    RETURN_IF_ERROR(Enter());
    return MakeCudaContext(device_, name_, total_memory_);
  }

  // The handles' workspace, the op scratch at its largest (GrowScratch stops
  // doubling there), and kContextOtherBytes for the rest.
  size_t ContextBytes() const override {
    return cuda::LtGemm::kWorkspaceBytes + static_cast<size_t>(cuda::kAttnMaxWorkspaceBytes) +
           kContextOtherBytes;
  }

  BackendCaps Caps() const override {
    BackendCaps caps;
    caps.compute_dtype = DType::kBF16;
    caps.kv_dtype = DType::kBF16;  // the kernels read and write bf16 pages only
    caps.device_name = name_;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(device_) == cudaSuccess &&
        cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      caps.free_memory = free_bytes;
      caps.total_memory = total_bytes;
    } else {
      cudaGetLastError();  // reported as zero memory; the next checked call sees a sticky error
    }
    return caps;
  }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    // Sizes past the device's memory never reach the driver, which may call
    // them invalid values rather than out of memory.
    if (bytes > total_memory_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cudaMallocAsync(", bytes, " bytes): more than the device's ", total_memory_));
    }
    void* ptr = nullptr;
    cudaError_t err = cudaMallocAsync(&ptr, std::max<size_t>(bytes, 1), stream_);
    if (err != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky; clear it for the next launch check
      return CudaStatus(err, absl::StrCat("cudaMallocAsync(", bytes, " bytes)").c_str());
    }
    return ptr;
  }

  void Free(void* ptr) override {
    if (ptr == nullptr) return;
    Record(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    Record(CudaStatus(cudaFreeAsync(ptr, stream_), "cudaFreeAsync"));
  }

  // Page-locked (portable: any device's copies read it directly), so a copy
  // from it is a DMA queued on the stream.
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    void* ptr = nullptr;
    cudaError_t err = cudaHostAlloc(&ptr, std::max<size_t>(bytes, 1), cudaHostAllocPortable);
    if (err != cudaSuccess) {
      cudaGetLastError();  // not sticky
      return absl::ResourceExhaustedError(
          absl::StrCat("cudaHostAlloc(", bytes, " bytes): ", cudaGetErrorString(err)));
    }
    return ptr;
  }

  // Waits for the copies queued from it (cudaFreeHost synchronizes).
  void FreeStaging(void* ptr) override {
    if (ptr != nullptr) Record(CudaStatus(cudaFreeHost(ptr), "cudaFreeHost"));
  }

  // Pageable host memory is staged by the driver before cudaMemcpyAsync
  // returns, so src may be reused at once; staging memory is read by the
  // copy as it runs, in stream order.
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    if (bytes == 0) return absl::OkStatus();
    return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "CopyToDevice");
  }

  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    if (bytes > 0) {
      Record(
          CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "CopyToHost"));
    }
    return Synchronize();
  }

  // Virtual memory through the driver API (as vLLM's CuMemAllocator and
  // kvcached do): cuMemAddressReserve once, then cuMemCreate + cuMemMap +
  // cuMemSetAccess per backed range, cuMemUnmap + cuMemRelease to give it back.
  // Addresses never move, so pointers into the range stay valid throughout.
  size_t vm_granularity() const override { return granularity_; }

  absl::StatusOr<void*> ReserveAddressSpace(size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    RETURN_IF_ERROR(vm_status_);
    if (bytes == 0 || bytes % granularity_ != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cuda: reserve ", bytes, " bytes: not a positive multiple of ", granularity_));
    }
    CUdeviceptr base = 0;
    RETURN_IF_ERROR(
        vm_.Check(vm_.address_reserve(&base, bytes, granularity_, 0, 0), "cuMemAddressReserve"));
    reserved_[base] = bytes;
    return reinterpret_cast<void*>(base);
  }

  void ReleaseAddressSpace(void* base, size_t bytes) override {
    if (base == nullptr) return;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(base), hi = lo + bytes;
    std::vector<uintptr_t> inside;
    for (const auto& [addr, backed] : backed_) {
      if (addr >= lo && addr < hi) inside.push_back(addr);
    }
    for (uintptr_t addr : inside) {
      Record(UnbackRange(reinterpret_cast<void*>(addr), backed_.at(addr).bytes));
    }
    Record(vm_.Check(vm_.address_free(reinterpret_cast<CUdeviceptr>(base), bytes),
                     "cuMemAddressFree"));
    reserved_.erase(reinterpret_cast<CUdeviceptr>(base));
  }

  absl::Status BackRange(void* addr, size_t bytes) override {
    RETURN_IF_ERROR(Enter());
    RETURN_IF_ERROR(vm_status_);
    RETURN_IF_ERROR(CheckRange(addr, bytes));
    const uintptr_t key = reinterpret_cast<uintptr_t>(addr);
    if (backed_.contains(key)) {
      return absl::InvalidArgumentError("cuda: range is already backed");
    }
    CUmemAllocationProp prop = AllocationProp();
    CUmemGenericAllocationHandle handle = 0;
    RETURN_IF_ERROR(vm_.Check(vm_.create(&handle, bytes, &prop, 0), "cuMemCreate"));
    absl::Status s = vm_.Check(vm_.map(key, bytes, 0, handle, 0), "cuMemMap");
    if (s.ok()) {
      CUmemAccessDesc access{};
      access.location = prop.location;
      access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      s.Update(vm_.Check(vm_.set_access(key, bytes, &access, 1), "cuMemSetAccess"));
      if (!s.ok()) vm_.unmap(key, bytes);
    }
    if (!s.ok()) {
      vm_.release(handle);
      return s;
    }
    backed_[key] = Backed{handle, bytes};
    return absl::OkStatus();
  }

  // A release, as Free is: done after a recorded error too (the KV memory
  // of a context that failed must go back to the device, or the pool would
  // count it free while it stays mapped).
  absl::Status UnbackRange(void* addr, size_t bytes) override {
    Record(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    auto it = backed_.find(reinterpret_cast<uintptr_t>(addr));
    if (it == backed_.end() || it->second.bytes != bytes) {
      return absl::InvalidArgumentError("cuda: range was not backed as one piece");
    }
    // Work queued before now may still read the range. (A stream that failed
    // runs nothing more: the range is released all the same.)
    absl::Status s = CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    s.Update(vm_.Check(vm_.unmap(it->first, bytes), "cuMemUnmap"));
    s.Update(vm_.Check(vm_.release(it->second.handle), "cuMemRelease"));
    backed_.erase(it);
    return s;
  }

  absl::Status UploadF32(void* dst, const float* src, size_t n) override {
    RETURN_IF_ERROR(Enter());
    if (n == 0) return absl::OkStatus();
    std::vector<uint16_t> staging(n);
    for (size_t i = 0; i < n; ++i) staging[i] = F32ToBf16(src[i]);
    // Synchronous so the staging vector outlives the transfer whatever the
    // driver's staging policy; uploads are weights and tests, not the hot path.
    Record(CudaStatus(
        cudaMemcpyAsync(dst, staging.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice, stream_),
        "UploadF32"));
    return Synchronize();
  }

  absl::Status DownloadF32(float* dst, const void* src, size_t n) override {
    RETURN_IF_ERROR(Enter());
    if (n == 0) return absl::OkStatus();
    std::vector<uint16_t> staging(n);
    Record(CudaStatus(
        cudaMemcpyAsync(staging.data(), src, n * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_),
        "DownloadF32"));
    RETURN_IF_ERROR(Synchronize());
    for (size_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(staging[i]);
    return absl::OkStatus();
  }

  bool can_capture() const override { return true; }
  absl::StatusOr<std::unique_ptr<OpGraph>> Capture(const std::function<void()>& issue) override {
    RETURN_IF_ERROR(Enter());
    // Thread-local: another thread's allocations (a model loading) do not
    // break this capture.
    RETURN_IF_ERROR(CudaStatus(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
                               "cudaStreamBeginCapture"));
    capturing_ = true;
    issue();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    absl::Status s = CudaStatus(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    // Nothing ran: an op refused while recording is this capture's failure,
    // not the device's.
    absl::Status recorded;
    swap(recorded, first_error_);
    s.Update(recorded);
    cudaGraphExec_t exec = nullptr;
    if (s.ok()) s.Update(CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate"));
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (!s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("capture refused: ", s.message()));
    }
    return std::unique_ptr<OpGraph>(new Graph(this, exec));
  }

  uint64_t capture_epoch() const override { return capture_epoch_; }

  absl::Status Synchronize() override {
    Record(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    Record(CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
    return first_error_;
  }

  // ---- ops ----
  void Embedding(const int32_t* ids, int32_t n, WeightRef table, int32_t hidden,
                 void* out) override {
    if (!EnterOp() || !Dense("Embedding", table)) return;
    Record(cuda::LaunchGatherRows(static_cast<const bf16*>(table.data), ids, n, hidden,
                                  static_cast<bf16*>(out), stream_));
  }

  void RmsNorm(const void* x, void* residual, const void* weight, int32_t n, int32_t hidden,
               float eps, void* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchRmsNorm(static_cast<const bf16*>(x), static_cast<bf16*>(residual),
                               static_cast<const bf16*>(weight), n, hidden, eps,
                               static_cast<bf16*>(out), stream_));
  }
  void HeadRmsNorm(void* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                   const void* weight, float eps) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchHeadRmsNorm(static_cast<bf16*>(x), rows, row_stride, heads, head_dim,
                                   static_cast<const bf16*>(weight), eps, stream_));
  }

  void Gemm(const void* a, WeightRef weight, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    Product("Gemm", a, weight, bias, m, n, k, c, CUDA_R_16BF);
  }

  void GemmToF32(const void* a, WeightRef weight, int32_t m, int32_t n, int32_t k,
                 float* c) override {
    Product("GemmToF32", a, weight, nullptr, m, n, k, c, CUDA_R_32F);
  }

  absl::Status CheckHeadDim(int32_t head_dim) const override {
    return cuda::DispatchHeadDim(head_dim, "attention", [](auto) { return absl::OkStatus(); });
  }

  void Add(void* x, const void* y, int64_t n) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchAdd(static_cast<bf16*>(x), static_cast<const bf16*>(y), n, stream_));
  }

  void SiluMul(const void* gate_up, int32_t n, int32_t inter, void* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchSiluMul(static_cast<const bf16*>(gate_up), n, inter, static_cast<bf16*>(out),
                               stream_));
  }

  void RopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                   const RopeSpec& rope, const PagedKv& kv) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchRopeWriteKv(qkv, batch, num_heads, rope, kv, stream_));
  }

  void PagedAttention(const void* q, int64_t q_stride, const BatchLayout& batch, const PagedKv& kv,
                      int32_t num_heads, float scale, void* out) override {
    if (!EnterOp()) return;
    cuda::AttentionPlan plan = cuda::PlanPagedAttention(batch, kv, num_heads, num_sms_);
    if (plan.num_splits > 1 && !GrowScratch(plan.workspace_bytes)) {
      plan = cuda::AttentionPlan{};  // no memory for splits: one, slower but whole
    }
    Record(cuda::LaunchPagedAttention(static_cast<const bf16*>(q), q_stride, batch, kv, num_heads,
                                      scale, static_cast<bf16*>(out), plan, scratch_, stream_));
  }

  void MaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
                const uint64_t* masks) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchMaskRows(x, rows, width, mask_of, masks, stream_));
  }
  void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                      const PenaltyTerm* terms, float* saved) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchApplyPenalties(x, rows, width, starts, terms, saved, stream_));
  }
  void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                     const PenaltyTerm* terms, const float* saved) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchRestoreLogits(x, rows, width, starts, terms, saved, stream_));
  }

  void SampleRows(const float* x, int32_t rows, int32_t width, const SampleSpec* specs,
                  int32_t* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchSampleRows(x, rows, width, specs, out, stream_));
  }

  void RowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                   int32_t top_n, TokenLogprob* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchRowLogprobs(x, rows, width, chosen, top_n, out, stream_));
  }

  void MoeCombine(const void* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                  int32_t width, void* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchMoeCombine(static_cast<const bf16*>(y), rows, weights, n, k, width,
                                  static_cast<bf16*>(out), stream_));
  }

  void GatherRows(const void* x, const int32_t* rows, int32_t num_rows, int32_t width,
                  void* out) override {
    if (!EnterOp()) return;
    Record(cuda::LaunchGatherRows(static_cast<const bf16*>(x), rows, num_rows, width,
                                  static_cast<bf16*>(out), stream_));
  }

 private:
  struct Backed {
    CUmemGenericAllocationHandle handle;
    size_t bytes;
  };

  CUmemAllocationProp AllocationProp() const {
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device_;
    return prop;
  }

  absl::Status CheckRange(const void* addr, size_t bytes) const {
    if (reinterpret_cast<uintptr_t>(addr) % granularity_ != 0 || bytes == 0 ||
        bytes % granularity_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cuda: range of ", bytes, " bytes not aligned to ", granularity_));
    }
    return absl::OkStatus();
  }

  // Weights (or a table) in bf16: the only format CUDA takes; otherwise
  // records UNIMPLEMENTED naming `op` and the format.
  bool Dense(const char* op, WeightRef w) {
    if (w.format == WeightFormat::kDense) return true;
    Record(absl::UnimplementedError(absl::StrCat(op, ": weights in ",
                                                 std::string(WeightFormatName(w.format)),
                                                 " (the CUDA backend takes bf16)")));
    return false;
  }

  // m, n and k not negative; otherwise records INVALID_ARGUMENT.
  bool GemmShape(const char* op, int32_t m, int32_t n, int32_t k) {
    if (m >= 0 && n >= 0 && k >= 0) return true;
    Record(absl::InvalidArgumentError(absl::StrCat(op, ": bad shape m=", m, " n=", n, " k=", k)));
    return false;
  }

  // Gemm and GemmToF32: c[m, n] = a[m, k] * w[n, k]^T (+ bias, bf16 out
  // only) with c of c_type, bf16 in and fp32 accumulation. Row-major, that is,
  // read column-major, C^T[n, m] = W[n, k] * A^T[k, m]: cuBLAS sees w as a
  // k x n column-major matrix (ld k) to transpose, and a as k x m (ld k) as
  // is; c is n x m (ld n). cuBLASLt first (the bias its epilogue), else
  // cublasGemmEx and a second pass for the bias.
  void Product(const char* op, const void* a, WeightRef weight, const void* bias, int32_t m,
               int32_t n, int32_t k, void* c, cudaDataType_t c_type) {
    if (!EnterOp() || !Dense(op, weight) || !GemmShape(op, m, n, k)) return;
    if (m == 0 || n == 0) return;
    if (k > 0 && LtRan(a, weight.data, bias, m, n, k, c, c_type)) return;  // bias included
    if (k == 0) {  // an empty sum: c = bias or 0
      const size_t elem = c_type == CUDA_R_32F ? sizeof(float) : sizeof(bf16);
      Record(CudaStatus(cudaMemsetAsync(c, 0, elem * m * static_cast<size_t>(n), stream_),
                        "cudaMemsetAsync"));
    } else {
      const float alpha = 1.f, beta = 0.f;
      Record(blas_->Check(blas_->gemm_ex(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                         weight.data, CUDA_R_16BF, k, a, CUDA_R_16BF, k, &beta, c,
                                         c_type, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          "cublasGemmEx"));
    }
    if (bias != nullptr) {
      Record(cuda::LaunchAddBias(static_cast<bf16*>(c), static_cast<const bf16*>(bias), m, n,
                                 stream_));
    }
  }

  // The product through cuBLASLt (bias as its epilogue): true when queued or
  // failed (the failure recorded); false when it has no algorithm for the
  // shape, or is missing, and cublasGemmEx should run it instead.
  bool LtRan(const void* a, const void* w, const void* bias, int32_t m, int32_t n, int32_t k,
             void* c, cudaDataType_t c_type) {
    if (lt_ == nullptr) return false;
    absl::Status s = lt_->Run(a, w, bias, m, n, k, c, c_type);
    if (absl::IsUnimplemented(s)) return false;
    Record(s);
    return true;
  }

  // Makes the op scratch at least `bytes` (stream-ordered, so work queued
  // before still reads the old one); false, with the old kept, when the device
  // has no memory for it.
  bool GrowScratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return true;
    if (capturing_) {
      // A graph must not own the scratch: the eager step before a capture
      // grows it.
      Record(absl::FailedPreconditionError("the op scratch must grow before a capture"));
      return false;
    }
    // Doubling stops at the largest plan's need, which ContextBytes counts.
    size_t want = std::max(
        bytes, std::min(2 * scratch_bytes_, static_cast<size_t>(cuda::kAttnMaxWorkspaceBytes)));
    void* fresh = nullptr;
    while (cudaMallocAsync(&fresh, want, stream_) != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky
      if (want == bytes) return false;
      want = bytes;  // doubling asked too much: exactly what is needed
    }
    if (scratch_ != nullptr) Record(CudaStatus(cudaFreeAsync(scratch_, stream_), "cudaFreeAsync"));
    scratch_ = fresh;
    scratch_bytes_ = want;
    ++capture_epoch_;
    return true;
  }

  // A captured graph, instantiated; launched on the backend's stream.
  class Graph final : public OpGraph {
   public:
    Graph(CudaBackend* backend, cudaGraphExec_t exec) : backend_(backend), exec_(exec) {}
    ~Graph() override {
      cudaSetDevice(backend_->device_);
      cudaGraphExecDestroy(exec_);
      cudaGetLastError();
    }
    absl::Status Launch() override {
      RETURN_IF_ERROR(backend_->Enter());
      backend_->Record(CudaStatus(cudaGraphLaunch(exec_, backend_->stream_), "cudaGraphLaunch"));
      return backend_->first_error_;
    }

   private:
    CudaBackend* backend_;
    cudaGraphExec_t exec_;
  };

  // Keeps the first error only (Status::Update ignores later ones).
  void Record(const absl::Status& s) { first_error_.Update(s); }

  // Makes this backend's device current (several backends may share a thread).
  absl::Status Enter() {
    Record(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    return first_error_;
  }

  // Ops after a failure are skipped: their inputs may be garbage.
  bool EnterOp() { return Enter().ok(); }

  int device_;
  std::string name_;
  size_t total_memory_;  // bytes, from cudaDeviceProp
  cudaStream_t stream_;
  const cuda::CublasApi* blas_;  // the process's cuBLAS entry points
  cublasHandle_t cublas_;
  std::unique_ptr<cuda::LtGemm> lt_;  // null without libcublasLt: cublasGemmEx alone
  absl::Status first_error_;
  size_t granularity_ = size_t{2} << 20;           // cuMemGetAllocationGranularity, set at creation
  absl::flat_hash_map<uintptr_t, Backed> backed_;  // backed ranges by start address
  absl::flat_hash_map<CUdeviceptr, size_t> reserved_;  // address space reserved, by base
  cuda::DriverVm vm_;
  absl::Status vm_status_;  // why the driver's VM calls are missing, if they are
  int32_t num_sms_ = 0;     // what the attention plan fills
  // What a context holds beside its workspace and scratch, an allowance: the
  // cuBLAS and cuBLASLt handles' own memory, the step's metadata and
  // penalty buffers, and the modules loaded for it.
  static constexpr size_t kContextOtherBytes = size_t{16} << 20;

  void* scratch_ = nullptr;  // ops' workspace (attention's split-K partials)
  size_t scratch_bytes_ = 0;
  uint64_t capture_epoch_ = 0;  // bumped when scratch_ moves
  bool capturing_ = false;      // inside Capture's issue()
};

// A backend on `device` (current) with a stream and cuBLAS handle of its own.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaContext(int device, std::string name,
                                                         size_t total_memory) {
  cudaStream_t stream = nullptr;
  if (absl::Status s =
          CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<const cuda::CublasApi*> blas = cuda::CublasApi::Get();
  if (!blas.ok()) {
    cudaStreamDestroy(stream);
    return blas.status();
  }
  cublasHandle_t cublas = nullptr;
  absl::Status s = (*blas)->Check((*blas)->create(&cublas), "cublasCreate");
  if (s.ok()) s.Update((*blas)->Check((*blas)->set_stream(cublas, stream), "cublasSetStream"));
  if (!s.ok()) {
    if (cublas != nullptr) (*blas)->destroy(cublas);
    cudaStreamDestroy(stream);
    return s;
  }
  // cuBLASLt is the fast path, not a requirement: without it every product
  // is a cublasGemmEx.
  absl::StatusOr<std::unique_ptr<cuda::LtGemm>> lt = cuda::LtGemm::Create(*blas, stream);
  // cublasGemmEx (the fallback when cuBLASLt refuses a shape) shares
  // cuBLASLt's workspace: the two run in stream order. Without one of its own
  // cuBLAS would allocate with cudaMallocAsync, which a captured decode graph
  // must not contain (a handle without cuBLASLt keeps cuBLAS's default).
  if (lt.ok()) {
    if (absl::Status w = (*blas)->Check(
            (*blas)->set_workspace(cublas, (*lt)->workspace(), (*lt)->workspace_bytes()),
            "cublasSetWorkspace");
        !w.ok()) {
      lt->reset();
      (*blas)->destroy(cublas);
      cudaStreamDestroy(stream);
      return w;
    }
  }
  return std::unique_ptr<Backend>(new CudaBackend(device, std::move(name), total_memory, stream,
                                                  *blas, cublas,
                                                  lt.ok() ? *std::move(lt) : nullptr));
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // not sticky, but do not leave it for the next call
    return 0;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return absl::UnavailableError(absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorName(err), " (",
                                               cudaGetErrorString(err), ")"));
  }
  if (count == 0) return absl::UnavailableError("no CUDA device present");
  if (device_index < 0 || device_index >= count) {
    return absl::UnavailableError(
        absl::StrCat("CUDA device ", device_index, " out of range: ", count, " device(s) present"));
  }
  RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_index), "cudaSetDevice"));
  cudaDeviceProp prop{};
  if (absl::Status s =
          CudaStatus(cudaGetDeviceProperties(&prop, device_index), "cudaGetDeviceProperties");
      !s.ok()) {
    return s;
  }
  return MakeCudaContext(device_index,
                         absl::StrCat(prop.name, " (sm_", prop.major, prop.minor, ")"),
                         prop.totalGlobalMem);
}

}  // namespace cohost::kernels
