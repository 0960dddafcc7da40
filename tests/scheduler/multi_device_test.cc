// A Router over several devices (here several CPU backends, each its own
// executor thread, KV pool and weights budget): a new model goes where
// placement says, by memory, pin and KV floor; each model is stepped by its
// own device's executor; a load evicts only on the model's device. Plus the
// busy meter that placement reads as a model's expected load.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/busy_meter.h"
#include "scheduler/router.h"
#include "tests/scheduler/lifecycle_fixture.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::FinishReason;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- BusyMeter ----

const runtime::Clock::time_point kStart = runtime::Clock::time_point{} + std::chrono::hours(100);

TEST(BusyMeterTest, ReadsTheFractionOfTimeSpentInSteps) {
  BusyMeter meter(seconds(10));
  EXPECT_EQ(meter.Load(kStart), 0) << "no step yet";
  // Busy half of every second for ten time constants: the estimate settles at 0.5.
  runtime::Clock::time_point t = kStart;
  for (int i = 0; i < 100; ++i) {
    t += seconds(1);
    meter.Record(0.5, t);
  }
  EXPECT_NEAR(meter.Load(t), 0.5, 0.03);
  // Idle for one time constant: it has forgotten all but 1/e.
  EXPECT_NEAR(meter.Load(t + seconds(10)), 0.5 / std::exp(1.0), 0.02);
  EXPECT_LT(meter.Load(t + seconds(100)), 0.001);
}

TEST(BusyMeterTest, NeverReadsAboveOneOrGoesBackInTime) {
  BusyMeter meter(seconds(1));
  for (int i = 0; i < 50; ++i) meter.Record(1.0, kStart + milliseconds(10 * i));
  EXPECT_EQ(meter.Load(kStart + milliseconds(500)), 1.0) << "overlapping steps clamp to 1";
  const double before = meter.Load(kStart + seconds(2));
  meter.Record(0.0, kStart);  // a step that ended before the last one: counted at the latest
  EXPECT_DOUBLE_EQ(meter.Load(kStart + seconds(2)), before);
}

// ---- several devices ----

TEST_F(LifecycleTest, AModelGoesWhereStartUpPlannedItWhileItFits) {
  // Each device holds one model. a is planned for the second device, where
  // placement alone (both empty) would pick the first; c for the second too,
  // which is full by then.
  planned_ = {{"a", "cpu:1"}, {"c", "cpu:1"}};
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  EXPECT_EQ(DeviceOf("a"), "cpu:1") << "planned there; both empty, placement alone says cpu:0";
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());
  EXPECT_EQ(DeviceOf("b"), "cpu:0") << "no plan: placement";
  // c's planned device is full: placement decides (and finds no room without evicting).
  ASSERT_TRUE(router_->AddModel(Spec("c", LoadPolicy::kLazy)).ok());
  for (const ModelSummary& m : router_->ListModels()) {
    if (m.name == "a") {
      EXPECT_THAT(m.placement, HasSubstr("planned at start-up")) << m.placement;
    } else {
      EXPECT_THAT(m.placement, Not(HasSubstr("planned at start-up")))
          << m.name << ": " << m.placement;
    }
  }
}

TEST_F(LifecycleTest, ModelsSpreadOverDevicesAndEachIsSteppedByItsOwn) {
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());
  EXPECT_EQ(DeviceOf("a"), "cpu:0") << "both empty: the first listed";
  EXPECT_EQ(DeviceOf("b"), "cpu:1") << "cpu:0 has no room left for a second model";
  EXPECT_EQ(Status("a").state, ModelState::kReady);
  EXPECT_EQ(Status("b").state, ModelState::kReady);
  EXPECT_EQ(Run("a")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Run("b")->info().reason, FinishReason::kLength);
  EXPECT_THAT(SteppedOn("a"), HasSubstr("cpu:0"));
  EXPECT_THAT(SteppedOn("b"), HasSubstr("cpu:1"));
  for (const ModelSummary& m : router_->ListModels()) {
    EXPECT_THAT(m.placement, HasSubstr("chosen among 2 devices")) << m.name;
    EXPECT_THAT(m.placement, HasSubstr(m.name == "a" ? "cpu:0" : "cpu:1")) << m.name;
    EXPECT_THAT(m.device, HasSubstr(m.name == "a" ? "cpu:0" : "cpu:1")) << m.name;
  }
  const auto& devices = router_->devices();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_NE(devices[0]->name, devices[1]->name) << "metrics tell them apart";
  EXPECT_NE(devices[0]->kv_pool.get(), devices[1]->kv_pool.get());
  EXPECT_NE(devices[0]->executor.get(), devices[1]->executor.get());
}

