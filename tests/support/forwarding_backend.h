// A Backend that hands every call it must implement to another one: tests
// derive from it and override the few calls whose behaviour they change. The
// optional calls (AdoptHostBytes, AdoptMapped, AdoptsHostMemory,
// SupportsWeightFormat, GroupedGemm, GemmToF32, NewContext) keep Backend's
// defaults, so a subclass that overrides Gemm sees every product (the inner
// backend must then compute in fp32), and nothing is adopted.
#pragma once

#include <memory>
#include <utility>

#include "cohost/kernels/backend.h"

namespace cohost::testing {

class ForwardingBackend : public kernels::Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<kernels::Backend> inner) : inner_(std::move(inner)) {}

  kernels::BackendKind kind() const override { return inner_->kind(); }
  kernels::BackendCaps Caps() const override { return inner_->Caps(); }
  absl::StatusOr<void*> Allocate(size_t bytes) override { return inner_->Allocate(bytes); }
  void Free(void* ptr) override { inner_->Free(ptr); }
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override {
    return inner_->AllocateStaging(bytes);
  }
  void FreeStaging(void* ptr) override { inner_->FreeStaging(ptr); }
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    return inner_->CopyToDevice(dst, src, bytes);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    return inner_->CopyToHost(dst, src, bytes);
  }
  absl::Status UploadF32(void* dst, const float* src, size_t n) override {
    return inner_->UploadF32(dst, src, n);
  }
  absl::Status DownloadF32(float* dst, const void* src, size_t n) override {
    return inner_->DownloadF32(dst, src, n);
  }
  absl::Status Synchronize() override { return inner_->Synchronize(); }
  size_t vm_granularity() const override { return inner_->vm_granularity(); }
  absl::StatusOr<void*> ReserveAddressSpace(size_t bytes) override {
    return inner_->ReserveAddressSpace(bytes);
  }
  void ReleaseAddressSpace(void* base, size_t bytes) override {
    inner_->ReleaseAddressSpace(base, bytes);
  }
  absl::Status BackRange(void* addr, size_t bytes) override {
    return inner_->BackRange(addr, bytes);
  }
  absl::Status UnbackRange(void* addr, size_t bytes) override {
    return inner_->UnbackRange(addr, bytes);
  }

  void Embedding(const int32_t* ids, int32_t n, kernels::WeightRef table, int32_t hidden,
                 void* out) override {
    inner_->Embedding(ids, n, table, hidden, out);
  }
  void RmsNorm(const void* x, void* residual, const void* weight, int32_t n, int32_t hidden,
               float eps, void* out) override {
    inner_->RmsNorm(x, residual, weight, n, hidden, eps, out);
  }
  void HeadRmsNorm(void* x, int32_t rows, int64_t row_stride, int32_t heads, int32_t head_dim,
                   const void* weight, float eps) override {
    inner_->HeadRmsNorm(x, rows, row_stride, heads, head_dim, weight, eps);
  }
  void Gemm(const void* a, kernels::WeightRef w, const void* bias, int32_t m, int32_t n, int32_t k,
            void* c) override {
    inner_->Gemm(a, w, bias, m, n, k, c);
  }
  void SampleRows(const float* x, int32_t rows, int32_t width, const kernels::SampleSpec* specs,
                  int32_t* out) override {
    inner_->SampleRows(x, rows, width, specs, out);
  }
  void MaskRows(float* x, int32_t rows, int32_t width, const int32_t* mask_of,
                const uint64_t* masks) override {
    inner_->MaskRows(x, rows, width, mask_of, masks);
  }
  void ApplyPenalties(float* x, int32_t rows, int32_t width, const int32_t* starts,
                      const kernels::PenaltyTerm* terms, float* saved) override {
    inner_->ApplyPenalties(x, rows, width, starts, terms, saved);
  }
  void RestoreLogits(float* x, int32_t rows, int32_t width, const int32_t* starts,
                     const kernels::PenaltyTerm* terms, const float* saved) override {
    inner_->RestoreLogits(x, rows, width, starts, terms, saved);
  }
  void RowLogprobs(const float* x, int32_t rows, int32_t width, const int32_t* chosen,
                   int32_t top_n, kernels::TokenLogprob* out) override {
    inner_->RowLogprobs(x, rows, width, chosen, top_n, out);
  }
  absl::Status CheckHeadDim(int32_t head_dim) const override {
    return inner_->CheckHeadDim(head_dim);
  }
  void Add(void* x, const void* y, int64_t n) override { inner_->Add(x, y, n); }
  void SiluMul(const void* gate_up, int32_t n, int32_t inter, void* out) override {
    inner_->SiluMul(gate_up, n, inter, out);
  }
  void RopeWriteKv(const kernels::QkvRows& qkv, const kernels::BatchLayout& batch,
                   int32_t num_heads, const kernels::RopeSpec& rope,
                   const kernels::PagedKv& kv) override {
    inner_->RopeWriteKv(qkv, batch, num_heads, rope, kv);
  }
  void PagedAttention(const void* q, int64_t q_stride, const kernels::BatchLayout& batch,
                      const kernels::PagedKv& kv, int32_t num_heads, float scale,
                      void* out) override {
    inner_->PagedAttention(q, q_stride, batch, kv, num_heads, scale, out);
  }
  void GatherRows(const void* x, const int32_t* rows, int32_t num_rows, int32_t width,
                  void* out) override {
    inner_->GatherRows(x, rows, num_rows, width, out);
  }
  void MoeCombine(const void* y, const int32_t* rows, const float* weights, int32_t n, int32_t k,
                  int32_t width, void* out) override {
    inner_->MoeCombine(y, rows, weights, n, k, width, out);
  }

 protected:
  kernels::Backend& inner() { return *inner_; }
  const kernels::Backend& inner() const { return *inner_; }

 private:
  std::unique_ptr<kernels::Backend> inner_;
};

}  // namespace cohost::testing
