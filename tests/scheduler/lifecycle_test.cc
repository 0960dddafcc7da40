// The Router's model lifecycle on tiny GGUF files: lazy loading on a first
// request (its wait for the load counted in its timings), eviction of idle
// models past their keep-alive, least recently used first, never of a busy one
// or one within its keep-alive, reloading an evicted model, a failed load that
// leaves the others serving, loading in the background, and unloading a model
// whose requests wait for its load. Plus the eviction rule and the device
// budget as tables.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/engine/json_constraint.h"
#include "scheduler/device_budget.h"
#include "scheduler/eviction.h"
#include "scheduler/router.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/scheduler/lifecycle_fixture.h"
#include "tests/support/forwarding_backend.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::FinishInfo;
using runtime::FinishReason;
using std::chrono::hours;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- PickEvictions ----

const runtime::Clock::time_point kNow = runtime::Clock::time_point{} + hours(100);

EvictionCandidate Idle(int64_t bytes, seconds ago, std::optional<seconds> keep_alive,
                       int32_t priority = 0) {
  return {bytes, true, kNow - ago, keep_alive, priority};
}

TEST(PickEvictionsTest, Table) {
  struct Case {
    const char* what;
    std::vector<EvictionCandidate> candidates;
    int64_t need, free;
    std::optional<std::vector<size_t>> want;
  };
  const std::optional<seconds> k10 = seconds(10), forever = std::nullopt;
  const Case cases[] = {
      {"it fits already", {Idle(100, seconds(60), k10)}, 50, 50, std::vector<size_t>{}},
      {"nothing to evict", {}, 50, 10, std::nullopt},
      {"the least recently used goes first",
       {Idle(100, seconds(20), k10), Idle(100, seconds(90), k10), Idle(100, seconds(50), k10)},
       150,
       60,
       std::vector<size_t>{1}},
      {"as many as needed, oldest first",
       {Idle(100, seconds(20), k10), Idle(100, seconds(90), k10), Idle(100, seconds(50), k10)},
       250,
       60,
       std::vector<size_t>{1, 2}},
      {"within its keep-alive: kept",
       {Idle(100, seconds(5), k10), Idle(100, seconds(30), k10)},
       150,
       60,
       std::vector<size_t>{1}},
      {"keep-alive exactly passed: evictable",
       {Idle(100, seconds(10), k10)},
       100,
       0,
       std::vector<size_t>{0}},
      {"busy: kept",
       {{100, false, kNow - seconds(90), k10, 0}, Idle(100, seconds(30), k10)},
       150,
       60,
       std::vector<size_t>{1}},
      {"kept forever", {Idle(100, seconds(1000), forever)}, 100, 0, std::nullopt},
      {"the lowest priority goes first, however recently used",
       {Idle(100, seconds(90), k10, 5), Idle(100, seconds(20), k10, -1)},
       150,
       60,
       std::vector<size_t>{1}},
      {"within one priority, the least recently used",
       {Idle(100, seconds(20), k10, 1), Idle(100, seconds(90), k10, 1),
        Idle(100, seconds(99), k10, 2)},
       150,
       60,
       std::vector<size_t>{1}},
      {"a high priority still goes when nothing else frees enough",
       {Idle(100, seconds(20), k10, 9), Idle(50, seconds(90), k10, 0)},
       200,
       60,
       std::vector<size_t>{1, 0}},
      {"priority does not override a keep-alive",
       {Idle(100, seconds(5), k10, -9), Idle(100, seconds(30), k10, 9)},
       150,
       60,
       std::vector<size_t>{1}},
      {"a small model taken first stays when the larger one after it covers the need",
       {Idle(1, seconds(90), k10), Idle(100, seconds(50), k10)},
       100,
       0,
       std::vector<size_t>{1}},
      {"of those the others cover, the one the order would keep longest stays",
       {Idle(60, seconds(90), k10), Idle(50, seconds(60), k10), Idle(100, seconds(30), k10)},
       150,
       0,
       std::vector<size_t>{0, 2}},
      {"a device over its budget (free < 0) must free its excess too (clamped at 0, the "
       "first alone would do)",
       {Idle(70, seconds(90), k10), Idle(50, seconds(50), k10)},
       60,
       -30,
       std::vector<size_t>{0, 1}},
      {"not enough even evicting all: evict none",
       {Idle(100, seconds(90), k10), {500, false, kNow, k10, 0}},
       400,
       60,
       std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PickEvictions(c.candidates, c.need, c.free, kNow), c.want) << c.what;
  }
}

// ---- the device budget ----

