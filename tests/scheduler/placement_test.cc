// PlaceModel and PlaceModels as tables: given devices (budgets, used bytes,
// load, idle residents) and footprints, the expected device, evictions or
// refusal.

#include "scheduler/placement.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const runtime::Clock::time_point kNow = runtime::Clock::time_point{} + hours(100);
constexpr int64_t kGb = int64_t{1} << 30;

DeviceRoom Device(std::string name, int64_t budget, int64_t used, double load = 0,
                  std::vector<EvictionCandidate> residents = {}) {
  return DeviceRoom{std::move(name), budget, used, load, std::move(residents)};
}
ModelDemand Model(int64_t bytes, double load = 0, std::optional<std::string> device = {}) {
  return ModelDemand{"m", bytes, load, std::move(device)};
}
// Idle for `ago`, keep-alive `keep`: evictable when ago > keep.
EvictionCandidate Resident(int64_t bytes, seconds ago, seconds keep, bool idle = true,
                           int32_t priority = 0) {
  return EvictionCandidate{bytes, idle, kNow - ago, keep, priority};
}

TEST(PlaceModelTest, Table) {
  struct Case {
    const char* what;
    std::vector<DeviceRoom> devices;
    ModelDemand model;
    std::optional<size_t> device;  // nullopt: refused
    std::vector<size_t> evict = {};
  };
  const Case cases[] = {
      {"the only device, room to spare", {Device("cpu", 8 * kGb, 0)}, Model(kGb), 0},
      {"best fit: the device left fullest",
       {Device("cuda:0", 80 * kGb, 10 * kGb), Device("cuda:1", 80 * kGb, 60 * kGb)},
       Model(10 * kGb),
       1},
      {"a device too full is passed over",
       {Device("cuda:0", 80 * kGb, 75 * kGb), Device("cuda:1", 80 * kGb, 10 * kGb)},
       Model(10 * kGb),
       1},
      {"exactly full fits (never over-committed, but not refused either)",
       {Device("cuda:0", 80 * kGb, 70 * kGb)},
       Model(10 * kGb),
       0},
      {"equal fit: the less loaded device",
       {Device("cuda:0", 80 * kGb, 40 * kGb, 0.6), Device("cuda:1", 80 * kGb, 40 * kGb, 0.2)},
       Model(10 * kGb),
       1},
      {"best fit would overload a device: the one with spare capacity",
       {Device("cuda:0", 80 * kGb, 60 * kGb, 0.9), Device("cuda:1", 80 * kGb, 10 * kGb, 0.1)},
       Model(10 * kGb, 0.3),
       1},
      {"every device over capacity: the least loaded that fits in memory",
       {Device("cuda:0", 80 * kGb, 10 * kGb, 0.95), Device("cuda:1", 80 * kGb, 60 * kGb, 0.8)},
       Model(10 * kGb, 0.3),
       1},
      {"pinned: only that device, though another fits better",
       {Device("cuda:0", 80 * kGb, 0), Device("cuda:1", 80 * kGb, 60 * kGb)},
       Model(10 * kGb, 0, "cuda:0"),
       0},
      {"full: evict the idle model past its keep-alive",
       {Device("cpu", 8 * kGb, 8 * kGb, 0,
               {Resident(4 * kGb, seconds(600), seconds(300)),
                Resident(4 * kGb, seconds(10), seconds(300))})},
       Model(3 * kGb),
       0,
       {0}},
      {"evictions: the device where they cost the fewest bytes",
       {Device("cuda:0", 80 * kGb, 80 * kGb, 0, {Resident(40 * kGb, seconds(600), seconds(0))}),
        Device("cuda:1", 80 * kGb, 75 * kGb, 0, {Resident(8 * kGb, seconds(600), seconds(0))})},
       Model(10 * kGb),
       1,
       {0}},
      {"evictions: a lower priority goes first, though it frees more bytes",
       {Device("cuda:0", 80 * kGb, 80 * kGb, 0,
               {Resident(12 * kGb, seconds(600), seconds(0), true, /*priority=*/5)}),
        Device("cuda:1", 80 * kGb, 75 * kGb, 0,
               {Resident(40 * kGb, seconds(600), seconds(0)),
                Resident(30 * kGb, seconds(600), seconds(0))})},
       Model(10 * kGb),
       1,
       {0}},
      {"a fit without evictions beats one with",
       {Device("cuda:0", 80 * kGb, 80 * kGb, 0, {Resident(40 * kGb, seconds(600), seconds(0))}),
        Device("cuda:1", 80 * kGb, 0)},
       Model(10 * kGb),
       1},
      {"refused: residents within keep-alive",
       {Device("cpu", 8 * kGb, 8 * kGb, 0, {Resident(8 * kGb, seconds(10), seconds(300))})},
       Model(kGb),
       std::nullopt},
      {"refused: residents busy",
       {Device("cpu", 8 * kGb, 8 * kGb, 0,
               {Resident(8 * kGb, seconds(600), seconds(0), /*idle=*/false)})},
       Model(kGb),
       std::nullopt},
      {"refused: larger than any device's budget",
       {Device("cuda:0", 80 * kGb, 0), Device("cuda:1", 80 * kGb, 0)},
       Model(81 * kGb),
       std::nullopt},
      {"refused: no devices", {}, Model(kGb), std::nullopt},
      // A load measured larger than expected left the device 4 GB over its
      // budget: evicting the idle 8 GB frees only 4 GB for a 6 GB model,
      // and the busy 16 GB may not go. It was evicted for nothing.
      {"refused: a device over its budget must free its excess as well",
       {Device("cuda:0", 20 * kGb, 24 * kGb, 0,
               {Resident(16 * kGb, seconds(600), seconds(0), /*idle=*/false),
                Resident(8 * kGb, seconds(600), seconds(0))})},
       Model(6 * kGb),
       std::nullopt},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Placement> p = PlaceModel(c.devices, c.model, kNow);
    if (!c.device) {
      ASSERT_FALSE(p.ok()) << c.what;
      EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted) << c.what;
      continue;
    }
    ASSERT_TRUE(p.ok()) << c.what << ": " << p.status();
    EXPECT_EQ(p->device, *c.device) << c.what;
    EXPECT_THAT(p->evict, ElementsAreArray(c.evict)) << c.what;
    EXPECT_FALSE(p->why.empty()) << c.what;
  }
}

