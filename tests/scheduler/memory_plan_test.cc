// PlanDeviceMemory as tables: devices' budgets and the configured models'
// footprints in, each device's KV pool, weights budget and planned models out.
// SplitDeviceBudgets over a model file, on a backend that says it is a GPU.

#include "scheduler/memory_plan.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/model/model.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/runtime/loader/tiny_gguf_model.h"
#include "tests/support/forwarding_backend.h"

namespace cohost::scheduler {
namespace {

using ::testing::ElementsAreArray;

constexpr int64_t kGb = int64_t{1} << 30;

DeviceRoom Room(std::string name, int64_t budget) {
  DeviceRoom r;
  r.name = std::move(name);
  r.budget_bytes = budget;
  return r;
}

struct Want {
  int64_t kv, weights;
  std::vector<std::string> models;
};

TEST(PlanDeviceMemoryTest, Table) {
  struct Case {
    const char* what;
    std::vector<DeviceRoom> devices;  // name, whole budget
    std::vector<ModelDemand> models;  // name, bytes, load, pin, KV floor
    std::vector<Want> want;
  };
  const std::vector<Case> cases = {
      {"one GPU: the KV pool is what the models leave",
       {Room("cuda:0", 100 * kGb)},
       {{"a", 16 * kGb, 0, {}}, {"b", 4 * kGb, 0, {}}},
       {{80 * kGb, 20 * kGb, {"a", "b"}}}},
      {"a model that would eat into the KV floor is not planned; it loads later by eviction",
       {Room("cuda:0", 10 * kGb)},
       {{"a", 8 * kGb, 0, {}}, {"b", 4 * kGb, 0, {}}, {"c", kGb, 0, {}}},
       {{kGb, 9 * kGb, {"a", "c"}}}},
      {"exactly up to the floor",
       {Room("cuda:0", 10 * kGb)},
       {{"a", 9 * kGb, 0, {}}},
       {{kGb, 9 * kGb, {"a"}}}},
      {"no model planned: a tenth for KV, the rest for models loaded later",
       {Room("cuda:0", 10 * kGb)},
       {{"huge", 50 * kGb, 0, {}}},
       {{kGb, 9 * kGb, {}}}},
      {"a pin puts the model on its device; the other keeps room for later loads",
       {Room("cuda:0", 10 * kGb), Room("cuda:1", 10 * kGb)},
       {{"a", 2 * kGb, 0, std::string("cuda:1")}},
       {{kGb, 9 * kGb, {}}, {8 * kGb, 2 * kGb, {"a"}}}},
      {"best fit in the order given, as the router registers them",
       {Room("cuda:0", 10 * kGb), Room("cuda:1", 10 * kGb)},
       {{"a", 3 * kGb, 0, {}}, {"b", 6 * kGb, 0, {}}, {"c", 3 * kGb, 0, {}}},
       {{kGb, 9 * kGb, {"a", "b"}}, {7 * kGb, 3 * kGb, {"c"}}}},
      {"floors count past the KV share: both fit on one device, their floors in its pool",
       {Room("cuda:0", 10 * kGb), Room("cuda:1", 10 * kGb)},
       {{"a", 5 * kGb, 0, {}, 2 * kGb}, {"b", kGb, 0, {}, 2 * kGb}},
       {{4 * kGb, 6 * kGb, {"a", "b"}}, {kGb, 9 * kGb, {}}}},
      {"b's floor does not fit beside a's weights and floor: b goes to the other device",
       {Room("cuda:0", 10 * kGb), Room("cuda:1", 10 * kGb)},
       {{"a", 5 * kGb, 0, {}, 2 * kGb}, {"b", kGb, 0, {}, 4 * kGb}},
       {{5 * kGb, 5 * kGb, {"a"}}, {9 * kGb, kGb, {"b"}}}},
      {"a floor within the KV share costs the weights nothing",
       {Room("cuda:0", 10 * kGb)},
       {{"a", 9 * kGb, 0, {}, kGb}},
       {{kGb, 9 * kGb, {"a"}}}},
      {"weights and a floor past the device plan nothing",
       {Room("cuda:0", 10 * kGb)},
       {{"a", 5 * kGb, 0, {}, 6 * kGb}},
       {{kGb, 9 * kGb, {}}}},
      {"a pin to a device not listed plans nothing",
       {Room("cuda:0", 10 * kGb)},
       {{"a", 2 * kGb, 0, std::string("cuda:7")}},
       {{kGb, 9 * kGb, {}}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::vector<DeviceMemoryPlan> plans = PlanDeviceMemory(c.devices, c.models);
    ASSERT_EQ(plans.size(), c.want.size());
    for (size_t i = 0; i < plans.size(); ++i) {
      SCOPED_TRACE(c.devices[i].name);
      EXPECT_EQ(plans[i].kv_pool_bytes, c.want[i].kv);
      EXPECT_EQ(plans[i].weights_budget_bytes, c.want[i].weights);
      EXPECT_THAT(plans[i].models, ElementsAreArray(c.want[i].models));
      EXPECT_EQ(plans[i].kv_pool_bytes + plans[i].weights_budget_bytes, c.devices[i].budget_bytes);
    }
  }
}

// A budget that is not a multiple of ten: the floor rounds up, so that KV
// never gets less than its share.
TEST(PlanDeviceMemoryTest, TheKvFloorRoundsUp) {
  const std::vector<DeviceMemoryPlan> plans =
      PlanDeviceMemory({Room("cuda:0", 1001)}, std::vector<ModelDemand>{{"a", 900, 0, {}}});
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].kv_pool_bytes, 101);
  EXPECT_EQ(plans[0].weights_budget_bytes, 900);
  EXPECT_THAT(plans[0].models, ElementsAreArray({"a"}));
}

// The CPU's ops behind a CUDA device's budget rule: `free` bytes free, and
// `context` bytes held by each model's context.
class FakeGpu final : public cohost::testing::ForwardingBackend {
 public:
  explicit FakeGpu(int64_t free, int64_t context = 0)
      : ForwardingBackend(kernels::MakeCpuBackend(1)), free_(free), context_(context) {}
  kernels::BackendKind kind() const override { return kernels::BackendKind::kCuda; }
  size_t ContextBytes() const override { return static_cast<size_t>(context_); }
  kernels::BackendCaps Caps() const override {
    kernels::BackendCaps caps = inner().Caps();
    caps.free_memory = static_cast<size_t>(free_);
    caps.device_name = "fake GPU";
    return caps;
  }