// The cgroups that bound the process, from /proc/self/cgroup: a systemd
// service's own and its slices' (v2), a container's at its root, a v1
// memory hierarchy's on a hybrid host.
TEST(DeviceBudgetTest, CgroupMemoryDirsWalkUpFromTheProcesssOwn) {
  const auto paths = [](std::string_view text) {
    std::vector<std::string> out;
    for (const CgroupDir& d : CgroupMemoryDirs(text, "/sys/fs/cgroup")) {
      out.push_back(absl::StrCat(d.v2 ? "v2 " : "v1 ", d.path));
    }
    return out;
  };
  EXPECT_THAT(paths("0::/system.slice/cohost.service\n"),
              ElementsAre("v2 /sys/fs/cgroup/system.slice/cohost.service",
                          "v2 /sys/fs/cgroup/system.slice", "v2 /sys/fs/cgroup"));
  EXPECT_THAT(paths("0::/\n"), ElementsAre("v2 /sys/fs/cgroup"));
  EXPECT_THAT(paths("4:memory:/process_api/abc\n1:cpu:/\n0::/\n"),
              ElementsAre("v1 /sys/fs/cgroup/memory/process_api/abc",
                          "v1 /sys/fs/cgroup/memory/process_api", "v1 /sys/fs/cgroup/memory"));
  EXPECT_THAT(paths("7:cpu,memory:/x/\n"),
              ElementsAre("v1 /sys/fs/cgroup/memory/x", "v1 /sys/fs/cgroup/memory"));
  EXPECT_TRUE(paths("").empty());
  EXPECT_TRUE(paths("0::/../../etc\n").empty());
}

TEST(DeviceBudgetTest, CgroupHeadroom) {
  EXPECT_EQ(CgroupHeadroom("max\n", "123\n"), std::nullopt);
  EXPECT_EQ(CgroupHeadroom("1000\n", "300\n"), 700);
  EXPECT_EQ(CgroupHeadroom("1000", "3000"), 0) << "over its limit: no headroom, not negative";
  EXPECT_EQ(CgroupHeadroom("", ""), std::nullopt);
  EXPECT_EQ(CgroupHeadroom("lots", "1"), std::nullopt);
  EXPECT_EQ(CgroupHeadroom("9223372036854771712\n", "300\n"), std::nullopt) << "v1's unlimited";
  // The inactive page cache counted in the usage is reclaimable: a model
  // file mapped by an earlier run left a container "full".
  EXPECT_EQ(CgroupHeadroom("1000", "1000", "active_file 50\ninactive_file 600\n"), 600);
  EXPECT_EQ(CgroupHeadroom("1000", "900", "inactive_file 5\ntotal_inactive_file 700\n"), 800)
      << "v1: the hierarchical count";
  EXPECT_EQ(CgroupHeadroom("1000", "100", "inactive_file 5000\n"), 1000) << "never above the limit";
}

TEST(DeviceBudgetTest, CpuFlagOrAFractionOfWhatIsAvailable) {
  auto cpu = kernels::MakeCpuBackend(1);
  EXPECT_EQ(DeviceMemoryBudget(*cpu, int64_t{12345}, 0.9).value(), 12345);
  absl::StatusOr<int64_t> by_default = DeviceMemoryBudget(*cpu, std::nullopt, 0.9);
  ASSERT_TRUE(by_default.ok()) << by_default.status();
  EXPECT_GT(*by_default, 0);
  EXPECT_LE(*by_default, static_cast<int64_t>(cpu->Caps().free_memory));
  EXPECT_EQ(DeviceMemoryBudget(*cpu, std::nullopt, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeviceMemoryBudget(*cpu, std::nullopt, 1.5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- the lifecycle ----

TEST_F(LifecycleTest, ALazyModelLoadsOnItsFirstRequestWhichWaitsForIt) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("lazy", LoadPolicy::kLazy)).ok());
  ModelStatus s = Status("lazy");
  EXPECT_EQ(s.state, ModelState::kEvicted);
  EXPECT_THAT(s.reason, HasSubstr("lazy"));
  EXPECT_EQ(s.weights_bytes, 0);

  std::shared_ptr<Collect> first = Run("lazy");
  EXPECT_EQ(first->info().reason, FinishReason::kLength);
  EXPECT_EQ(first->tokens(), 3);
  s = Status("lazy");
  EXPECT_EQ(s.state, ModelState::kReady);
  EXPECT_EQ(s.weights_bytes, weights_) << "as predicted";
  EXPECT_EQ(s.workspace_bytes, workspace_) << "as predicted, allocated with the engine";
  EXPECT_EQ(s.loads_ok, 1);
  // It waited for the whole load before its first step: its queue time (and
  // so its TTFT) includes the load.
  EXPECT_GE(first->info().timings.queue_ms, s.last_load_seconds * 1000.0);
  EXPECT_GE(first->info().timings.ttft_ms, first->info().timings.queue_ms);
  EXPECT_GT(s.last_load_seconds, 0);
}

// A model's keep-alive counts from when it is ready, not from its
// registration: a load longer than the keep-alive left it evictable the
// moment it was ready.
TEST_F(LifecycleTest, KeepAliveCountsFromWhenTheModelIsReady) {
  MakeRouter(1);
  const runtime::Clock::time_point before = runtime::Clock::now();
  bool slowed = false;
  ASSERT_TRUE(router_
                  ->AddModel(Spec("slow"),
                             [&slowed](uint64_t, uint64_t) {
                               if (!std::exchange(slowed, true)) {
                                 std::this_thread::sleep_for(std::chrono::milliseconds(200));
                               }
                             })
                  .ok());
  ASSERT_TRUE(slowed) << "the load reported progress";
  EXPECT_GE(Status("slow").last_used - before, std::chrono::milliseconds(200));
}

TEST_F(LifecycleTest, IdleModelsPastTheirKeepAliveAreEvictedLeastRecentlyUsedFirst) {
  MakeRouter(2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("c", LoadPolicy::kLazy)).ok());
  Run("b");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Run("a");  // now b is the least recently used
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("b").state, ModelState::kEvicted);
  EXPECT_THAT(Status("b").reason, HasSubstr("for model \"c\""));
  EXPECT_EQ(Status("b").evictions, 1);
  EXPECT_EQ(Status("a").state, ModelState::kReady);
  EXPECT_EQ(Status("c").state, ModelState::kReady);

  // An evicted model reloads on its next request (evicting the oldest again).
  EXPECT_EQ(Run("b")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("b").state, ModelState::kReady);
  EXPECT_EQ(Status("b").loads_ok, 2);
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);
}

