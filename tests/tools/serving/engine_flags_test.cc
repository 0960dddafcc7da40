// --device as `cohost serve` reads it: one CPU, every visible GPU, or a list
// of GPUs; bad and repeated names are refused before anything starts. And
// --kv-dtype with its defaults, and the weights' policy (--cpu-precision,
// --no-mmap).

#include "tools/serving/engine_flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseArgs(EngineFlagSpecs(), static_cast<int>(argv.size()), argv.data());
}

absl::StatusOr<std::vector<DeviceBackend>> Devices(std::string device) {
  absl::StatusOr<ParsedArgs> parsed = Parse({"--device", std::move(device)});
  if (!parsed.ok()) return parsed.status();
  return BackendsFromArgs(*parsed);
}

absl::StatusOr<kernels::DType> KvDtype(std::vector<std::string> args) {
  absl::StatusOr<ParsedArgs> parsed = Parse(std::move(args));
  if (!parsed.ok()) return parsed.status();
  return KvDTypeFromArgs(*parsed);
}

absl::StatusOr<runtime::WeightsPolicy> Weights(std::vector<std::string> args) {
  absl::StatusOr<ParsedArgs> parsed = Parse(std::move(args));
  if (!parsed.ok()) return parsed.status();
  return WeightsPolicyFromArgs(*parsed);
}

absl::StatusOr<runtime::EngineConfig> Engine(std::vector<std::string> args) {
  absl::StatusOr<ParsedArgs> parsed = Parse(std::move(args));
  if (!parsed.ok()) return parsed.status();
  return EngineConfigFromArgs(*parsed);
}

// Every running sequence decodes a token each step, so --max-seqs past
// --max-batch-tokens asks for what cannot be; the default is cut to it.
TEST(EngineFlagsTest, MaxSeqsPastTheStepsTokensIsRefused) {
  EXPECT_EQ(Engine({})->step_scheduler.max_num_seqs, 64);
  EXPECT_EQ(Engine({"--max-batch-tokens", "32"})->step_scheduler.max_num_seqs, 32);
  EXPECT_EQ(Engine({"--max-seqs", "32", "--max-batch-tokens", "32"})->step_scheduler.max_num_seqs,
            32);
  const absl::Status too_many = Engine({"--max-seqs", "256", "--max-batch-tokens", "128"}).status();
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.message()), HasSubstr("--max-seqs 256"));
}

// --cpu-precision keeps the blocks or not; --no-mmap copies instead of
// mapping; a contradiction and an unknown mode are refused.
TEST(EngineFlagsTest, WeightsPolicyFollowsPrecisionAndNoMmap) {
  EXPECT_TRUE(Weights({})->keep_quantized);
  EXPECT_TRUE(Weights({})->map_file);
  EXPECT_FALSE(Weights({"--no-mmap"})->map_file);
  EXPECT_TRUE(Weights({"--no-mmap"})->keep_quantized);
  EXPECT_FALSE(Weights({"--cpu-precision", "reference"})->keep_quantized);
  EXPECT_EQ(Weights({"--cpu-precision", "fp8"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Weights({"--cpu-precision", "reference", "--keep-quantized"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The CPU's KV dtype follows the weights' precision unless named; CUDA's is
// bf16 and nothing else.
TEST(EngineFlagsTest, KvDtypeDefaultsToThePrecisionsAndIsRefusedByName) {
  EXPECT_EQ(*KvDtype({}), kernels::DType::kF16);
  EXPECT_EQ(*KvDtype({"--cpu-precision", "int8"}), kernels::DType::kF16);
  EXPECT_EQ(*KvDtype({"--cpu-precision", "reference"}), kernels::DType::kF32);
  EXPECT_EQ(*KvDtype({"--cpu-precision", "reference", "--kv-dtype", "bf16"}),
            kernels::DType::kBF16);
  EXPECT_EQ(*KvDtype({"--kv-dtype", "f32"}), kernels::DType::kF32);
  EXPECT_EQ(*KvDtype({"--device", "cuda:1"}), kernels::DType::kBF16);
  EXPECT_EQ(*KvDtype({"--device", "cuda", "--kv-dtype", "bf16"}), kernels::DType::kBF16);
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--kv-dtype", "fp8"},
                                              {"--kv-dtype", "F16"},
                                              {"--kv-dtype", ""},
                                              {"--device", "cuda", "--kv-dtype", "f16"}}) {
    absl::StatusOr<kernels::DType> t = KvDtype(bad);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad.back();
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("--kv-dtype")) << bad.back();
  }
  absl::StatusOr<ParsedArgs> cpu = Parse({"--kv-dtype", "bf16", "--threads", "1"});
  ASSERT_TRUE(cpu.ok());
  absl::StatusOr<std::unique_ptr<kernels::Backend>> be = BackendFromArgs(*cpu);
  ASSERT_TRUE(be.ok()) << be.status();
  EXPECT_EQ((*be)->kv_dtype(), kernels::DType::kBF16);
}

// --cpu-pin binds the CPU pool's workers, and the device's name says so.
TEST(EngineFlagsTest, CpuPinIsShownInTheDevicesName) {
  for (const bool pin : {false, true}) {
    std::vector<std::string> args = {"--threads", "2"};
    if (pin) args.push_back("--cpu-pin");
    absl::StatusOr<ParsedArgs> parsed = Parse(args);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<std::unique_ptr<kernels::Backend>> be = BackendFromArgs(*parsed);
    ASSERT_TRUE(be.ok()) << be.status();
    EXPECT_EQ((*be)->Caps().device_name.find("2 pinned threads") != std::string::npos, pin)
        << (*be)->Caps().device_name;
  }
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
