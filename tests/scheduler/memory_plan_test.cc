// PlanDeviceMemory as tables: devices' budgets and the configured models'
// footprints in, each device's KV pool, weights budget and planned models out.

#include "scheduler/memory_plan.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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
    std::vector<ModelDemand> models;  // name, bytes, load, pin
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

}  // namespace
}  // namespace cohost::scheduler
