// Dense products through cuBLASLt for one backend context: row-major
// c[m, n] = a[m, k] * w[n, k]^T (+ bias[n], as the matmul's epilogue), bf16 in,
// fp32 accumulation, bf16 or fp32 out. cuBLASLt's heuristic picks the
// algorithm once per shape and pointer alignment; the choice is cached.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cublas_api.h"

namespace cohost::kernels::cuda {

class LtGemm {
 public:
  // The workspace each handle allocates (cuBLAS's own recommendation for
  // Hopper; Ampere needs less), shared with the context's cuBLAS handle.
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

  // A handle and a workspace on `stream` (the device must be current).
  // UNAVAILABLE where libcublasLt cannot be loaded.
  static absl::StatusOr<std::unique_ptr<LtGemm>> Create(const CublasApi* blas, cudaStream_t stream);
  ~LtGemm();  // the stream must still exist and have drained
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Queues the product on the stream. c_type: CUDA_R_16BF or CUDA_R_32F
  // (with no bias). UNIMPLEMENTED when cuBLASLt offers no algorithm for the
  // shape, refuses it, or the bias is not 16-byte aligned bf16 (the caller
  // falls back to cublasGemmEx); INTERNAL for a failed call.
  absl::Status Run(const void* a, const void* w, const void* bias, int32_t m, int32_t n, int32_t k,
                   void* c, cudaDataType_t c_type);

  // Its device workspace, which cuBLAS on the same stream may share.
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  struct Key {
    int32_t m, n, k;
    cudaDataType_t c_type;
    bool bias;
    uint8_t align;  // a, w and c's common alignment in bytes, up to 16 (a bias has 16)
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& key) {
      return H::combine(std::move(h), key.m, key.n, key.k, static_cast<int>(key.c_type), key.bias,
                        key.align);
    }
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t w = nullptr, a = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool found = false;  // cuBLASLt had an algorithm
  };

  LtGemm(const CublasApi* blas, const CublasLtApi* lt, cublasLtHandle_t handle, cudaStream_t stream,
         void* workspace, size_t workspace_bytes)
      : blas_(blas),
        lt_(lt),
        handle_(handle),
        stream_(stream),
        workspace_(workspace),
        workspace_bytes_(workspace_bytes) {}
  absl::StatusOr<Plan*> PlanFor(const Key& key);
  void Destroy(Plan& plan);

  const CublasApi* blas_;  // status names for errors
  const CublasLtApi* lt_;
  cublasLtHandle_t handle_;
  cudaStream_t stream_;
  void* workspace_;
  size_t workspace_bytes_;
  absl::flat_hash_map<Key, Plan> plans_;
};

}  // namespace cohost::kernels::cuda
