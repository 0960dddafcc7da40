// The CPU backend with CUDA graphs' semantics, so that a model's captured
// decode steps are tested without a GPU: Capture records each op with the
// arguments it was given (pointers and sizes by value, as a graph freezes
// them) and Launch reruns them on the data as it is then. A copy,
// allocation or synchronization while recording fails the capture, as it
// would break a CUDA stream capture.
//
// With set_async(true) it has a CUDA stream's semantics too: ops, copies
// to the device, graph launches and frees queue, and run in order at the
// next Synchronize or CopyToHost. A copy reads its source when it runs if
// the source is the backend's memory or staging memory (AllocateStaging),
// and when it is queued if it is other host memory (the driver stages
// pageable memory at once). So a caller that writes staging memory while a
// copy from it is queued, or reads results without waiting, gets wrong
// results here as it would on a GPU.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "tests/support/forwarding_backend.h"

namespace cohost::testing {

class RecordingBackend final : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  // What is still queued runs first (frees among it), as a stream drains.
  ~RecordingBackend() override { Flush(); }

  bool can_capture() const override { return true; }
  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> Capture(
      const std::function<void()>& issue) override {
    recording_ = std::make_shared<std::vector<std::function<void()>>>();
    broken_ = false;
    issue();
    std::shared_ptr<std::vector<std::function<void()>>> ops = std::move(recording_);
    recording_ = nullptr;
    ++captures_;
    if (broken_) return absl::FailedPreconditionError("a copy, allocation or sync while recording");
    return std::unique_ptr<kernels::OpGraph>(new Graph(this, std::move(ops)));
  }

