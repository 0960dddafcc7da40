// CpuBackend: host memory (64-byte aligned), memcpy copies, fp32 compute, and
// the reference ops of cpu_ops.h over a small persistent thread pool.
#include <cblas.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/cpu_info.h"
#include "cohost/kernels/row_logprobs.h"
#include "common/status_macros.h"
#include "cpu_ops.h"
#include "openblas_core.h"
#include "quant/quant_kernels.h"

namespace cohost::kernels {

namespace {

constexpr size_t kAlignment = 64;  // one cache line; also what AVX-512 loads like

class CpuBackend final : public Backend {
 public:
  CpuBackend(int num_threads, DType kv_dtype, bool pin_threads)
      : kv_dtype_(kv_dtype), pool_(num_threads, pin_threads) {
    // OpenBLAS (the dense GEMMs of --cpu-precision reference) sizes its own
    // threads from the cores it sees, past --threads and a cgroup's quota:
    // hold it to the pool's size, never above what it chose itself (so
    // OPENBLAS_NUM_THREADS, the sanitizer runs' 1, still wins). Process-wide,
    // as OpenBLAS is: the last backend made sets it.
    cpu::SettleOpenBlasCore();
    static const int openblas_own = openblas_get_num_threads();
    openblas_set_num_threads(std::min(openblas_own, pool_.num_threads()));
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page_size > 0) total_memory_ = static_cast<size_t>(pages) * page_size;
  }

  BackendKind kind() const override { return BackendKind::kCpu; }

