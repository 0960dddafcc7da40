// --device as `cohost serve` reads it: one CPU, every visible GPU, or a list
// of GPUs; bad and repeated names are refused before anything starts.

#include "tools/serving/engine_flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<DeviceBackend>> Devices(std::string device) {
  std::vector<std::string> args = {"--device", std::move(device)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(EngineFlagSpecs(), static_cast<int>(argv.size()), argv.data());
  if (!parsed.ok()) return parsed.status();
  return BackendsFromArgs(*parsed);
}

TEST(EngineFlagsTest, CpuIsOneDevice) {
  absl::StatusOr<std::vector<DeviceBackend>> d = Devices("cpu");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ((*d)[0].id, "cpu");
  EXPECT_EQ((*d)[0].backend->kind(), kernels::BackendKind::kCpu);
}

TEST(EngineFlagsTest, BadAndRepeatedNamesAreRefused) {
  for (const char* bad : {"tpu", "cuda:", "cuda:x", "cuda:-1", "cuda:01", "cuda:64", "cuda:0,",
                          "cuda:0,cpu", "CUDA"}) {
    absl::StatusOr<std::vector<DeviceBackend>> d = Devices(bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(d.status().message()), HasSubstr("--device")) << bad;
  }
  absl::StatusOr<std::vector<DeviceBackend>> twice = Devices("cuda:0,cuda:0");
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("twice"));
}

TEST(EngineFlagsTest, CudaIsEveryVisibleGpu) {
  absl::StatusOr<std::vector<DeviceBackend>> d = Devices("cuda");
  if (kernels::CudaDeviceCount() == 0) {
    EXPECT_FALSE(d.ok()) << "no GPU here: a clear error, not an empty server";
    GTEST_SKIP() << "no CUDA device: checked only that --device cuda fails clearly";
  }
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(static_cast<int>(d->size()), kernels::CudaDeviceCount());
  for (size_t i = 0; i < d->size(); ++i) {
    EXPECT_EQ((*d)[i].id, "cuda:" + std::to_string(i));
    EXPECT_EQ((*d)[i].backend->kind(), kernels::BackendKind::kCuda);
  }
}

}  // namespace
}  // namespace cohost::tools