TEST_F(LifecycleTest, APinWinsOverBestFitAndAnUnknownPinIsRefused) {
  MakeRouter(/*models=*/2, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());  // cpu:0, the first listed
  ModelSpec pinned = Spec("pinned");
  pinned.device = "cpu:1";
  ASSERT_TRUE(router_->AddModel(pinned).ok());
  EXPECT_EQ(DeviceOf("pinned"), "cpu:1");
  // Best fit (the fullest device that fits) would put a third beside either;
  // the tie goes to the first listed.
  ASSERT_TRUE(router_->AddModel(Spec("c")).ok());
  EXPECT_EQ(DeviceOf("c"), "cpu:0");

  ModelSpec nowhere = Spec("nowhere");
  nowhere.device = "cpu:7";
  const absl::Status refused = router_->AddModel(nowhere);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("cpu:7"));
  EXPECT_FALSE(router_->Find("nowhere").ok());
}

// Devices' KV pools differ (each planned beside its own weights): a floor the
// first choice's pool cannot hold goes to a device whose pool can, and a cap
// past a pool is that pool, not a refusal.
TEST_F(LifecycleTest, AKvFloorOnePoolCannotHoldGoesToAnotherDevice) {
  kv_bytes_per_device_ = {int64_t{1} << 20, int64_t{4} << 20};
  MakeRouter(/*models=*/2, /*devices=*/2);
  ModelSpec big = Spec("big");
  big.kv_floor_bytes = int64_t{2} << 20;
  big.kv_cap_bytes = int64_t{3} << 20;
  const absl::Status added = router_->AddModel(big);
  ASSERT_TRUE(added.ok()) << added;
  EXPECT_EQ(DeviceOf("big"), "cpu:1");
  ModelSpec capped = Spec("capped");
  capped.device = "cpu:0";
  capped.kv_cap_bytes = int64_t{3} << 20;  // past cpu:0's pool of 1 MiB
  const absl::Status pinned = router_->AddModel(capped);
  ASSERT_TRUE(pinned.ok()) << pinned;
  EXPECT_EQ(DeviceOf("capped"), "cpu:0");
  Run("big");
  Run("capped");
  // A floor no device's pool can hold is refused as out of room.
  ModelSpec huge = Spec("huge");
  huge.kv_floor_bytes = int64_t{5} << 20;
  const absl::Status refused = router_->AddModel(huge);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("KV floor"));
}

// A configured model's floor is reserved on its device at start-up
// (SplitDeviceBudgets): a model that loads there first cannot be promised it.
TEST_F(LifecycleTest, AFloorReservedOnADeviceWaitsForItsModel) {
  kv_bytes_per_device_ = {int64_t{4} << 20, int64_t{4} << 20};
  reserved_per_device_ = {{{"b", int64_t{3} << 20}}};
  MakeRouter(/*models=*/2, /*devices=*/2);
  ModelSpec a = Spec("a");
  a.device = "cpu:0";
  ASSERT_TRUE(router_->AddModel(a).ok());
  // Past what b's reservation leaves on cpu:0.
  ModelSpec other = Spec("other");
  other.device = "cpu:0";
  other.kv_floor_bytes = int64_t{2} << 20;
  const absl::Status refused = router_->AddModel(other);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("cpu:0"));
  ModelSpec b = Spec("b");
  b.device = "cpu:0";
  b.kv_floor_bytes = int64_t{3} << 20;
  const absl::Status added = router_->AddModel(b);
  ASSERT_TRUE(added.ok()) << added;
  Run("a");
  Run("b");
  // Unloaded for good, b gives its floor up.
  ASSERT_TRUE(router_->UnloadModel("b").ok());
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return router_->AddModel(other).ok(); }, seconds(10)))
      << "b's floor is still kept";
}

// A floor start-up could not place is kept on every device that could hold
// it, and moves to the one its model loads on: the other gets it back.
TEST_F(LifecycleTest, AnUnplacedFloorIsKeptWhereverItsModelMayGoUntilItLoads) {
  kv_bytes_per_device_ = {int64_t{4} << 20, int64_t{4} << 20};
  reserved_per_device_ = {{{"f", int64_t{2} << 20}}, {{"f", int64_t{2} << 20}}};
  MakeRouter(/*models=*/2, /*devices=*/2);
  ModelSpec f = Spec("f");
  f.kv_floor_bytes = int64_t{2} << 20;
  ASSERT_TRUE(router_->AddModel(f).ok());
  const std::string there = DeviceOf("f");
  const std::string other_device = there == "cpu:0" ? "cpu:1" : "cpu:0";
  ModelSpec g = Spec("g");
  g.device = other_device;
  g.kv_floor_bytes = int64_t{3} << 20;  // fits only once f's floor left that pool
  const absl::Status added = router_->AddModel(g);
  EXPECT_TRUE(added.ok()) << added;
  Run("f");
}

