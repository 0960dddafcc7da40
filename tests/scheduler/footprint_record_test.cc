// The footprint record: what a load measured, kept in a file across
// restarts, found again only for the same file (size and modification time),
// device kind and step shape; a damaged file is a cache miss, never an error.
// And the Router planning with a recorded footprint before it loads.

#include "scheduler/footprint_record.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/scheduler/lifecycle_fixture.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::FinishReason;
using ::testing::HasSubstr;
using ::testing::Not;

FootprintKey Key(const std::string& path, int64_t bytes = 100) {
  return {path, bytes, 12345, "cpu/f32", 512, 64};
}

class FootprintRecordTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove(file_); }
  void WriteRecord(const std::string& text) { runtime::testing::WriteFile(file_, text); }
  const std::string file_ = runtime::testing::TempPath("footprints.json");
};

TEST_F(FootprintRecordTest, WhatIsPutIsFoundAfterARestart) {
  {
    FootprintRecord record(file_);
    EXPECT_EQ(record.Find(Key("/m/a.gguf")), std::nullopt) << "no file yet: empty";
    ASSERT_TRUE(record.Put(Key("/m/a.gguf"), {1000, 200, 1.5}).ok());
    ASSERT_TRUE(record.Put(Key("/m/b.gguf"), {3000, 400, 2.5}).ok());
  }
  FootprintRecord again(file_);
  std::optional<Footprint> a = again.Find(Key("/m/a.gguf"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->weights_bytes, 1000);
  EXPECT_EQ(a->workspace_bytes, 200);
  EXPECT_DOUBLE_EQ(a->load_seconds, 1.5);
  EXPECT_EQ(again.Find(Key("/m/b.gguf"))->weights_bytes, 3000);
  // Anything else about the load differs: not the same footprint.
  EXPECT_EQ(again.Find(Key("/m/a.gguf", /*bytes=*/101)), std::nullopt) << "the file changed";
  FootprintKey other_device = Key("/m/a.gguf");
  other_device.device = "cuda/bf16";
  EXPECT_EQ(again.Find(other_device), std::nullopt);
  FootprintKey other_steps = Key("/m/a.gguf");
  other_steps.max_tokens_per_step = 2048;
  EXPECT_EQ(again.Find(other_steps), std::nullopt) << "the workspace follows the step size";
}

TEST_F(FootprintRecordTest, ANewerLoadOfTheSameFileReplacesTheOlder) {
  FootprintRecord record(file_);
  ASSERT_TRUE(record.Put(Key("/m/a.gguf", 100), {1000, 200, 1}).ok());
  ASSERT_TRUE(record.Put(Key("/m/a.gguf", 150), {1500, 200, 1}).ok());
  FootprintRecord again(file_);
  EXPECT_EQ(again.Find(Key("/m/a.gguf", 100)), std::nullopt);
  EXPECT_EQ(again.Find(Key("/m/a.gguf", 150))->weights_bytes, 1500);
  std::ifstream in(file_);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("\"file_bytes\": 100,"), std::string::npos) << text;
}

TEST_F(FootprintRecordTest, ADamagedFileIsEmptyAndBadEntriesAreSkipped) {
  for (const char* junk : {"", "{", "[1,2]", "{\"footprints\": 7}", "\xff\xfe"}) {
    WriteRecord(junk);
    FootprintRecord record(file_);
    EXPECT_EQ(record.Find(Key("/m/a.gguf")), std::nullopt) << junk;
  }
  const std::string good =
      R"({"path": "/m/a.gguf", "file_bytes": 100, "mtime_ns": 12345, "device": "cpu/f32",
          "max_tokens_per_step": 512, "max_num_seqs": 64, "weights_bytes": 7,
          "workspace_bytes": 8, "load_seconds": 0.5})";
  std::string negative = good, huge = good, text = good, missing = good, zero = good;
  negative.replace(negative.find("\"weights_bytes\": 7"), 18, "\"weights_bytes\": -7");
  // No load measures no weights; planned as such, a device over-commits.
  zero.replace(zero.find("\"weights_bytes\": 7"), 18, "\"weights_bytes\": 0");
  huge.replace(huge.find("\"weights_bytes\": 7"), 18, "\"weights_bytes\": 9000000000000000000");
  text.replace(text.find("\"weights_bytes\": 7"), 18, "\"weights_bytes\": \"7\"");
  missing.replace(missing.find("\"load_seconds\": 0.5"), 19, "\"other\": 1");
  WriteRecord("{\"footprints\": [" + negative + "," + huge + "," + text + "," + missing + "," +
              zero + ", 5]}");
  EXPECT_EQ(FootprintRecord(file_).Find(Key("/m/a.gguf")), std::nullopt);
  WriteRecord("{\"footprints\": [" + negative + "," + good + "]}");
  std::optional<Footprint> f = FootprintRecord(file_).Find(Key("/m/a.gguf"));
  ASSERT_TRUE(f.has_value()) << "the good entry beside a bad one";
  EXPECT_EQ(f->weights_bytes, 7);
}