 private:
  int64_t free_;
  int64_t context_;
};

class SplitDeviceBudgetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = runtime::testing::TempPath("memory_plan_model.gguf");
    runtime::testing::WriteFile(path_, runtime::testing::MakeTinyModel().writer.Build());
    absl::StatusOr<runtime::ModelDescription> d = runtime::DescribeModel(path_);
    ASSERT_TRUE(d.ok()) << d.status();
    const runtime::StepSchedulerConfig& sc = options_.engine.step_scheduler;
    footprint_ = static_cast<int64_t>(
        runtime::Model::PredictWeightsBytes(d->config, kernels::DType::kF32) +
        runtime::Model::PredictWorkspaceBytes(d->config, kernels::DType::kF32,
                                              sc.max_tokens_per_step, sc.max_num_seqs));
    ASSERT_GT(footprint_, 0);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::vector<ModelSpec> Models(const std::vector<std::string>& paths) {
    std::vector<ModelSpec> models;
    for (size_t i = 0; i < paths.size(); ++i) {
      ModelSpec& m = models.emplace_back();
      m.name = absl::StrCat("m", i);
      m.path = paths[i];
    }
    return models;
  }

  std::string path_;
  int64_t footprint_ = 0;
  MemorySplitOptions options_;
};

// Each model's footprint on a GPU includes what its context holds (its cuBLAS
// workspace, op scratch, handles): the KV pool is planned around it.
TEST_F(SplitDeviceBudgetsTest, AGpusPoolIsWhatItsBudgetLeavesOnceTheModelsAreIn) {
  for (const int64_t context : {int64_t{0}, int64_t{48} << 20}) {
    SCOPED_TRACE(context);
    FakeGpu gpu(int64_t{1} << 30, context);
    options_.gpu_fraction = 0.5;
    std::vector<ModelSpec> models = Models({path_, path_});
    std::map<std::string, std::string> planned;
    absl::StatusOr<std::vector<DeviceSetup>> setups =
        SplitDeviceBudgets({{"cuda:0", &gpu}}, models, options_, &planned);
    ASSERT_TRUE(setups.ok()) << setups.status();
    ASSERT_EQ(setups->size(), 1u);
    EXPECT_EQ(planned, (std::map<std::string, std::string>{{"m0", "cuda:0"}, {"m1", "cuda:0"}}));
    const int64_t budget = int64_t{1} << 29;
    const int64_t weights = 2 * (footprint_ + context);
    EXPECT_EQ((*setups)[0].weights_budget_bytes, weights);
    EXPECT_EQ((*setups)[0].kv_pool_bytes, budget - weights);
    EXPECT_EQ((*setups)[0].id, "cuda:0");
    // Without floors nothing is reserved, and no cap is set: each model may
    // take the whole pool.
    EXPECT_TRUE((*setups)[0].reserved_kv_floors.empty());
    for (const ModelSpec& m : models) EXPECT_EQ(m.kv_cap_bytes, 0);
  }
}

TEST_F(SplitDeviceBudgetsTest, TheOperatorsPoolSizeWins) {
  FakeGpu gpu(int64_t{1} << 30);
  options_.kv_pool_bytes = int64_t{100} << 20;
  std::vector<ModelSpec> models = Models({path_});
  std::map<std::string, std::string> planned;
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cuda:0", &gpu}}, models, options_, &planned);
  ASSERT_TRUE(setups.ok()) << setups.status();
  EXPECT_TRUE(planned.empty()) << "nothing planned where the pool is given";
  const auto budget = static_cast<int64_t>(std::floor((int64_t{1} << 30) * 0.9));
  EXPECT_EQ((*setups)[0].kv_pool_bytes, int64_t{100} << 20);
  EXPECT_EQ((*setups)[0].weights_budget_bytes, budget - (int64_t{100} << 20));
}

TEST_F(SplitDeviceBudgetsTest, TheCpuKeepsItsDefaultPool) {
  std::unique_ptr<kernels::Backend> cpu = kernels::MakeCpuBackend(1);
  options_.cpu_memory_bytes = int64_t{1} << 30;
  std::vector<ModelSpec> models = Models({path_});
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cpu", cpu.get()}}, models, options_);
  ASSERT_TRUE(setups.ok()) << setups.status();
  const int64_t pool = runtime::EngineConfig().kv_cache_bytes;
  EXPECT_EQ(pool, int64_t{256} << 20);
  EXPECT_EQ((*setups)[0].kv_pool_bytes, pool);
  EXPECT_EQ((*setups)[0].weights_budget_bytes, (int64_t{1} << 30) - pool);
}

TEST_F(SplitDeviceBudgetsTest, AnUnreadableModelPlansNothing) {
  FakeGpu gpu(int64_t{1} << 30);
  options_.gpu_fraction = 0.5;
  std::vector<ModelSpec> models = Models({path_ + ".missing"});
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cuda:0", &gpu}}, models, options_);
  ASSERT_TRUE(setups.ok()) << setups.status();
  const int64_t budget = int64_t{1} << 29;
  const auto kv = static_cast<int64_t>(std::ceil(static_cast<double>(budget) * kMinKvShare));
  EXPECT_EQ((*setups)[0].kv_pool_bytes, kv);
  EXPECT_EQ((*setups)[0].weights_budget_bytes, budget - kv);
}

TEST_F(SplitDeviceBudgetsTest, APoolThatLeavesNothingForWeightsIsRefused) {
  std::unique_ptr<kernels::Backend> cpu = kernels::MakeCpuBackend(1);
  options_.cpu_memory_bytes = int64_t{64} << 20;
  options_.kv_pool_bytes = int64_t{64} << 20;
  std::vector<ModelSpec> models = Models({path_});
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cpu", cpu.get()}}, models, options_);
  EXPECT_EQ(setups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(setups.status().message()),
              ::testing::HasSubstr("cpu: its memory budget of 64 MB leaves nothing for weights"));
}

TEST_F(SplitDeviceBudgetsTest, FloorsThatDoNotFitThePlannedPoolAreRefused) {
  FakeGpu gpu(int64_t{1} << 30);
  std::vector<ModelSpec> models = Models({path_});
  models[0].kv_floor_bytes = int64_t{1} << 30;
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cuda:0", &gpu}}, models, options_);
  EXPECT_EQ(setups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(setups.status().message()),
              ::testing::HasSubstr("cuda:0: the kv_floor_mb of the models that belong there "
                                   "(\"m0\" 1024 MB)"));
}

// Each device's pool holds the floors of the models that belong to it, not
// every model's: two models pinned to two GPUs each fit their own.
TEST_F(SplitDeviceBudgetsTest, FloorsAreReservedOnTheDeviceEachModelBelongsTo) {
  FakeGpu gpu0(int64_t{1} << 30), gpu1(int64_t{1} << 30);
  options_.kv_pool_bytes = int64_t{100} << 20;  // each device's
  std::vector<ModelSpec> models = Models({path_, path_, path_});
  models[0].device = "cuda:0";
  models[0].kv_floor_bytes = int64_t{60} << 20;
  models[1].device = "cuda:1";
  models[1].kv_floor_bytes = int64_t{60} << 20;
  models[2].kv_floor_bytes = int64_t{30} << 20;  // placed at its load: kept on both until then
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cuda:0", &gpu0}, {"cuda:1", &gpu1}}, models, options_);
  ASSERT_TRUE(setups.ok()) << setups.status();
  EXPECT_EQ((*setups)[0].reserved_kv_floors,
            (std::map<std::string, int64_t>{{"m0", int64_t{60} << 20}, {"m2", int64_t{30} << 20}}));
  EXPECT_EQ((*setups)[1].reserved_kv_floors,
            (std::map<std::string, int64_t>{{"m1", int64_t{60} << 20}, {"m2", int64_t{30} << 20}}));
  models[2].kv_floor_bytes = int64_t{90} << 20;  // fits no pool beside the pinned floor
  absl::Status over =
      SplitDeviceBudgets({{"cuda:0", &gpu0}, {"cuda:1", &gpu1}}, models, options_).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.message()),
              ::testing::HasSubstr("\"m2\": its kv_floor_mb of 90 MB fits no device's KV pool"));

  models[2].device = "cuda:0";  // 60 + 90 MB on one 100 MB pool
  over = SplitDeviceBudgets({{"cuda:0", &gpu0}, {"cuda:1", &gpu1}}, models, options_).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.message()),
              ::testing::HasSubstr("cuda:0: the kv_floor_mb of the models that belong there "
                                   "(\"m0\" 60 MB, \"m2\" 90 MB) add up to 150 MB, more than its "
                                   "KV pool of 100 MB"));
}