  BackendCaps Caps() const override {
    BackendCaps caps;
    caps.compute_dtype = DType::kF32;
    caps.kv_dtype = kv_dtype_;
    caps.total_memory = total_memory_;
    caps.free_memory = HostAvailableMemory();
    // OpenBLAS's kernel choice decides GEMM speed; a generic one (e.g.
    // "Prescott" on a CPU it does not recognise, where SettleOpenBlasCore
    // could not help) is worth seeing in logs.
    caps.device_name = absl::StrCat("cpu (", pool_.num_threads(), pool_.pinned() ? " pinned" : "",
                                    " threads, OpenBLAS ", openblas_get_corename(), ")");
    return caps;
  }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    // More than the machine has can only fail later (overcommit, then the OOM
    // killer); refuse it now, as a GPU would.
    if (bytes > std::numeric_limits<size_t>::max() - kAlignment ||
        (total_memory_ > 0 && bytes > total_memory_)) {
      return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
    }
    // aligned_alloc wants a multiple of the alignment; never ask for 0 bytes.
    const size_t rounded =
        bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cpu: out of memory allocating ", bytes, " bytes"));
    }
    return p;
  }

  void Free(void* ptr) override {
    {
      std::lock_guard<std::mutex> lock(adopted_mu_);
      if (auto it = adopted_.find(ptr); it != adopted_.end()) {
        adopted_.erase(it);  // the adopted bytes' owner goes with its entry
        return;
      }
    }
    std::free(ptr);
  }

  std::optional<DeviceBuffer> AdoptHostBytes(std::vector<uint8_t>& bytes) override {
    if (bytes.empty()) return std::nullopt;
    auto owned = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    bytes.clear();
    void* data = owned->data();
    const size_t size = owned->size();
    {
      std::lock_guard<std::mutex> lock(adopted_mu_);
      adopted_.emplace(data, std::move(owned));
    }
    return DeviceBuffer::Adopt(this, data, size);
  }
  std::optional<DeviceBuffer> AdoptMapped(absl::Span<const uint8_t> bytes,
                                          std::shared_ptr<const void> owner) override {
    if (bytes.empty() || owner == nullptr) return std::nullopt;
    // Read-only to every kernel that reads weights; Free only forgets it.
    void* data = const_cast<uint8_t*>(bytes.data());
    {
      std::lock_guard<std::mutex> lock(adopted_mu_);
      // Two buffers over the same bytes (a file naming one range twice)
      // would free it twice: the second one copies instead.
      if (!adopted_.emplace(data, std::move(owner)).second) return std::nullopt;
    }
    return DeviceBuffer::Adopt(this, data, bytes.size());
  }
  bool AdoptsHostMemory() const override { return true; }

  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status UploadF32(void* dst, const float* src, size_t n) override {
    return CopyToDevice(dst, src, n * sizeof(float));
  }
  absl::Status DownloadF32(float* dst, const void* src, size_t n) override {
    return CopyToHost(dst, src, n * sizeof(float));
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }

  // Address space from mmap(MAP_NORESERVE): the kernel supplies pages on first
  // touch, so backing a range is only a check; unbacking returns its pages
  // (madvise(MADV_DONTNEED): RSS drops, later reads see zeros). How much is
  // backed is the caller's accounting (scheduler::KvPool), not the kernel's.
  size_t vm_granularity() const override { return page_size_; }

  absl::StatusOr<void*> ReserveAddressSpace(size_t bytes) override {
    if (bytes == 0 || bytes % page_size_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu: reserve ", bytes, " bytes: not a positive multiple of ", page_size_));
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cpu: reserving ", bytes, " bytes of address space: ", strerror(errno)));
    }
    return p;
  }

  void ReleaseAddressSpace(void* base, size_t bytes) override {
    if (base != nullptr) munmap(base, bytes);
  }

  absl::Status BackRange(void* addr, size_t bytes) override { return CheckRange(addr, bytes); }

  absl::Status UnbackRange(void* addr, size_t bytes) override {
    RETURN_IF_ERROR(CheckRange(addr, bytes));
    if (madvise(addr, bytes, MADV_DONTNEED) != 0) {
      return absl::InternalError(absl::StrCat("cpu: madvise(DONTNEED): ", strerror(errno)));
    }
    return absl::OkStatus();
  }

  void Embedding(const int32_t* ids, int32_t n, WeightRef table, int32_t hidden,
                 void* out) override {
    cpu::Embedding(ids, n, table, hidden, F(out), pool_);
  }
  void RmsNorm(const void* x, void* residual, const void* weight, int32_t n, int32_t hidden,
               float eps, void* out) override {
    cpu::RmsNorm(F(x), F(residual), F(weight), n, hidden, eps, F(out), pool_);
  }
  void HeadRmsNorm(void* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                   const void* weight, float eps) override {
    cpu::HeadRmsNorm(F(x), rows, row_stride, heads, head_dim, F(weight), eps, pool_);
  }
  void Gemm(const void* a, WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    const GemmPart part{w, bias, n, c};
    GroupedGemm(a, &part, 1, m, k);
  }
  void GroupedGemm(const void* a, const GemmPart* parts, int32_t num_parts, int32_t m,
                   int32_t k) override {
    const bool all_blocks = std::all_of(
        parts, parts + num_parts, [](const GemmPart& p) { return IsBlockFormat(p.w.format); });
    if (all_blocks) {
      cpu::QuantGemm(F(a), parts, num_parts, m, k, pool_);
      return;
    }
    // The parts in blocks still together (a quantized once for them), the
    // others a product each.
    thread_local std::vector<GemmPart> blocks;
    blocks.clear();
    for (int32_t i = 0; i < num_parts; ++i) {
      const GemmPart& p = parts[i];
      if (IsBlockFormat(p.w.format)) {
        blocks.push_back(p);
        continue;
      }
      const float* rows_of_a = F(a) + static_cast<int64_t>(p.first_row) * k;
      const int32_t rows = p.Rows(m);
      if (p.w.format != WeightFormat::kDense) {
        cpu::HalfGemm(rows_of_a, p.w, F(p.bias), rows, p.n, k, F(p.c), p.RowStride(), pool_);
      } else if (p.RowStride() == p.n) {
        cpu::Gemm(rows_of_a, F(p.w.data), F(p.bias), rows, p.n, k, F(p.c));
      } else {
        // OpenBLAS writes rows n apart: a dense part among columns (never
        // loaded so: dense weights are fused at load) a row at a time.
        for (int32_t r = 0; r < rows; ++r) {
          cpu::Gemm(rows_of_a + static_cast<int64_t>(r) * k, F(p.w.data), F(p.bias), 1, p.n, k,
                    F(p.c) + static_cast<int64_t>(r) * p.RowStride());
        }
      }
    }
    if (!blocks.empty()) {
      cpu::QuantGemm(F(a), blocks.data(), static_cast<int32_t>(blocks.size()), m, k, pool_);
    }
  }
  bool SupportsWeightFormat(WeightFormat) const override { return true; }
  WeightLayout PreferredLayout(WeightFormat format) const override {
    return cpu::SelectedQuantKernels().PreferredLayout(format);
  }
  void Add(void* x, const void* y, int64_t n) override { cpu::Add(F(x), F(y), n, pool_); }
  void SiluMul(const void* gate_up, int32_t n, int32_t inter, void* out) override {
    cpu::SiluMul(F(gate_up), n, inter, F(out), pool_);
  }
  void RopeWriteKv(const QkvRows& qkv, const BatchLayout& batch, int32_t num_heads,
                   const RopeSpec& rope, const PagedKv& kv) override {
    cpu::RopeWriteKv(qkv, batch.positions, batch.slot_mapping, batch.num_tokens, num_heads, rope,
                     kv);
  }
  void PagedAttention(const void* q, int64_t q_stride, const BatchLayout& batch, const PagedKv& kv,
                      int32_t num_heads, float scale, void* out) override {
    cpu::PagedAttention(F(q), q_stride, batch, kv, num_heads, scale, F(out), pool_);
  }
  void GatherRows(const void* x, const int32_t* rows, int32_t num_rows, int32_t width,
                  void* out) override {
    cpu::GatherRows(F(x), rows, num_rows, width, F(out));
  }
  void MoeCombine(const void* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                  int32_t width, void* out) override {
    cpu::MoeCombine(F(y), rows, weights, n, k, width, F(out), pool_);
  }
  void MaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
                const uint64_t* masks) override {
    cpu::MaskRows(x, rows, width, mask_of, masks);
  }
  void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                      const PenaltyTerm* terms, float* saved) override {
    cpu::ApplyPenalties(x, rows, width, starts, terms, saved);
  }
  void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                     const PenaltyTerm* terms, const float* saved) override {
    cpu::RestoreLogits(x, rows, width, starts, terms, saved);
  }
  void RowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                   int32_t top_n, TokenLogprob* out) override {
    pool_.ParallelFor(rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        LogprobsOfRow(x + r * width, width, chosen[r], top_n, out + r * (1 + top_n));
      }
    });
  }
  // Rows are independent: a few a thread.
  void SampleRows(const float* x, int32_t rows, int32_t width, const SampleSpec* specs,
                  int32_t* out) override {
    pool_.ParallelFor(rows, 1, [&](int64_t begin, int64_t end) {
      cpu::SampleRows(x + begin * width, static_cast<int32_t>(end - begin), width, specs + begin,
                      out + begin);
    });
  }
  void HostParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override {
    pool_.ParallelFor(n, 1, fn);
  }

 private:
  absl::Status CheckRange(const void* addr, size_t bytes) const {
    if (reinterpret_cast<uintptr_t>(addr) % page_size_ != 0 || bytes % page_size_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu: range of ", bytes, " bytes not aligned to ", page_size_));
    }
    return absl::OkStatus();
  }

  static float* F(void* p) { return static_cast<float*>(p); }
  static const float* F(const void* p) { return static_cast<const float*>(p); }

  DType kv_dtype_;
  size_t total_memory_ = 0;  // physical memory in bytes; 0 if unknown
  size_t page_size_ = static_cast<size_t>(sysconf(_SC_PAGE_SIZE));
  cpu::ThreadPool pool_;
  // Host vectors taken over by AdoptHostBytes, by data pointer; Free finds
  // them here (anything else came from aligned_alloc).
  std::mutex adopted_mu_;
  // What adopted buffers hold on to (a loaded vector, a file's mapping).
  absl::flat_hash_map<void*, std::shared_ptr<const void>> adopted_;  // guarded
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(int num_threads, DType kv_dtype, bool pin_threads) {
  return std::make_unique<CpuBackend>(num_threads, kv_dtype, pin_threads);
}

}  // namespace cohost::kernels