TEST(PlaceModelTest, ReasonsSayWhy) {
  absl::StatusOr<Placement> p = PlaceModel({Device("cpu", 8 * kGb, 2 * kGb)}, Model(kGb), kNow);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->why, HasSubstr("best fit"));
  p = PlaceModel({Device("cpu", 8 * kGb, 2 * kGb)}, Model(kGb, 0, "cpu"), kNow);
  EXPECT_THAT(p->why, HasSubstr("pinned"));
  p = PlaceModel({Device("cpu", 2 * kGb, 2 * kGb, 0, {Resident(kGb, seconds(9), seconds(0))})},
                 Model(kGb), kNow);
  EXPECT_THAT(p->why, HasSubstr("evicting 1 idle model"));

  absl::Status refused =
      PlaceModel({Device("cuda:0", 8 * kGb, 7 * kGb)}, Model(2 * kGb), kNow).status();
  EXPECT_THAT(std::string(refused.message()), HasSubstr("1024.0 MB on cuda:0"));
  absl::Status unknown =
      PlaceModel({Device("cpu", 8 * kGb, 0)}, Model(kGb, 0, "cuda:3"), kNow).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("cuda:3"));
}

TEST(PlaceModelsTest, BestFitDecreasing) {
  struct Case {
    const char* what;
    std::vector<DeviceRoom> devices;
    std::vector<int64_t> gb;  // the models' sizes, in the order given
    std::vector<int> want;    // device per model; -1: refused
  };
  const Case cases[] = {
      // Best fit in the given order puts the 2 on cuda:1 and the first 4 on
      // cuda:0, and the second 4 fits nowhere; largest first packs all three.
      {"largest first packs what arrival order cannot",
       {Device("cuda:0", 6 * kGb, 0), Device("cuda:1", 4 * kGb, 0)},
       {2, 4, 4},
       {0, 1, 0}},
      {"best fit keeps the big hole for the big model",
       {Device("cuda:0", 10 * kGb, 0), Device("cuda:1", 5 * kGb, 0)},
       {9, 4},
       {0, 1}},
      {"what fits nowhere is refused, the rest placed",
       {Device("cpu", 8 * kGb, 0)},
       {6, 3, 2},
       {0, -1, 0}},
      {"never over-commits a device", {Device("cpu", 8 * kGb, 0)}, {4, 4, 4}, {0, 0, -1}},
  };
  for (const Case& c : cases) {
    std::vector<ModelDemand> models;
    for (int64_t gb : c.gb) models.push_back(Model(gb * kGb));
    const std::vector<absl::StatusOr<Placement>> got = PlaceModels(c.devices, models, kNow);
    ASSERT_EQ(got.size(), c.want.size()) << c.what;
    for (size_t i = 0; i < got.size(); ++i) {
      if (c.want[i] < 0) {
        EXPECT_FALSE(got[i].ok()) << c.what << ", model " << i;
      } else {
        ASSERT_TRUE(got[i].ok()) << c.what << ", model " << i << ": " << got[i].status();
        EXPECT_EQ(got[i]->device, static_cast<size_t>(c.want[i])) << c.what << ", model " << i;
      }
    }
  }
}

}  // namespace
}  // namespace cohost::scheduler