// Planned pools: each model's floor is reserved where the plan put it, and
// the plan leaves room for it there.
TEST_F(SplitDeviceBudgetsTest, APlannedModelsFloorIsReservedOnItsPlannedDevice) {
  FakeGpu gpu0(int64_t{1} << 30), gpu1(int64_t{1} << 30);
  options_.gpu_fraction = 0.5;
  std::vector<ModelSpec> models = Models({path_, path_});
  models[0].kv_floor_bytes = int64_t{300} << 20;
  models[1].kv_floor_bytes = int64_t{300} << 20;  // both floors cannot share one 512 MB device
  std::map<std::string, std::string> planned;
  absl::StatusOr<std::vector<DeviceSetup>> setups =
      SplitDeviceBudgets({{"cuda:0", &gpu0}, {"cuda:1", &gpu1}}, models, options_, &planned);
  ASSERT_TRUE(setups.ok()) << setups.status();
  EXPECT_EQ(planned, (std::map<std::string, std::string>{{"m0", "cuda:0"}, {"m1", "cuda:1"}}));
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*setups)[i].reserved_kv_floors.size(), 1u);
    EXPECT_GE((*setups)[i].kv_pool_bytes, int64_t{300} << 20);
  }
}

}  // namespace
}  // namespace cohost::scheduler
