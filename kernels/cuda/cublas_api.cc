#include "cublas_api.h"

#include <dlfcn.h>

#include <initializer_list>
#include <string>

#include "absl/strings/str_cat.h"

namespace cohost::kernels::cuda {
namespace {

#define COHOST_STR2(x) #x
#define COHOST_STR(x) COHOST_STR2(x)
constexpr const char* kLibrary = "libcublas.so." COHOST_STR(CUBLAS_VER_MAJOR);
constexpr const char* kLtLibrary = "libcublasLt.so." COHOST_STR(CUBLAS_VER_MAJOR);
#undef COHOST_STR
#undef COHOST_STR2

template <typename Fn>
absl::Status Find(void* lib, const char* library, const char* symbol, Fn* out) {
  dlerror();
  void* fn = dlsym(lib, symbol);
  if (fn == nullptr) {
    return absl::UnavailableError(absl::StrCat(library, " has no ", symbol));
  }
  *out = reinterpret_cast<Fn>(fn);
  return absl::OkStatus();
}

absl::StatusOr<void*> Open(const char* library) {
  void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(
        absl::StrCat("cannot load ", library, ": ", why != nullptr ? why : "not found"));
  }
  return lib;
}

// The first failure of `found`, closing `lib`; OK if none.
absl::Status AllFound(void* lib, std::initializer_list<absl::Status> found) {
  for (const absl::Status& s : found) {
    if (!s.ok()) {
      dlclose(lib);
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CublasApi> Load() {
  absl::StatusOr<void*> lib = Open(kLibrary);
  if (!lib.ok()) return lib.status();
  auto find = [&](const char* symbol, auto* out) { return Find(*lib, kLibrary, symbol, out); };
  CublasApi api;
  absl::Status s = AllFound(
      *lib, {find("cublasCreate_v2", &api.create), find("cublasDestroy_v2", &api.destroy),
             find("cublasSetStream_v2", &api.set_stream),
             find("cublasSetWorkspace_v2", &api.set_workspace), find("cublasGemmEx", &api.gemm_ex),
             find("cublasGetStatusName", &api.status_name),
             find("cublasGetStatusString", &api.status_string)});
  if (!s.ok()) return s;
  return api;
}

absl::StatusOr<CublasLtApi> LoadLt() {
  absl::StatusOr<void*> lib = Open(kLtLibrary);
  if (!lib.ok()) return lib.status();
  auto find = [&](const char* symbol, auto* out) { return Find(*lib, kLtLibrary, symbol, out); };
  CublasLtApi api;
  absl::Status s =
      AllFound(*lib, {find("cublasLtCreate", &api.create), find("cublasLtDestroy", &api.destroy),
                      find("cublasLtMatmulDescCreate", &api.desc_create),
                      find("cublasLtMatmulDescDestroy", &api.desc_destroy),
                      find("cublasLtMatmulDescSetAttribute", &api.desc_set),
                      find("cublasLtMatrixLayoutCreate", &api.layout_create),
                      find("cublasLtMatrixLayoutDestroy", &api.layout_destroy),
                      find("cublasLtMatmulPreferenceCreate", &api.pref_create),
                      find("cublasLtMatmulPreferenceDestroy", &api.pref_destroy),
                      find("cublasLtMatmulPreferenceSetAttribute", &api.pref_set),
                      find("cublasLtMatmulAlgoGetHeuristic", &api.heuristic),
                      find("cublasLtMatmul", &api.matmul)});
  if (!s.ok()) return s;
  return api;
}

}  // namespace

absl::StatusOr<const CublasApi*> CublasApi::Get() {
  // A function-local static: initialized once, thread-safe, never destroyed
  // before the handles that use it.
  static const absl::StatusOr<CublasApi>* const loaded = new absl::StatusOr<CublasApi>(Load());
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

absl::StatusOr<const CublasLtApi*> CublasLtApi::Get() {
  static const absl::StatusOr<CublasLtApi>* const loaded =
      new absl::StatusOr<CublasLtApi>(LoadLt());
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

absl::Status CublasApi::Check(cublasStatus_t err, const char* what) const {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, ": ", status_name(err), " (", status_string(err), ")"));
}

const char* CublasLibraryName() { return kLibrary; }

}  // namespace cohost::kernels::cuda
