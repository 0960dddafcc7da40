#include "cublas_api.h"

#include <dlfcn.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace cohost::kernels::cuda {
namespace {

#define COHOST_STR2(x) #x
#define COHOST_STR(x) COHOST_STR2(x)
constexpr const char* kLibrary = "libcublas.so." COHOST_STR(CUBLAS_VER_MAJOR);
#undef COHOST_STR
#undef COHOST_STR2

template <typename Fn>
absl::Status Find(void* lib, const char* symbol, Fn* out) {
  dlerror();
  void* fn = dlsym(lib, symbol);
  if (fn == nullptr) {
    return absl::UnavailableError(absl::StrCat(kLibrary, " has no ", symbol));
  }
  *out = reinterpret_cast<Fn>(fn);
  return absl::OkStatus();
}

absl::StatusOr<CublasApi> Load() {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(
        absl::StrCat("cannot load ", kLibrary, " (cuBLAS): ", why != nullptr ? why : "not found"));
  }
  CublasApi api;
  for (absl::Status s :
       {Find(lib, "cublasCreate_v2", &api.create), Find(lib, "cublasDestroy_v2", &api.destroy),
        Find(lib, "cublasSetStream_v2", &api.set_stream), Find(lib, "cublasGemmEx", &api.gemm_ex),
        Find(lib, "cublasGetStatusName", &api.status_name),
        Find(lib, "cublasGetStatusString", &api.status_string)}) {
    if (!s.ok()) {
      dlclose(lib);
      return s;
    }
  }
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

absl::Status CublasApi::Check(cublasStatus_t err, const char* what) const {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, ": ", status_name(err), " (", status_string(err), ")"));
}

const char* CublasLibraryName() { return kLibrary; }

}  // namespace cohost::kernels::cuda