// --footprint-file naming a FIFO (read forever), a directory or a file past
// 4 MB: read as empty, at once.
TEST_F(FootprintRecordTest, WhatIsNotASmallRegularFileIsEmpty) {
  ASSERT_EQ(::mkfifo(file_.c_str(), 0600), 0);
  EXPECT_EQ(FootprintRecord(file_).Find(Key("/m/a.gguf")), std::nullopt);
  std::filesystem::remove(file_);
  std::filesystem::create_directory(file_);
  EXPECT_EQ(FootprintRecord(file_).Find(Key("/m/a.gguf")), std::nullopt);
  std::filesystem::remove(file_);
  const std::string entry =
      R"({"path": "/m/a.gguf", "file_bytes": 100, "mtime_ns": 12345, "device": "cpu/f32",
          "max_tokens_per_step": 512, "max_num_seqs": 64, "weights_bytes": 7,
          "workspace_bytes": 8, "load_seconds": 0.5})";
  WriteRecord("{\"footprints\": [" + entry + "]}" + std::string(size_t{4} << 20, ' '));
  EXPECT_EQ(FootprintRecord(file_).Find(Key("/m/a.gguf")), std::nullopt);
  WriteRecord("{\"footprints\": [" + entry + "]}");
  EXPECT_TRUE(FootprintRecord(file_).Find(Key("/m/a.gguf")).has_value());
}

TEST_F(FootprintRecordTest, KeepsABoundedNumberOfEntries) {
  FootprintRecord record(file_);
  const size_t n = FootprintRecord::kMaxEntries + 10;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(record.Put(Key("/m/" + std::to_string(i)), {1, 1, 1}).ok());
  }
  FootprintRecord again(file_);
  EXPECT_EQ(again.Find(Key("/m/0")), std::nullopt) << "the oldest went";
  EXPECT_TRUE(again.Find(Key("/m/" + std::to_string(n - 1))).has_value());
}

TEST_F(FootprintRecordTest, AFileThatCannotBeWrittenIsAnErrorButTheEntryIsKept) {
  FootprintRecord record("/proc/cohost-cannot-write-here/footprints.json");
  const absl::Status s = record.Put(Key("/m/a.gguf"), {1, 2, 3});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(record.Find(Key("/m/a.gguf"))->workspace_bytes, 2);
}

TEST(FootprintKeyTest, FollowsTheFilesSizeAndTime) {
  const std::string path = runtime::testing::TempPath("footprint_key.bin");
  runtime::testing::WriteFile(path, "abc");
  auto cpu = kernels::MakeCpuBackend(1);
  const runtime::StepSchedulerConfig steps;
  absl::StatusOr<FootprintKey> k = KeyFor(path, *cpu, steps);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->file_bytes, 3);
  EXPECT_EQ(k->device, "cpu/f32");
  EXPECT_EQ(k->max_tokens_per_step, steps.max_tokens_per_step);
  runtime::testing::WriteFile(path, "abcd");
  EXPECT_NE(KeyFor(path, *cpu, steps).value(), *k);
  std::filesystem::remove(path);
  EXPECT_EQ(KeyFor(path, *cpu, steps).status().code(), absl::StatusCode::kNotFound);
}

// ---- the Router with a record ----

