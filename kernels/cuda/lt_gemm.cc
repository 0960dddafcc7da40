#include "lt_gemm.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cohost::kernels::cuda {
namespace {

// Plans kept before the cache starts over: a step's token count is m, so a
// server meets a few hundred shapes per weight matrix.
constexpr size_t kMaxPlans = 4096;

uint8_t Alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  for (uint8_t a = 16; a > 1; a /= 2) {
    if (v % a == 0) return a;
  }
  return 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LtGemm>> LtGemm::Create(const CublasApi* blas, cudaStream_t stream) {
  ASSIGN_OR_RETURN(const CublasLtApi* lt, CublasLtApi::Get());
  cublasLtHandle_t handle = nullptr;
  RETURN_IF_ERROR(blas->Check(lt->create(&handle), "cublasLtCreate"));
  void* workspace = nullptr;
  if (cudaMallocAsync(&workspace, kWorkspaceBytes, stream) != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky
    lt->destroy(handle);
    return absl::ResourceExhaustedError("cuBLASLt workspace: out of device memory");
  }
  return std::unique_ptr<LtGemm>(new LtGemm(blas, lt, handle, stream, workspace, kWorkspaceBytes));
}

LtGemm::~LtGemm() {
  for (auto& [key, plan] : plans_) Destroy(plan);
  cudaFreeAsync(workspace_, stream_);
  lt_->destroy(handle_);
}

void LtGemm::Destroy(Plan& plan) {
  for (cublasLtMatrixLayout_t layout : {plan.w, plan.a, plan.c}) {
    if (layout != nullptr) lt_->layout_destroy(layout);
  }
  if (plan.desc != nullptr) lt_->desc_destroy(plan.desc);
  plan = Plan{};
}

// Row-major c[m, n] = a[m, k] w[n, k]^T is, column-major, C^T[n, m] = W^T A^T
// with W the k x n column-major matrix w (ld k) transposed, A^T the k x m
// matrix a (ld k) as is, and C^T n x m (ld n): the bias, one value per row of
// C^T, is cuBLASLt's epilogue bias.
absl::StatusOr<LtGemm::Plan*> LtGemm::PlanFor(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  Plan plan;
  cublasLtMatmulPreference_t pref = nullptr;
  auto fail = [&](cublasStatus_t err, const char* what) {
    if (pref != nullptr) lt_->pref_destroy(pref);
    Destroy(plan);
    return blas_->Check(err, what);
  };
  cublasStatus_t err = lt_->desc_create(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatmulDescCreate");
  const cublasOperation_t trans = CUBLAS_OP_T, no_trans = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = key.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  for (auto [attr, value, size] :
       {std::tuple{CUBLASLT_MATMUL_DESC_TRANSA, static_cast<const void*>(&trans), sizeof(trans)},
        {CUBLASLT_MATMUL_DESC_TRANSB, &no_trans, sizeof(no_trans)},
        {CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)}}) {
    err = lt_->desc_set(plan.desc, attr, value, size);
    if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatmulDescSetAttribute");
  }
  if (key.bias) {
    // The heuristic reads the bias pointer's alignment (cublasLt.h): a
    // stand-in of the 16 bytes Run requires; Run sets the real one.
    alignas(256) static const char kAligned = 0;
    const void* stand_in = &kAligned;
    err = lt_->desc_set(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &stand_in, sizeof(stand_in));
    if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatmulDescSetAttribute(bias)");
  }
  err = lt_->layout_create(&plan.w, CUDA_R_16BF, key.k, key.n, key.k);
  if (err == CUBLAS_STATUS_SUCCESS)
    err = lt_->layout_create(&plan.a, CUDA_R_16BF, key.k, key.m, key.k);
  if (err == CUBLAS_STATUS_SUCCESS)
    err = lt_->layout_create(&plan.c, key.c_type, key.n, key.m, key.n);
  if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatrixLayoutCreate");
  err = lt_->pref_create(&pref);
  if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatmulPreferenceCreate");
  const uint32_t align = key.align;
  for (auto [attr, value, size] :
       {std::tuple{CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                   static_cast<const void*>(&workspace_bytes_), sizeof(workspace_bytes_)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, sizeof(align)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, sizeof(align)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof(align)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof(align)}}) {
    err = lt_->pref_set(pref, attr, value, size);
    if (err != CUBLAS_STATUS_SUCCESS) return fail(err, "cublasLtMatmulPreferenceSetAttribute");
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  err =
      lt_->heuristic(handle_, plan.desc, plan.w, plan.a, plan.c, plan.c, pref, 1, &result, &found);
  if (err != CUBLAS_STATUS_SUCCESS && err != CUBLAS_STATUS_NOT_SUPPORTED) {
    return fail(err, "cublasLtMatmulAlgoGetHeuristic");
  }
  lt_->pref_destroy(pref);
  plan.found = err == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
  if (plan.found) plan.algo = result.algo;
  if (plans_.size() >= kMaxPlans) {
    for (auto& [old_key, old_plan] : plans_) Destroy(old_plan);
    plans_.clear();
  }
  // Kept either way: a shape without an algorithm is not asked about again.
  return &plans_.emplace(key, plan).first->second;
}

absl::Status LtGemm::Run(const void* a, const void* w, const void* bias, int32_t m, int32_t n,
                         int32_t k, void* c, cudaDataType_t c_type) {
  if (bias != nullptr && (c_type != CUDA_R_16BF || Alignment(bias) < 16)) {
    // The epilogue's bias has D's type, and the plan assumed 16 bytes.
    return absl::UnimplementedError("cuBLASLt: a bias not 16-byte aligned bf16");
  }
  const uint8_t align = std::min({Alignment(a), Alignment(w), Alignment(c)});
  ASSIGN_OR_RETURN(Plan * plan, PlanFor(Key{m, n, k, c_type, bias != nullptr, align}));
  if (!plan->found) {
    return absl::UnimplementedError(
        absl::StrCat("cuBLASLt has no algorithm for m=", m, " n=", n, " k=", k));
  }
  if (bias != nullptr) {
    RETURN_IF_ERROR(blas_->Check(
        lt_->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
        "cublasLtMatmulDescSetAttribute(bias)"));
  }
  const float alpha = 1.f, beta = 0.f;
  const cublasStatus_t err =
      lt_->matmul(handle_, plan->desc, &alpha, w, plan->w, a, plan->a, &beta, c, plan->c, c,
                  plan->c, &plan->algo, workspace_, workspace_bytes_, stream_);
  if (err == CUBLAS_STATUS_NOT_SUPPORTED || err == CUBLAS_STATUS_ARCH_MISMATCH) {
    // Refused before anything was queued: this shape goes to cublasGemmEx.
    plan->found = false;
    return absl::UnimplementedError(absl::StrCat("cuBLASLt refused m=", m, " n=", n, " k=", k));
  }
  return blas_->Check(err, "cublasLtMatmul");
}

}  // namespace cohost::kernels::cuda