// A model's JSON constraint (its sorted vocabulary and cached masks) is built
// once: the engine of a reload after an eviction holds the same one, and a
// JSON request it has seen before walks the vocabulary no more.
TEST_F(LifecycleTest, AReloadKeepsTheModelsJsonMasks) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("a", LoadPolicy::kLazy)).ok());
  ASSERT_TRUE(router_->AddModel(Spec("b", LoadPolicy::kLazy)).ok());
  const auto json = [&] {
    runtime::GenerateRequest r = Request(6);
    r.sampling.ignore_eos = false;
    r.sampling.response_format = runtime::ResponseFormat::kJsonObject;
    auto sink = std::make_shared<Collect>();
    ASSERT_TRUE(router_->Submit(router_->Find("a").value(), r, sink).ok());
    ASSERT_TRUE(sink->Wait());
    EXPECT_TRUE(sink->info().status.ok()) << sink->info().status;
  };
  json();
  const std::shared_ptr<const runtime::JsonConstraint> constraint =
      router_->Find("a").value()->JsonConstraintOnce();
  const int64_t walked = constraint->walks();
  EXPECT_GT(walked, 0);
  Run("b");  // evicts a
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);
  json();
  EXPECT_EQ(Status("a").loads_ok, 2);
  EXPECT_EQ(router_->Find("a").value()->JsonConstraintOnce(), constraint);
  EXPECT_EQ(constraint->walks(), walked) << "the reloaded engine used the masks cached before";
}

TEST_F(LifecycleTest, AModelWithinItsKeepAliveIsNeverEvictedAndTheNewOneFails) {
  failed_load_retry_ms_ = 60'000;  // (a full device is not a broken file: no wait)
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("resident", LoadPolicy::kStartup, hours(1))).ok());
  ASSERT_TRUE(router_->AddModel(Spec("newcomer", LoadPolicy::kLazy)).ok());
  std::shared_ptr<Collect> refused = Run("newcomer");
  EXPECT_EQ(refused->info().reason, FinishReason::kError);
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused->info().status.message()), HasSubstr("within its keep-alive"));
  EXPECT_EQ(Status("newcomer").state, ModelState::kFailed);
  EXPECT_EQ(Status("resident").state, ModelState::kReady);
  EXPECT_EQ(Run("resident")->info().reason, FinishReason::kLength) << "it serves on";
  // The device stays full, so the next request tries (and fails) again at
  // once rather than being refused for a minute.
  std::shared_ptr<Collect> again = Run("newcomer");
  EXPECT_EQ(again->info().status.code(), absl::StatusCode::kResourceExhausted)
      << again->info().status;
  EXPECT_EQ(Status("newcomer").loads_failed, 2);
}

// Holds the device's executor inside its first token until released.
class Held : public Collect {
 public:
  bool OnDelta(const runtime::TokenDelta& d) override {
    if (!entered_) {
      entered_ = true;
      entered_promise_.set_value();
      release_.wait();
    }
    return Collect::OnDelta(d);
  }
  std::future<void> entered() { return entered_promise_.get_future(); }
  void Release() { release_promise_.set_value(); }

 private:
  bool entered_ = false;  // the executor thread's only
  std::promise<void> entered_promise_, release_promise_;
  std::shared_future<void> release_ = release_promise_.get_future().share();
};

TEST_F(LifecycleTest, ALowerPriorityModelIsEvictedBeforeAnOlderHigherOne) {
  MakeRouter(2);
  ModelSpec important = Spec("important");
  important.priority = 5;
  ASSERT_TRUE(router_->AddModel(important).ok());
  ASSERT_TRUE(router_->AddModel(Spec("casual")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("c", LoadPolicy::kLazy)).ok());
  Run("important");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Run("casual");  // important is now the least recently used
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("casual").state, ModelState::kEvicted);
  EXPECT_EQ(Status("important").state, ModelState::kReady);
}

