// cuBLAS is opened on demand (kernels/cuda/cublas_api.cc), not linked: a
// process that only computes on the CPU never maps it. Runs without a GPU:
// loading the library and resolving its entry points needs no device.
#include "kernels/cuda/cublas_api.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "cohost/kernels/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::kernels::cuda {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Maps() {
  std::ifstream in("/proc/self/maps");
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// One test, because the order is the point: nothing maps cuBLAS until the
// first Get, and Get maps it once.
TEST(CublasApiTest, OpenedOnFirstUseOnly) {
  std::unique_ptr<Backend> cpu = MakeCpuBackend(1);
  ASSERT_NE(cpu, nullptr);
  ASSERT_THAT(Maps(), Not(HasSubstr("libcublas"))) << "cuBLAS is mapped before any CUDA backend";

  absl::StatusOr<const CublasApi*> api = CublasApi::Get();
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_THAT(Maps(), HasSubstr(CublasLibraryName()));
  EXPECT_THAT(Maps(), HasSubstr("libcublasLt"));  // cuBLAS's own dependency
  for (const void* fn : {reinterpret_cast<const void*>((*api)->create),
                         reinterpret_cast<const void*>((*api)->destroy),
                         reinterpret_cast<const void*>((*api)->set_stream),
                         reinterpret_cast<const void*>((*api)->gemm_ex),
                         reinterpret_cast<const void*>((*api)->status_name),
                         reinterpret_cast<const void*>((*api)->status_string)}) {
    EXPECT_NE(fn, nullptr);
  }

  absl::StatusOr<const CublasApi*> again = CublasApi::Get();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *api);
}

TEST(CublasApiTest, CheckNamesTheCallAndTheStatus) {
  absl::StatusOr<const CublasApi*> api = CublasApi::Get();
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_TRUE((*api)->Check(CUBLAS_STATUS_SUCCESS, "cublasGemmEx").ok());
  const absl::Status s = (*api)->Check(CUBLAS_STATUS_NOT_INITIALIZED, "cublasGemmEx");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("cublasGemmEx"));
  EXPECT_THAT(s.message(), HasSubstr("CUBLAS_STATUS_NOT_INITIALIZED"));
}

}  // namespace
}  // namespace cohost::kernels::cuda