TEST_F(LifecycleTest, ALoadEvictsOnlyOnItsOwnDevice) {
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());  // cpu:0
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());  // cpu:1
  Run("a");
  std::this_thread::sleep_for(milliseconds(5));
  Run("b");
  // Both devices are full; either could make room by evicting its idle model,
  // at the same cost: the first listed.
  ASSERT_TRUE(router_->AddModel(Spec("lazy", LoadPolicy::kLazy)).ok());
  EXPECT_EQ(DeviceOf("lazy"), "cpu:0");
  EXPECT_EQ(Run("lazy")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);
  EXPECT_THAT(Status("a").reason, HasSubstr("lazy"));
  EXPECT_EQ(Status("b").state, ModelState::kReady) << "another device's model is left alone";
  // a reloads on its own device, evicting lazy (now idle past its keep-alive).
  EXPECT_EQ(Run("a")->info().reason, FinishReason::kLength);
  EXPECT_EQ(DeviceOf("a"), "cpu:0");
  EXPECT_EQ(Status("lazy").state, ModelState::kEvicted);
  EXPECT_EQ(Status("b").state, ModelState::kReady);
}

// A model reloads on another device only where the requests waiting for
// its load fit: one whose KV that device's pool could never hold keeps it
// where it was, and is refused there with a status it may retry, not
// INVALID_ARGUMENT for a request that was valid when sent.
TEST_F(LifecycleTest, AModelMovesOnlyWhereTheRequestsWaitingForItFit) {
  kv_bytes_per_device_ = {int64_t{4} << 20, int64_t{16} << 10};  // cpu:1 holds 60 tokens
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_EQ(DeviceOf("a"), "cpu:0");
  RunPinnedOn("cpu:0");
  ASSERT_EQ(Status("a").state, ModelState::kEvicted);

  std::shared_ptr<Collect> big = Run("a", 100);  // 103 tokens: cpu:0's pool only
  EXPECT_EQ(big->info().status.code(), absl::StatusCode::kResourceExhausted) << big->info().status;
  EXPECT_EQ(DeviceOf("a"), "cpu:0");
  std::shared_ptr<Collect> small = Run("a", 8);
  EXPECT_EQ(small->info().reason, FinishReason::kLength) << small->info().status;
  EXPECT_EQ(DeviceOf("a"), "cpu:1");
}

// Placement is recomputed when a model loads again: evicted from a device
// that another model now holds within its keep-alive, it reloads on one that
// has room, and answers as before.
TEST_F(LifecycleTest, AnEvictedModelReloadsOnAnotherDeviceThatHasRoom) {
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_EQ(DeviceOf("a"), "cpu:0");
  const std::vector<int32_t> want = Run("a", 8)->ids();
  ASSERT_EQ(want.size(), 8u);
  RunPinnedOn("cpu:0");
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);

  std::shared_ptr<Collect> back = Run("a", 8);
  EXPECT_EQ(back->info().reason, FinishReason::kLength) << back->info().status;
  EXPECT_EQ(back->ids(), want);
  EXPECT_EQ(DeviceOf("a"), "cpu:1");
  EXPECT_EQ(Status("pinned").state, ModelState::kReady) << "within its keep-alive";
  EXPECT_TRUE(cohost::testing::WaitFor(
      [&] { return SteppedOn("a").find("cpu:1") != std::string::npos; }, kWait))
      << "stepped by the new device's executor";
  EXPECT_THAT(PlacementOf("a"), HasSubstr("moved from cpu:0"));
}