TEST_F(LifecycleTest, ABusyModelIsNeverEvicted) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("busy", LoadPolicy::kStartup, seconds(0))).ok());
  ASSERT_TRUE(router_->AddModel(Spec("other", LoadPolicy::kLazy)).ok());
  // A request of "busy" is running (held in its first token) while "other"
  // asks for its memory.
  auto held = std::make_shared<Held>();
  std::future<void> entered = held->entered();
  ASSERT_TRUE(router_->Submit(router_->Find("busy").value(), Request(5), held).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  auto refused = std::make_shared<Collect>();
  ASSERT_TRUE(router_->Submit(router_->Find("other").value(), Request(), refused).ok());
  ASSERT_TRUE(refused->Wait()) << "the load fails on the loader thread, executor or not";
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused->info().status.message()), HasSubstr("busy"));
  held->Release();
  ASSERT_TRUE(held->Wait());
  EXPECT_EQ(held->info().reason, FinishReason::kLength) << "never interrupted";
  // Idle now: the next request for "other" evicts it and loads.
  EXPECT_EQ(Run("other")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("busy").state, ModelState::kEvicted);
}

// A request that runs longer than its model's keep-alive leaves the model
// as recently used as its end, not its start: not evictable at once.
TEST_F(LifecycleTest, KeepAliveCountsFromTheLastRequestsEnd) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("long", LoadPolicy::kStartup, seconds(2))).ok());
  ASSERT_TRUE(router_->AddModel(Spec("other", LoadPolicy::kLazy)).ok());
  auto held = std::make_shared<Held>();
  std::future<void> entered = held->entered();
  ASSERT_TRUE(router_->Submit(router_->Find("long").value(), Request(5), held).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // past the keep-alive
  const runtime::Clock::time_point released = runtime::Clock::now();
  held->Release();
  ASSERT_TRUE(held->Wait());
  EXPECT_GE(Status("long").last_used, released);
  auto refused = std::make_shared<Collect>();
  ASSERT_TRUE(router_->Submit(router_->Find("other").value(), Request(), refused).ok());
  ASSERT_TRUE(refused->Wait());
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused->info().status.message()), HasSubstr("within its keep-alive"));
  EXPECT_EQ(Status("long").state, ModelState::kReady);
}

TEST_F(LifecycleTest, AFailedLoadLeavesTheOthersServingAndSaysWhy) {
  failed_load_retry_ms_ = 400;
  MakeRouter(2);
  ASSERT_TRUE(router_->AddModel(Spec("good")).ok());
  ModelSpec broken = Spec("broken", LoadPolicy::kLazy);
  ASSERT_TRUE(router_->AddModel(broken).ok());
  std::filesystem::remove(broken.path);  // gone before its first request
  std::shared_ptr<Collect> failed = Run("broken");
  EXPECT_EQ(failed->info().reason, FinishReason::kError);
  EXPECT_EQ(failed->info().status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed->info().status.message()), HasSubstr("failed to load"));
  EXPECT_EQ(RetryPushback(failed->info().status), std::chrono::milliseconds(400))
      << "when the load is tried again";
  // The client learns the file's name, not where the server keeps it; the
  // model's own state (what an admin sees) says where.
  const std::string dir = std::filesystem::path(broken.path).parent_path().string();
  EXPECT_THAT(std::string(failed->info().status.message()),
              HasSubstr(std::filesystem::path(broken.path).filename().string()));
  EXPECT_THAT(std::string(failed->info().status.message()), Not(HasSubstr(dir)));
  EXPECT_EQ(Status("broken").state, ModelState::kFailed);
  EXPECT_THAT(Status("broken").reason, HasSubstr(broken.path));
  EXPECT_EQ(Status("broken").loads_failed, 1);
  EXPECT_EQ(Run("good")->info().reason, FinishReason::kLength);
  // The file comes back. A request within the wait after the failure is
  // refused at once, saying when to retry, and reads nothing; the first one
  // after it retries the load.
  runtime::testing::WriteFile(broken.path, bytes_);
  const absl::Status soon =
      router_->Submit(router_->Find("broken").value(), Request(), std::make_shared<Collect>())
          .status();
  EXPECT_EQ(soon.code(), absl::StatusCode::kUnavailable) << soon;
  EXPECT_THAT(std::string(soon.message()), HasSubstr("tried again in"));
  EXPECT_THAT(std::string(soon.message()), Not(HasSubstr(dir)));
  const std::optional<std::chrono::milliseconds> pushback = RetryPushback(soon);
  ASSERT_TRUE(pushback.has_value());
  EXPECT_GT(pushback->count(), 0);
  EXPECT_LE(pushback->count(), 400);
  EXPECT_EQ(Status("broken").loads_failed, 1);
  EXPECT_EQ(Status("broken").state, ModelState::kFailed);
  std::this_thread::sleep_for(*pushback + std::chrono::milliseconds(50));
  EXPECT_EQ(Run("broken")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("broken").state, ModelState::kReady);
  // What the server's metrics are fed: every load attempt, every step.
  // (on_load runs on the loader thread after the model is ready, so possibly
  // after the request it served has finished.)
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return Loads().size() == 3; }, kWait));
  EXPECT_THAT(Loads(), ElementsAre("good ok", "broken failed", "broken ok"));
  // (on_step follows the step whose sink finished the request.)
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return Steps("good") >= 3; }, kWait))
      << "one step per token at least";
  EXPECT_TRUE(cohost::testing::WaitFor([&] { return Steps("broken") >= 3; }, kWait));
}