TEST_F(LifecycleTest, ARecordedFootprintPlacesAModelBeforeItLoadsAndEachLoadIsRecorded) {
  const std::string file = runtime::testing::TempPath("lifecycle_footprints.json");
  std::filesystem::remove(file);
  footprints_ = std::make_shared<FootprintRecord>(file);
  ModelSpec spec = Spec("m", LoadPolicy::kLazy);
  auto cpu = kernels::MakeCpuBackend(1);
  runtime::StepSchedulerConfig steps;  // the fixture's engines use the defaults
  // An earlier load of this very file measured three times what fits.
  ASSERT_TRUE(
      footprints_->Put(KeyFor(spec.path, *cpu, steps).value(), {3 * footprint(), 0, 1.0}).ok());
  MakeRouter(/*models=*/2);
  ASSERT_TRUE(router_->AddModel(spec).ok());
  std::shared_ptr<Collect> refused = Run("m");
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted)
      << refused->info().status;
  EXPECT_THAT(Status("m").reason, HasSubstr("needs"));

  // The file changes (same bytes, a new modification time): the record no
  // longer applies, the prediction does, and the load fits and is recorded.
  std::filesystem::last_write_time(
      spec.path, std::filesystem::last_write_time(spec.path) + std::chrono::seconds(5));
  EXPECT_EQ(Run("m")->info().reason, runtime::FinishReason::kLength);
  // Recorded on the loader thread once the engine exists, possibly after the
  // request it served has finished.
  std::optional<Footprint> recorded;
  EXPECT_TRUE(cohost::testing::WaitFor(
      [&] {
        recorded = FootprintRecord(file).Find(KeyFor(spec.path, *cpu, steps).value());
        return recorded.has_value();
      },
      kWait));
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->weights_bytes, weights_);
  EXPECT_EQ(recorded->workspace_bytes, workspace_);
  EXPECT_GT(recorded->load_seconds, 0);
  for (const ModelSummary& m : router_->ListModels()) {
    EXPECT_THAT(m.placement, Not(HasSubstr("measured"))) << "this load planned by the prediction";
  }
  // After a restart the model is planned by what that load measured.
  router_.reset();
  MakeRouter(/*models=*/2);
  ASSERT_TRUE(router_->AddModel(Spec("other")).ok());
  ModelSpec same = spec;
  same.load = LoadPolicy::kStartup;
  ASSERT_TRUE(router_->AddModel(same).ok());
  for (const ModelSummary& m : router_->ListModels()) {
    if (m.name == "m") {
      EXPECT_THAT(m.placement, HasSubstr("as its last load measured"));
    }
  }
  std::filesystem::remove(file);
}

// Weights measured above what was reserved for them (a record that is
// wrong, a prediction that missed) make room for the difference before the
// model serves, evicting as a load does, or fail the load, which records
// what it measured. Before, the measured size replaced the reservation and
// the device's weights ran past their budget into its KV memory.
TEST_F(LifecycleTest, WeightsMeasuredAboveTheirReservationMakeRoomOrFailTheLoad) {
  const std::string file = runtime::testing::TempPath("lifecycle_footprints_low.json");
  std::filesystem::remove(file);
  footprints_ = std::make_shared<FootprintRecord>(file);
  auto cpu = kernels::MakeCpuBackend(1);
  const runtime::StepSchedulerConfig steps;
  ModelSpec small = Spec("small", LoadPolicy::kLazy);
  ModelSpec tight = Spec("tight", LoadPolicy::kLazy);
  for (const ModelSpec* m : {&small, &tight}) {
    ASSERT_TRUE(footprints_->Put(KeyFor(m->path, *cpu, steps).value(), {1, 0, 1.0}).ok());
  }
  MakeRouter(/*models=*/1);                           // room for one model and a half
  ASSERT_TRUE(router_->AddModel(Spec("idle")).ok());  // no keep-alive: evictable
  ASSERT_TRUE(router_->AddModel(small).ok());
  EXPECT_EQ(Run("small")->info().reason, FinishReason::kLength);
  EXPECT_EQ(Status("idle").state, ModelState::kEvicted) << "the measured weights made room";
  // A fresh server (an unloaded model's weights would count until its last
  // holder, the engine thread among them, let go).
  router_.reset();
  MakeRouter(/*models=*/1);

  ModelSpec kept = Spec("kept", LoadPolicy::kStartup, std::chrono::seconds(3600));
  ASSERT_TRUE(router_->AddModel(kept).ok());
  ASSERT_TRUE(router_->AddModel(tight).ok());
  std::shared_ptr<Collect> refused = Run("tight");
  EXPECT_EQ(refused->info().status.code(), absl::StatusCode::kResourceExhausted)
      << refused->info().status;
  EXPECT_THAT(std::string(refused->info().status.message()),
              HasSubstr("more than the 0.0 MB its last load measured"));
  EXPECT_EQ(Status("kept").state, ModelState::kReady);
  std::optional<Footprint> recorded = footprints_->Find(KeyFor(tight.path, *cpu, steps).value());
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->weights_bytes, weights_);
  EXPECT_EQ(recorded->weights_bytes + recorded->workspace_bytes, footprint());
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace cohost::scheduler