  int captures() const { return captures_; }
  void set_async(bool on) {
    Flush();
    async_ = on;
  }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    Break();
    return ReadLate(ForwardingBackend::Allocate(bytes), bytes);
  }
  void Free(void* ptr) override {
    read_late_.erase(static_cast<const char*>(ptr));
    if (async_ && recording_ == nullptr) {
      pending_.push_back([=, this] { inner().Free(ptr); });  // stream-ordered (cudaFreeAsync)
    } else {
      ForwardingBackend::Free(ptr);
    }
  }
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override {
    Break();
    return ReadLate(ForwardingBackend::AllocateStaging(bytes), bytes);
  }
  void FreeStaging(void* ptr) override {
    Flush();  // cudaFreeHost waits for the device
    read_late_.erase(static_cast<const char*>(ptr));
    ForwardingBackend::FreeStaging(ptr);
  }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    Break();  // and, recording or not, the copy runs (a broken capture is dropped)
    if (!async_ || recording_ != nullptr) return ForwardingBackend::CopyToDevice(dst, src, bytes);
    if (ReadsLate(src)) {
      Op([=, this] { (void)inner().CopyToDevice(dst, src, bytes); });
      return absl::OkStatus();
    }
    const auto* from = static_cast<const uint8_t*>(src);
    auto copy = std::make_shared<std::vector<uint8_t>>(from, from + bytes);
    Op([=, this] { (void)inner().CopyToDevice(dst, copy->data(), bytes); });
    return absl::OkStatus();
  }
  absl::Status UploadF32(void* dst, const float* src, size_t n) override {
    Break();
    Flush();
    return ForwardingBackend::UploadF32(dst, src, n);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    Break();
    Flush();
    return ForwardingBackend::CopyToHost(dst, src, bytes);
  }
  absl::Status DownloadF32(float* dst, const void* src, size_t n) override {
    Break();
    Flush();
    return ForwardingBackend::DownloadF32(dst, src, n);
  }
  absl::Status Synchronize() override {
    Break();
    Flush();
    return ForwardingBackend::Synchronize();
  }

  void Embedding(const int32_t* ids, int32_t n, kernels::WeightRef table, int32_t hidden,
                 void* out) override {
    Op([=, this] { inner().Embedding(ids, n, table, hidden, out); });
  }
  void RmsNorm(const void* x, void* residual, const void* weight, int32_t n, int32_t hidden,
               float eps, void* out) override {
    Op([=, this] { inner().RmsNorm(x, residual, weight, n, hidden, eps, out); });
  }
  void HeadRmsNorm(void* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                   const void* weight, float eps) override {
    Op([=, this] { inner().HeadRmsNorm(x, rows, row_stride, heads, head_dim, weight, eps); });
  }
  void Gemm(const void* a, kernels::WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    Op([=, this] { inner().Gemm(a, w, bias, m, n, k, c); });
  }
  void SampleRows(const float* x, int32_t rows, int32_t width, const kernels::SampleSpec* specs,
                  int32_t* out) override {
    Op([=, this] { inner().SampleRows(x, rows, width, specs, out); });
  }
  void MaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
                const uint64_t* masks) override {
    Op([=, this] { inner().MaskRows(x, rows, width, mask_of, masks); });
  }
  void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                      const kernels::PenaltyTerm* terms, float* saved) override {
    Op([=, this] { inner().ApplyPenalties(x, rows, width, starts, terms, saved); });
  }
  void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                     const kernels::PenaltyTerm* terms, const float* saved) override {
    Op([=, this] { inner().RestoreLogits(x, rows, width, starts, terms, saved); });
  }
  void RowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                   int32_t top_n, kernels::TokenLogprob* out) override {
    Op([=, this] { inner().RowLogprobs(x, rows, width, chosen, top_n, out); });
  }
  void Add(void* x, const void* y, int64_t n) override {
    Op([=, this] { inner().Add(x, y, n); });
  }
  void SiluMul(const void* gate_up, int32_t n, int32_t inter, void* out) override {
    Op([=, this] { inner().SiluMul(gate_up, n, inter, out); });
  }
  void RopeWriteKv(const kernels::QkvRows& qkv, const kernels::BatchLayout& batch,
                   int32_t num_heads, const kernels::RopeSpec& rope,
                   const kernels::PagedKv& kv) override {
    Op([=, this] { inner().RopeWriteKv(qkv, batch, num_heads, rope, kv); });
  }
  void PagedAttention(const void* q, int64_t q_stride, const kernels::BatchLayout& batch,
                      const kernels::PagedKv& kv, int32_t num_heads, float scale,
                      void* out) override {
    Op([=, this] { inner().PagedAttention(q, q_stride, batch, kv, num_heads, scale, out); });
  }
  void GatherRows(const void* x, const int32_t* rows, int32_t num_rows, int32_t width,
                  void* out) override {
    Op([=, this] { inner().GatherRows(x, rows, num_rows, width, out); });
  }
  void MoeCombine(const void* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                  int32_t width, void* out) override {
    Op([=, this] { inner().MoeCombine(y, rows, weights, n, k, width, out); });
  }

 private:
  class Graph final : public kernels::OpGraph {
   public:
    Graph(RecordingBackend* owner, std::shared_ptr<std::vector<std::function<void()>>> ops)
        : owner_(owner), ops_(std::move(ops)) {}
    absl::Status Launch() override {
      owner_->Op([ops = ops_] {
        for (const std::function<void()>& op : *ops) op();
      });
      return absl::OkStatus();
    }

   private:
    RecordingBackend* owner_;
    std::shared_ptr<std::vector<std::function<void()>>> ops_;
  };

  // Records `op` (its arguments copied) while capturing; else queues it
  // (async) or runs it now.
  void Op(std::function<void()> op) {
    if (recording_ != nullptr) {
      recording_->push_back(std::move(op));
    } else if (async_) {
      pending_.push_back(std::move(op));
    } else {
      op();
    }
  }
  void Flush() {
    std::vector<std::function<void()>> ops;
    ops.swap(pending_);
    for (const std::function<void()>& op : ops) op();
  }
  void Break() {
    if (recording_ != nullptr) broken_ = true;
  }
  // Notes a new allocation as memory a copy reads when it runs.
  absl::StatusOr<void*> ReadLate(absl::StatusOr<void*> p, size_t bytes) {
    if (p.ok()) read_late_[static_cast<const char*>(*p)] = bytes;
    return p;
  }
  // Whether p lies in the backend's memory or in staging memory.
  bool ReadsLate(const void* p) const {
    const auto* c = static_cast<const char*>(p);
    auto it = read_late_.upper_bound(c);
    if (it == read_late_.begin()) return false;
    --it;
    return c < it->first + it->second;
  }

  std::shared_ptr<std::vector<std::function<void()>>> recording_;
  bool broken_ = false;
  int captures_ = 0;
  bool async_ = false;
  std::vector<std::function<void()>> pending_;
  std::map<const char*, size_t> read_late_;  // start -> bytes
};

}  // namespace cohost::testing