// A device that refuses every allocation while `full` is set: memory taken
// by someone placement cannot see (another process on the GPU).
class FullDevice final : public cohost::testing::ForwardingBackend {
 public:
  FullDevice() : ForwardingBackend(kernels::MakeCpuBackend(1)) {}
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (full) return absl::ResourceExhaustedError("out of device memory");
    return ForwardingBackend::Allocate(bytes);
  }
  std::atomic<bool> full{false};
};

// Placement found room, and then the device refused the memory after the
// file was read: that load waits for its backoff as a broken file's does,
// rather than being read again at every request while the device stays full.
TEST_F(LifecycleTest, ALoadTheDeviceRefusesMemoryForWaitsItsBackoff) {
  failed_load_retry_ms_ = 10'000;
  auto device = std::make_unique<FullDevice>();
  FullDevice* full = device.get();
  backends_[0] = std::move(device);
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("m", LoadPolicy::kLazy)).ok());
  full->full = true;
  std::shared_ptr<Collect> failed = Run("m");
  EXPECT_EQ(failed->info().status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RetryPushback(failed->info().status), std::chrono::milliseconds(10'000));
  full->full = false;
  const absl::Status soon =
      router_->Submit(router_->Find("m").value(), Request(), std::make_shared<Collect>()).status();
  EXPECT_EQ(soon.code(), absl::StatusCode::kUnavailable) << soon;
  EXPECT_THAT(std::string(soon.message()), HasSubstr("tried again in"));
  EXPECT_EQ(Status("m").loads_failed, 1) << "not read again within the wait";
}

// A lazy model whose file was replaced by another model's (here a tied one)
// after it was added fails its load, saying so: its tokenizer, KV layout and
// planned memory are the registered file's. Before, the new weights ran
// under them.
TEST_F(LifecycleTest, AFileThatNowHoldsAnotherModelFailsItsLoad) {
  MakeRouter(1);
  const ModelSpec spec = Spec("swapped", LoadPolicy::kLazy);
  ASSERT_TRUE(router_->AddModel(spec).ok());
  runtime::testing::TinyOptions tied;
  tied.tied = true;
  runtime::testing::WriteFile(spec.path, runtime::testing::MakeTinyModel(tied).writer.Build());
  std::shared_ptr<Collect> failed = Run("swapped");
  EXPECT_EQ(failed->info().reason, FinishReason::kError);
  EXPECT_EQ(Status("swapped").state, ModelState::kFailed);
  EXPECT_THAT(Status("swapped").reason,
              HasSubstr("now holds another model (tie_word_embeddings 0 -> 1)"));
}

// A share of the device's KV pool that cannot hold one group of the model's
// blocks could run nothing: the model is refused when it is added, naming
// the sizes, instead of registering and then failing (reading its file
// again, evicting others) at each of its requests.
TEST_F(LifecycleTest, AKvShareBelowOneGroupIsRefusedWhenTheModelIsAdded) {
  MakeRouter(2);
  ModelSpec tiny = Spec("tiny", LoadPolicy::kLazy);
  tiny.kv_cap_bytes = 1;
  const absl::Status added = router_->AddModel(tiny);
  EXPECT_EQ(added.code(), absl::StatusCode::kResourceExhausted) << added;
  EXPECT_THAT(std::string(added.message()), HasSubstr("less than one group"));
  EXPECT_EQ(router_->Find("tiny").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Loads().empty()) << "the file was never read for weights";
  // The name is free again, and a share that fits serves.
  tiny.kv_cap_bytes = 0;
  ASSERT_TRUE(router_->AddModel(tiny).ok());
  EXPECT_EQ(Run("tiny")->info().reason, FinishReason::kLength);
}

// A device whose models each get a context of their own that holds `bytes`
// beside what is allocated through it (as a CUDA context's cuBLAS workspace).
class ContextfulDevice final : public cohost::testing::ForwardingBackend {
 public:
  explicit ContextfulDevice(size_t bytes)
      : ForwardingBackend(kernels::MakeCpuBackend(1)), bytes_(bytes) {}
  size_t ContextBytes() const override { return bytes_; }
  absl::StatusOr<std::unique_ptr<kernels::Backend>> NewContext() override {
    return std::unique_ptr<kernels::Backend>(std::make_unique<ContextfulDevice>(bytes_));
  }

 private:
  size_t bytes_;
};

// What a model's context holds is part of its measured workspace: placement
// and the footprint record count it.
TEST_F(LifecycleTest, AModelsContextIsInItsWorkspace) {
  constexpr size_t kContext = size_t{64} << 10;
  backends_[0] = std::make_unique<ContextfulDevice>(kContext);
  MakeRouter(2);
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  Run("a");
  const ModelStatus with = Status("a");
  EXPECT_EQ(with.workspace_bytes, workspace_ + static_cast<int64_t>(kContext));
  // Without a context (the CPU's way), the model's own workspace alone.
  backends_.push_back(kernels::MakeCpuBackend(1));
  std::swap(backends_[0], backends_.back());
  router_.reset();
  MakeRouter(2);
  ASSERT_TRUE(router_->AddModel(Spec("b")).ok());
  Run("b");
  EXPECT_EQ(Status("b").workspace_bytes, workspace_);
}

// Parked weights keep their context on the device (a CUDA context's
// workspace and scratch): placement counts it, and drops such parked weights
// before it would evict a resident model, or over-commit, for their room.
TEST_F(LifecycleTest, AParkedModelsContextCountsOnItsDeviceUntilDropped) {
  const auto context = static_cast<size_t>(footprint() / 4);
  backends_[0] = std::make_unique<ContextfulDevice>(context);
  offload_bytes_ = 3 * weights_;
  MakeRouter(2);  // room for two models with their contexts, not for a third context
  for (const ModelSpec& spec :
       {Spec("a"), Spec("b", LoadPolicy::kLazy), Spec("c", LoadPolicy::kLazy)}) {
    ASSERT_TRUE(router_->AddModel(spec).ok());
  }
  Run("a");
  Run("b");
  ASSERT_EQ(Status("a").state, ModelState::kReady);
  ASSERT_EQ(Status("b").state, ModelState::kReady);
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength);
  // a was evicted for c; its parked context left too little room beside b.
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);
  EXPECT_EQ(Status("a").offloaded_bytes, 0) << "dropped for the room its context held";
  EXPECT_EQ(Status("a").parked_device_bytes, 0);
  EXPECT_EQ(Status("b").state, ModelState::kReady) << "a resident model outranks a parked one";
  EXPECT_EQ(Status("c").state, ModelState::kReady);
}

