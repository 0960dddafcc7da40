// cuBLAS opened with dlopen the first time a CUDA backend is made, not linked.
// Linking it maps libcublasLt into every process at start, and its
// initialization leaves about 60 MB of it resident: a CPU-only server paid
// that for a GPU it does not have. Now only a process that makes a CUDA
// backend loads the library, from the same places the dynamic linker would
// search (LD_LIBRARY_PATH, the binary's run path, ld.so.cache).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cohost::kernels::cuda {

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
  // Spelled out: under nvcc cublasGemmEx is overloaded (a legacy cudaDataType
  // compute type), so decltype cannot name it.
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int m, int n,
                            int k, const void* alpha, const void* a, cudaDataType a_type, int lda,
                            const void* b, cudaDataType b_type, int ldb, const void* beta, void* c,
                            cudaDataType c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;

  // The process's one table, loaded on first use and kept (the library is
  // never closed: handles may outlive any one caller). UNAVAILABLE naming the
  // library or the first missing entry point; the same answer on every call.
  static absl::StatusOr<const CublasApi*> Get();

  // OK, or INTERNAL naming `what` and cuBLAS's name and text for `err`.
  absl::Status Check(cublasStatus_t err, const char* what) const;
};

// cuBLASLt's entry points, from libcublasLt.so.<major> (cuBLAS's major):
// what LtGemm (lt_gemm.h) calls. Loaded the same way, on first use.
struct CublasLtApi {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;

  // As CublasApi::Get: the process's one table, UNAVAILABLE naming what is
  // missing.
  static absl::StatusOr<const CublasLtApi*> Get();
};

// The file name tried first: libcublas.so.<major> of the headers compiled
// against, so that a library of another major version is never picked up.
const char* CublasLibraryName();

}  // namespace cohost::kernels::cuda
