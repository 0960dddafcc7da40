// A Router over tiny GGUF models on one or more CPU devices, for the
// lifecycle and multi-device tests: each model file is a copy of one tiny
// model, so every model's footprint is the same, known in advance.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "runtime/model/model.h"
#include "scheduler/router.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/runtime/loader/tiny_gguf_model.h"
#include "tests/support/collecting_sink.h"

namespace cohost::scheduler {

using Collect = cohost::testing::CollectingSink;

inline constexpr auto kWait = std::chrono::seconds(60);

inline runtime::GenerateRequest Request(int32_t max_tokens = 3) {
  runtime::GenerateRequest r;
  r.prompt_ids = {3, 4, 5};
  r.sampling.temperature = 0;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backends_.push_back(kernels::MakeCpuBackend(1));
    bytes_ = runtime::testing::MakeTinyModel().writer.Build();
    ASSERT_TRUE(DescribeOne().ok());
  }
  void TearDown() override {
    router_.reset();
    for (const std::string& p : paths_) std::filesystem::remove(p);
  }

  absl::Status DescribeOne() {
    const std::string path = Write("probe");
    absl::StatusOr<runtime::ModelDescription> d = runtime::DescribeModel(path);
    if (!d.ok()) return d.status();
    weights_ =
        static_cast<int64_t>(runtime::Model::PredictWeightsBytes(d->config, kernels::DType::kF32));
    const runtime::StepSchedulerConfig sc;  // MakeRouter's engines use the defaults
    workspace_ = static_cast<int64_t>(runtime::Model::PredictWorkspaceBytes(
        d->config, kernels::DType::kF32, sc.max_tokens_per_step, sc.max_num_seqs));
    return absl::OkStatus();
  }

  std::string Write(const std::string& name) {
    const std::string path = runtime::testing::TempPath("lifecycle_" + name + ".gguf");
    runtime::testing::WriteFile(path, bytes_);
    paths_.push_back(path);
    return path;
  }

  int64_t footprint() const { return weights_ + workspace_; }
  // RouterOptions::offload_budget_bytes of the next MakeRouter.
  int64_t offload_bytes_ = 0;
  // RouterOptions::planned_devices of the next MakeRouter.
  std::map<std::string, std::string> planned_;
  // AdmissionLimits::failed_load_retry_ms of the next MakeRouter (0: a
  // request retries a failed load at once).
  int32_t failed_load_retry_ms_ = 0;
  // Each device's KV pool in the next MakeRouter of several devices, where
  // they differ (else every pool is its kv_bytes).
  std::vector<int64_t> kv_bytes_per_device_;
  // Each device's DeviceSetup::reserved_kv_floors in the next MakeRouter of
  // several devices.
  std::vector<std::map<std::string, int64_t>> reserved_per_device_;

  // Room for the weights of `models` tiny models on each device, and a KV
  // pool of `kv_bytes` each. One device is "cpu" (the Router's one-backend
  // constructor); several are "cpu:0", "cpu:1", ..., each its own backend.
  void MakeRouter(int models, int devices = 1, int64_t kv_bytes = int64_t{4} << 20) {
    runtime::EngineConfig c;
    c.block_size = 4;
    c.kv_cache_bytes = kv_bytes;
    RouterOptions o;
    o.weights_budget_bytes = models * footprint() + footprint() / 2;
    o.offload_budget_bytes = offload_bytes_;
    o.footprints = footprints_;
    o.planned_devices = planned_;
    o.admission.failed_load_retry_ms = failed_load_retry_ms_;
    o.on_load = [this](const std::string& model, bool ok, double seconds) {
      std::lock_guard<std::mutex> lock(observed_mu_);
      loads_.push_back(absl::StrFormat("%s %s", model, ok ? "ok" : "failed"));
      EXPECT_GE(seconds, 0);
    };
    o.executor.on_step = [this](const std::string& device, const std::string& model, double) {
      std::lock_guard<std::mutex> lock(observed_mu_);
      ++steps_[model];
      step_devices_[model] = device;
    };
    if (devices == 1) {
      router_ = std::make_unique<Router>(backends_[0].get(), c, o);
      return;
    }
    std::vector<DeviceSetup> setups;
    for (int i = 0; i < devices; ++i) {
      if (i >= static_cast<int>(backends_.size())) backends_.push_back(kernels::MakeCpuBackend(1));
      const int64_t pool =
          i < static_cast<int>(kv_bytes_per_device_.size()) ? kv_bytes_per_device_[i] : kv_bytes;
      setups.push_back(
          {backends_[i].get(), absl::StrFormat("cpu:%d", i), pool, o.weights_budget_bytes,
           i < static_cast<int>(reserved_per_device_.size()) ? reserved_per_device_[i]
                                                             : std::map<std::string, int64_t>{}});
    }
    router_ = std::make_unique<Router>(setups, c, o);
  }
  std::vector<std::string> Loads() {
    std::lock_guard<std::mutex> lock(observed_mu_);
    return loads_;
  }
  int Steps(const std::string& model) {
    std::lock_guard<std::mutex> lock(observed_mu_);
    return steps_[model];
  }
  // The device (its executor's name) that last stepped `model`.
  std::string SteppedOn(const std::string& model) {
    std::lock_guard<std::mutex> lock(observed_mu_);
    return step_devices_[model];
  }

  ModelSpec Spec(const std::string& name, LoadPolicy load = LoadPolicy::kStartup,
                 std::optional<std::chrono::seconds> keep_alive = std::chrono::seconds(0)) {
    ModelSpec s;
    s.name = name;
    s.path = Write(name);
    s.load = load;
    s.keep_alive = keep_alive;
    return s;
  }

  ModelStatus Status(const std::string& name) { return router_->Find(name).value()->status(); }
  // What `cohost models` says of where `name` is and why.
  std::string PlacementOf(const std::string& name) {
    for (const ModelSummary& m : router_->ListModels()) {
      if (m.name == name) return m.placement;
    }
    return "";
  }
  // Adds "pinned", lazy, pinned to `device` with an hour's keep-alive, and
  // runs it once: it evicts what it must there and then stays.
  void RunPinnedOn(const std::string& device) {
    ModelSpec pinned = Spec("pinned", LoadPolicy::kLazy, std::chrono::seconds(3600));
    pinned.device = device;
    ASSERT_TRUE(router_->AddModel(pinned).ok());
    EXPECT_EQ(Run("pinned")->info().reason, runtime::FinishReason::kLength);
  }
  // The id of the device `name` was placed on.
  std::string DeviceOf(const std::string& name) { return router_->Find(name).value()->device().id; }

  std::shared_ptr<Collect> Run(const std::string& name, int32_t max_tokens = 3) {
    auto sink = std::make_shared<Collect>();
    absl::StatusOr<runtime::RequestId> id =
        router_->Submit(router_->Find(name).value(), Request(max_tokens), sink);
    EXPECT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(sink->Wait());
    return sink;
  }

  std::vector<std::unique_ptr<kernels::Backend>> backends_;
  std::shared_ptr<FootprintRecord> footprints_;  // MakeRouter's, if set before it
  std::unique_ptr<Router> router_;
  std::string bytes_;
  std::vector<std::string> paths_;
  int64_t weights_ = 0;    // predicted weights of one tiny model
  int64_t workspace_ = 0;  // and of its engine's largest step
  std::mutex observed_mu_;
  std::vector<std::string> loads_;                   // what on_load saw, "model ok|failed"
  std::map<std::string, int> steps_;                 // on_step calls by model
  std::map<std::string, std::string> step_devices_;  // on_step's device by model
};

}  // namespace cohost::scheduler