// Parked weights are dropped only for a load that then fits: one that
// cannot (the residents are within their keep-alive) leaves them parked.
TEST_F(LifecycleTest, ParkedWeightsStayWhenDroppingThemCannotMakeTheRoom) {
  const auto context = static_cast<size_t>(footprint() / 8);
  backends_[0] = std::make_unique<ContextfulDevice>(context);
  offload_bytes_ = 3 * weights_;
  MakeRouter(2);  // two models with their contexts and one parked context
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("b", LoadPolicy::kStartup, hours(1))).ok());
  ASSERT_TRUE(router_->AddModel(Spec("c", LoadPolicy::kLazy, hours(1))).ok());
  ASSERT_TRUE(router_->AddModel(Spec("d", LoadPolicy::kLazy)).ok());
  Run("a");
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength);  // a is evicted and parked
  const int64_t parked = Status("a").offloaded_bytes;
  ASSERT_GT(parked, 0);
  EXPECT_EQ(Status("a").parked_device_bytes, static_cast<int64_t>(context));
  std::shared_ptr<Collect> refused = Run("d");
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Status("a").offloaded_bytes, parked) << "kept: dropping it could not make the room";
}

// Two parked models asked for together: the second waits in the loader's
// queue while the first loads, and both serve. (Its parked context counts
// as droppable room while it holds no reservation, as placement counts it.)
TEST_F(LifecycleTest, TwoParkedModelsAskedForTogetherBothServe) {
  const auto context = static_cast<size_t>(footprint() / 8);
  backends_[0] = std::make_unique<ContextfulDevice>(context);
  offload_bytes_ = 4 * weights_;
  MakeRouter(2);  // two models with their contexts, and two parked contexts
  ASSERT_TRUE(router_->AddModel(Spec("a")).ok());
  for (const char* name : {"b", "r", "d"}) {
    ASSERT_TRUE(router_->AddModel(Spec(name, LoadPolicy::kLazy)).ok());
  }
  Run("b");
  Run("r");  // a is evicted and parked
  Run("d");  // b is evicted and parked
  ASSERT_GT(Status("a").parked_device_bytes, 0);
  ASSERT_GT(Status("b").parked_device_bytes, 0);
  auto for_a = std::make_shared<Collect>(), for_b = std::make_shared<Collect>();
  ASSERT_TRUE(router_->Submit(router_->Find("a").value(), Request(), for_a).ok());
  ASSERT_TRUE(router_->Submit(router_->Find("b").value(), Request(), for_b).ok());
  ASSERT_TRUE(for_a->Wait());
  ASSERT_TRUE(for_b->Wait());
  EXPECT_EQ(for_a->info().reason, FinishReason::kLength) << for_a->info().status;
  EXPECT_EQ(for_b->info().reason, FinishReason::kLength) << for_b->info().status;
}

