// The CPU backend with CUDA graphs' semantics, so that a model's captured
// decode steps are tested without a GPU: Capture records each op with the
// arguments it was given (pointers and sizes by value, as a graph freezes
// them) and Launch reruns them on the data as it is then. A copy,
// allocation or synchronization while recording fails the capture, as it
// would break a CUDA stream capture.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "tests/support/forwarding_backend.h"

namespace cohost::testing {

class RecordingBackend final : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;

  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> Capture(
      const std::function<void()>& issue) override {
    recording_ = std::make_shared<std::vector<std::function<void()>>>();
    broken_ = false;
    issue();
    std::shared_ptr<std::vector<std::function<void()>>> ops = std::move(recording_);
    recording_ = nullptr;
    ++captures_;
    if (broken_) return absl::FailedPreconditionError("a copy, allocation or sync while recording");
    return std::unique_ptr<kernels::OpGraph>(new Graph(std::move(ops)));
  }

  int captures() const { return captures_; }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    Break();
    return ForwardingBackend::Allocate(bytes);
  }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    Break();
    return ForwardingBackend::CopyToDevice(dst, src, bytes);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    Break();
    return ForwardingBackend::CopyToHost(dst, src, bytes);
  }
  absl::Status Synchronize() override {
    Break();
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
  void Gemm(const void* a, kernels::WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    Op([=, this] { inner().Gemm(a, w, bias, m, n, k, c); });
  }
  void SampleRows(const float* x, int32_t rows, int32_t width, const kernels::SampleSpec* specs,
                  int32_t* out) override {
    Op([=, this] { inner().SampleRows(x, rows, width, specs, out); });
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

 private:
  class Graph final : public kernels::OpGraph {
   public:
    explicit Graph(std::shared_ptr<std::vector<std::function<void()>>> ops)
        : ops_(std::move(ops)) {}
    absl::Status Launch() override {
      for (const std::function<void()>& op : *ops_) op();
      return absl::OkStatus();
    }

   private:
    std::shared_ptr<std::vector<std::function<void()>>> ops_;
  };

  // Runs `op` now, or records it (its arguments copied) while capturing.
  void Op(std::function<void()> op) {
    if (recording_ != nullptr) {
      recording_->push_back(std::move(op));
    } else {
      op();
    }
  }
  void Break() {
    if (recording_ != nullptr) broken_ = true;
  }

  std::shared_ptr<std::vector<std::function<void()>>> recording_;
  bool broken_ = false;
  int captures_ = 0;
};

}  // namespace cohost::testing