// When every device would have to evict, the model goes where evicting is
// possible and cheapest: its own device holds a model within its keep-alive,
// the other an idle one past it, so it reloads there by evicting that one.
TEST_F(LifecycleTest, WhenEveryDeviceMustEvictAModelReloadsWhereItCan) {
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());
  ASSERT_EQ(DeviceOf("a"), "cpu:0");
  ASSERT_EQ(DeviceOf("b"), "cpu:1");
  const std::vector<int32_t> want = Run("a", 8)->ids();
  Run("b");
  RunPinnedOn("cpu:0");
  ASSERT_EQ(Status("a").state, ModelState::kEvicted);

  std::shared_ptr<Collect> back = Run("a", 8);
  EXPECT_EQ(back->info().reason, FinishReason::kLength) << back->info().status;
  EXPECT_EQ(back->ids(), want);
  EXPECT_EQ(DeviceOf("a"), "cpu:1");
  EXPECT_EQ(Status("b").state, ModelState::kEvicted);
  EXPECT_THAT(Status("b").reason, HasSubstr("\"a\""));
  EXPECT_EQ(Status("pinned").state, ModelState::kReady) << "within its keep-alive";
  EXPECT_THAT(PlacementOf("a"), HasSubstr("did not fit"));
  // b reloads on cpu:1 by evicting a (idle, past its keep-alive); cpu:0
  // cannot take it (pinned is within its keep-alive): it stays.
  EXPECT_EQ(Run("b")->info().reason, FinishReason::kLength);
  EXPECT_EQ(DeviceOf("b"), "cpu:1");
}

// A model moves back and forth between two devices while another thread
// reads where it is, what it accepts and what it holds, and lists every
// model: each read sees one whole placement (the sanitizer runs check that
// nothing races), and every request finishes.
TEST_F(LifecycleTest, ReadersSeeAWholePlacementWhileAModelMoves) {
  MakeRouter(/*models=*/1, /*devices=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  std::shared_ptr<ServedModel> a = router_->Find("a").value();
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      const std::string id = a->device().id;
      EXPECT_TRUE(id == "cpu:0" || id == "cpu:1") << id;
      EXPECT_GT(a->request_limits().kv_capacity_tokens, 0);
      EXPECT_GE(a->kv_bytes_held(), 0);
      EXPECT_GT(a->engine_config().step_scheduler.max_tokens_per_step, 0);
      EXPECT_EQ(router_->ListModels().empty(), false);
      reads.fetch_add(1);
    }
  });
  std::string last = DeviceOf("a");
  for (int round = 0; round < 4; ++round) {
    // A model pinned where a is, within its keep-alive, evicts it; a then
    // reloads on the other device; the pinned one is unloaded.
    ModelSpec pinned = Spec(absl::StrFormat("pinned%d", round), LoadPolicy::kLazy, seconds(3600));
    pinned.device = last;
    ASSERT_TRUE(router_->AddModel(pinned).ok());
    EXPECT_EQ(Run(pinned.name)->info().reason, FinishReason::kLength);
    EXPECT_EQ(Run("a")->info().reason, FinishReason::kLength);
    EXPECT_NE(DeviceOf("a"), last) << "round " << round;
    last = DeviceOf("a");
    ASSERT_TRUE(router_->UnloadModel(pinned.name).ok());
  }
  stop.store(true);
  reader.join();
  EXPECT_GT(reads.load(), 0);
}

TEST_F(LifecycleTest, AFloorOneDevicesPoolCannotTakeGoesToAnother) {
  MakeRouter(/*models=*/4, /*devices=*/2, /*kv_bytes=*/int64_t{4} << 20);
  ModelSpec big = Spec("big");
  big.kv_floor_bytes = int64_t{3} << 20;
  big.kv_cap_bytes = int64_t{4} << 20;
  ASSERT_TRUE(router_->AddModel(big).ok());
  EXPECT_EQ(DeviceOf("big"), "cpu:0");
  ModelSpec second = Spec("second");
  second.kv_floor_bytes = int64_t{3} << 20;
  second.kv_cap_bytes = int64_t{4} << 20;
  // Memory alone would put it beside big (best fit); big's floor leaves that
  // pool 1 MB, so it goes to the other device.
  ASSERT_TRUE(router_->AddModel(second).ok());
  EXPECT_EQ(DeviceOf("second"), "cpu:1");
  EXPECT_THAT(PlacementOf("second"),
              AllOf(Not(HasSubstr("chosen among 2 devices")),
                    HasSubstr("1 device passed over: its KV pool cannot take its floor")));
  EXPECT_EQ(Run("second")->info().reason, FinishReason::kLength);

  ModelSpec third = Spec("third");
  third.kv_floor_bytes = int64_t{3} << 20;
  const absl::Status refused = router_->AddModel(third);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << "no pool can take it";
  EXPECT_THAT(std::string(refused.message()), Not(HasSubstr("does not have")));
  EXPECT_FALSE(router_->Find("third").ok());
}

}  // namespace
}  // namespace cohost::scheduler