// Where a device's memory is its own, an evicted model's weights wait in
// host memory while the offload budget has room, and its next load copies
// them back: it loads with its file gone and answers as before. When the
// budget is full, the least recently used parked weights make room for the
// newly evicted; that model needs its file again.
TEST_F(LifecycleTest, EvictedWeightsWaitInHostMemoryTheLeastRecentlyUsedDroppedFirst) {
  // A device whose memory is its own (a ForwardingBackend adopts nothing).
  backends_[0] = std::make_unique<cohost::testing::ForwardingBackend>(kernels::MakeCpuBackend(1));
  offload_bytes_ = 2 * weights_ + weights_ / 2;  // room for two models' weights
  MakeRouter(1);
  ModelSpec a = Spec("a"), b = Spec("b", LoadPolicy::kLazy), c = Spec("c", LoadPolicy::kLazy);
  for (const ModelSpec& spec : {a, b, c}) ASSERT_TRUE(router_->AddModel(spec).ok());
  const std::vector<int32_t> want_a = Run("a", 8)->ids();
  ASSERT_EQ(want_a.size(), 8u);
  const int64_t weights = Status("a").weights_bytes;
  ASSERT_GT(weights, 0);
  ASSERT_LE(2 * weights, offload_bytes_);

  EXPECT_EQ(Run("b")->info().reason, FinishReason::kLength);  // a is evicted, and kept
  EXPECT_EQ(Status("a").state, ModelState::kEvicted);
  EXPECT_EQ(Status("a").offloaded_bytes, weights);
  EXPECT_EQ(Status("a").weights_bytes, 0) << "nothing of it on the device";
  std::shared_ptr<Collect> back = Run("a", 8);  // b is evicted and kept; a comes back
  EXPECT_EQ(back->info().reason, FinishReason::kLength) << back->info().status;
  EXPECT_EQ(back->ids(), want_a);
  EXPECT_EQ(Status("a").offloaded_bytes, 0) << "its host copy is given back";
  EXPECT_EQ(Status("b").offloaded_bytes, weights);
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength);  // a is evicted, and kept
  EXPECT_EQ(Status("a").offloaded_bytes, weights);

  // b comes back, evicting c: the budget holds a's and b's, and a is the
  // least recently used other than b: a's weights go, c's stay.
  EXPECT_EQ(Run("b")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("a").offloaded_bytes, 0);
  EXPECT_EQ(Status("c").offloaded_bytes, weights);

  std::filesystem::remove(a.path);
  std::filesystem::remove(c.path);
  EXPECT_EQ(Run("c")->info().reason, FinishReason::kLength) << "from host memory";
  EXPECT_EQ(Status("c").loads_ok, 2);
  EXPECT_EQ(Run("a")->info().reason, FinishReason::kError) << "dropped, and its file is gone";
  EXPECT_EQ(Status("a").state, ModelState::kFailed);
}

// Room in host memory is made for a model's weights only once its eviction
// is certain: a model that is busy when asked calls nobody back (and so costs
// no other model its parked weights); an idle one calls back with its bytes
// just before it parks.
TEST_F(LifecycleTest, RoomForParkedWeightsIsMadeOnlyWhenTheEvictionHappens) {
  backends_[0] = std::make_unique<cohost::testing::ForwardingBackend>(kernels::MakeCpuBackend(1));
  offload_bytes_ = 2 * weights_;
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("busy")).ok());
  std::shared_ptr<ServedModel> busy = router_->Find("busy").value();
  auto held = std::make_shared<Held>();
  std::future<void> entered = held->entered();
  ASSERT_TRUE(router_->Submit(busy, Request(5), held).ok());
  ASSERT_EQ(entered.wait_for(kWait), std::future_status::ready);
  const int64_t weights = Status("busy").weights_bytes;
  ASSERT_GT(weights, 0);
  std::vector<int64_t> asked;
  auto before_park = [&](int64_t bytes) {
    asked.push_back(bytes);
    // Evicted, not parked yet, and the model's lock free (status() takes it).
    const ModelStatus now = busy->status();
    EXPECT_EQ(now.state, ModelState::kEvicted);
    EXPECT_EQ(now.offloaded_bytes, 0);
  };
  EXPECT_FALSE(busy->Evict("test", before_park));
  EXPECT_THAT(asked, ::testing::IsEmpty());
  held->Release();
  ASSERT_TRUE(held->Wait());
  ASSERT_TRUE(cohost::testing::WaitFor([&] { return busy->Evict("test", before_park); }, kWait));
  EXPECT_THAT(asked, ElementsAre(weights));
  EXPECT_EQ(Status("busy").offloaded_bytes, weights) << "parked after the call";
}

TEST_F(LifecycleTest, PinsAreCheckedAndPlacementsExplained) {
  MakeRouter(2);
  ModelSpec elsewhere = Spec("elsewhere");
  elsewhere.device = "cuda:3";
  const absl::Status refused = router_->AddModel(elsewhere);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("cuda:3"));
  EXPECT_FALSE(router_->Find("elsewhere").ok()) << "not registered";

  ModelSpec here = Spec("here");
  here.device = "cpu";
  ASSERT_TRUE(router_->AddModel(here).ok());
  ASSERT_TRUE(router_->AddModel(Spec("lazy", LoadPolicy::kLazy)).ok());
  for (const ModelSummary& m : router_->ListModels()) {
    if (m.name == "here") {
      EXPECT_THAT(m.placement, HasSubstr("pinned there"));
    }
    if (m.name == "lazy") {
      EXPECT_THAT(m.placement, HasSubstr("not loaded"));
    }
  }
  Run("lazy");
  for (const ModelSummary& m : router_->ListModels()) {
    if (m.name == "lazy") {
      EXPECT_THAT(m.placement, HasSubstr("best fit"));
    }
  }
}

TEST_F(LifecycleTest, LoadingInTheBackgroundAnswersAtOnce) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModelAndLoadInBackground(Spec("bg")).ok());
  const ModelState now = Status("bg").state;
  EXPECT_TRUE(now == ModelState::kLoading || now == ModelState::kReady);
  ASSERT_TRUE(
      cohost::testing::WaitFor([&] { return Status("bg").state == ModelState::kReady; }, kWait));
  EXPECT_EQ(Run("bg")->info().reason, FinishReason::kLength);
  EXPECT_EQ(router_->AddModelAndLoadInBackground(Spec("bg")).code(),
            absl::StatusCode::kAlreadyExists);
  ModelSpec missing = Spec("missing");
  missing.path += ".nope";
  EXPECT_EQ(router_->AddModelAndLoadInBackground(missing).code(), absl::StatusCode::kNotFound)
      << "a file that cannot be read is refused at registration";
}

TEST_F(LifecycleTest, UnloadingEndsRequestsThatWaitForTheLoad) {
  MakeRouter(1);
  ModelSpec spec = Spec("gone", LoadPolicy::kLazy);
  ASSERT_TRUE(router_->AddModel(spec).ok());
  std::shared_ptr<ServedModel> m = router_->Find("gone").value();
  auto waiting = std::make_shared<Collect>();
  ASSERT_TRUE(router_->Submit(m, Request(), waiting).ok());
  ASSERT_TRUE(router_->UnloadModel("gone").ok());
  ASSERT_TRUE(waiting->Wait());
  const FinishReason r = waiting->info().reason;
  EXPECT_TRUE(r == FinishReason::kCancelled || r == FinishReason::kLength)
      << "cancelled while queued, or, if the load won the race, cancelled running";
  EXPECT_EQ(router_->Find("gone").status().code(), absl::StatusCode::kNotFound);
  m.reset();
}

// A request that found a model before it was unloaded, and submits after:
// refused, and no load of the unregistered model starts (it would hold
// memory placement no longer counts).
// An unloaded model that a call still holds keeps its weights on the device
// until the holder lets go: they count there until then, and a model that
// needs the room fails to load rather than over-commit the device.
TEST_F(LifecycleTest, AnUnloadedModelsWeightsCountUntilItsLastHolderLetsGo) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("old")).ok());
  ASSERT_TRUE(router_->AddModel(Spec("new", LoadPolicy::kLazy)).ok());
  std::shared_ptr<ServedModel> held = router_->Find("old").value();
  ASSERT_TRUE(router_->UnloadModel("old").ok());
  std::shared_ptr<Collect> refused = Run("new");
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted)
      << refused->info().status;
  EXPECT_THAT(std::string(refused->info().status.message()),
              HasSubstr("held by unloaded models until their last calls end"));
  held.reset();  // the last holder: the weights go
  EXPECT_EQ(Run("new")->info().reason, FinishReason::kLength);
}

// An unloaded model's KV floor goes with the unload, not with its last
// holder: the same name loads again at once with the same floor, which the
// pool could not hold twice. Before, the old engine's account kept its
// floor, and the reload was refused until the holder let go.
TEST_F(LifecycleTest, AModelLoadedAgainRightAfterItsUnloadGetsItsFloor) {
  MakeRouter(/*models=*/2, /*devices=*/1, /*kv_bytes=*/int64_t{4} << 20);
  ModelSpec spec = Spec("m");
  spec.kv_floor_bytes = int64_t{3} << 20;
  ASSERT_TRUE(router_->AddModel(spec).ok());
  std::shared_ptr<ServedModel> held = router_->Find("m").value();
  EXPECT_EQ(Run("m")->info().reason, FinishReason::kLength);
  ASSERT_TRUE(router_->UnloadModel("m").ok());
  const absl::Status again = router_->AddModel(spec);
  ASSERT_TRUE(again.ok()) << again;
  EXPECT_EQ(Run("m")->info().reason, FinishReason::kLength);
  // Another model's floor still cannot take what the new one is guaranteed.
  ModelSpec other = Spec("other");
  other.kv_floor_bytes = int64_t{2} << 20;
  EXPECT_EQ(router_->AddModel(other).code(), absl::StatusCode::kResourceExhausted);
  held.reset();
}

TEST_F(LifecycleTest, ARequestForAModelUnloadedSinceItWasFoundIsRefused) {
  MakeRouter(1);
  ASSERT_TRUE(router_->AddModel(Spec("gone", LoadPolicy::kLazy)).ok());
  ASSERT_TRUE(router_->AddModel(Spec("ready")).ok());
  std::shared_ptr<ServedModel> lazy = router_->Find("gone").value();
  std::shared_ptr<ServedModel> ready = router_->Find("ready").value();
  ASSERT_TRUE(router_->UnloadModel("gone").ok());
  ASSERT_TRUE(router_->UnloadModel("ready").ok());
  for (const std::shared_ptr<ServedModel>& m : {lazy, ready}) {
    const absl::Status s = router_->Submit(m, Request(), std::make_shared<Collect>()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << m->name() << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("unloaded"));
  }
  EXPECT_EQ(lazy->status().state, ModelState::kEvicted) << "no load started";
  EXPECT_EQ(lazy->admission().in_flight(), 0);
  EXPECT_EQ(ready->admission().in_flight(), 0);
}

}  // namespace
}  // namespace cohost::scheduler
