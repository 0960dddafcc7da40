// Three models in one server on the CPU, sharing one device, one executor and
// one KV pool, over gRPC: the default GGUF (Q4_1) and two variants of it that
// scripts/make_model_variants.sh writes with the gguf package (F16, Q8_0).
// A flood on one model leaves another's time to first token within 1.5x of
// its unloaded value; an idle model is evicted for a lazy one and reloads on
// its next request, the load inside that request's TTFT; a file that fails to
// load leaves the other two serving; unloading a model with live streams ends
// them and gives its memory back.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/token_requests.h"

namespace cohost::server {
namespace {

using ::cohost::testing::Generate;
using ::cohost::testing::Median;
using ::cohost::testing::StreamResult;
using ::cohost::testing::TokenRequest;
using ::cohost::testing::WaitFor;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AnyOf;
using ::testing::HasSubstr;

const std::string kDir = std::filesystem::path(COHOST_DEFAULT_MODEL).parent_path().string();
const std::string kQ4 = COHOST_DEFAULT_MODEL;
const std::string kF16 = kDir + "/SmolLM2-135M-Instruct.F16.gguf";
const std::string kQ8 = kDir + "/SmolLM2-135M-Instruct.Q8_0.gguf";

class MultiModelTest : public ::testing::Test {
 protected:
  static constexpr int32_t kStepTokens = 512, kStepSeqs = 64;
  // Room for all three models at once, and some.
  int64_t AllThree() { return Footprint(kQ4) * 3 / 2 + Footprint(kF16) + Footprint(kQ8); }

  void SetUp() override {
    for (const std::string& p : {kQ4, kF16, kQ8}) {
      ASSERT_TRUE(std::filesystem::exists(p))
          << p << " is missing: scripts/make_model_variants.sh makes it (ctest runs it first)";
    }
    backend_ = kernels::MakeCpuBackend(0);
  }
  void TearDown() override {
    server_.reset();  // before the router, whose engines its streams use
    router_.reset();
  }

  // What loading `path` takes on the device (its weights, in fp32 as the
  // server loads them by default, and its largest step's activations), and
  // its weights alone in *weights.
  int64_t Footprint(const std::string& path, int64_t* weights = nullptr) {
    absl::StatusOr<runtime::ModelDescription> d = runtime::DescribeModel(path);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return 0;
    const auto w = static_cast<int64_t>(
        runtime::Model::PredictWeightsBytes(d->config, backend_->compute_dtype()));
    if (weights != nullptr) *weights = w;
    return w + static_cast<int64_t>(runtime::Model::PredictWorkspaceBytes(
                   d->config, backend_->compute_dtype(), kStepTokens, kStepSeqs));
  }

  // A server whose device holds `weights_budget` bytes of models and a
  // 160 MiB KV pool; the executor's time slice is 20 ms.
  void Start(int64_t weights_budget) {
    runtime::EngineConfig engine;
    engine.kv_cache_bytes = int64_t{160} << 20;
    engine.step_scheduler.max_tokens_per_step = kStepTokens;
    engine.step_scheduler.max_num_seqs = kStepSeqs;
    scheduler::RouterOptions options;
    options.executor.step_slice = milliseconds(20);
    options.weights_budget_bytes = weights_budget;
    router_ = std::make_unique<scheduler::Router>(backend_.get(), engine, options);
    ServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    server_options.health_interval = milliseconds(50);
    server_options.model_root = ::testing::TempDir();
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(router_.get(), &metrics_, server_options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    stub_ = v1::Inference::NewStub(cohost::testing::OwnLoopbackChannel(server_->port()));
  }

  void Add(const std::string& name, const std::string& path,
           scheduler::LoadPolicy load = scheduler::LoadPolicy::kStartup,
           milliseconds ttft_target = milliseconds(1000)) {
    scheduler::ModelSpec spec;
    spec.name = name;
    spec.path = path;
    spec.load = load;
    spec.keep_alive = seconds(0);
    spec.kv_floor_bytes = int64_t{24} << 20;
    spec.kv_cap_bytes = int64_t{100} << 20;  // the pool less the other two floors, and then some
    spec.ttft_target = ttft_target;
    const absl::Status s = router_->AddModel(spec);
    ASSERT_TRUE(s.ok()) << name << ": " << s;
  }

  double TtftMs(const std::string& model, int prompt_tokens) {
    // A fresh first token each time, so that no prompt is served from the
    // prefix cache.
    const v1::GenerateRequest request = TokenRequest(model, prompt_tokens, 2, 500 + salt_++);
    StreamResult r = Generate(*stub_, request);
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    return r.messages.empty() ? 0 : r.last().timings().time_to_first_token_ms();
  }

  v1::ModelInfo Info(const std::string& name) {
    grpc::ClientContext ctx;
    v1::ListModelsResponse list;
    EXPECT_TRUE(stub_->ListModels(&ctx, {}, &list).ok());
    for (const v1::ModelInfo& m : list.models()) {
      if (m.name() == name) return m;
    }
    return {};
  }

  ServerMetrics metrics_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<scheduler::Router> router_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  int salt_ = 0;
};

TEST_F(MultiModelTest, AFloodOnOneModelLeavesAnothersTtftWithinOneAndAHalfTimes) {
  ASSERT_NO_FATAL_FAILURE(Start(AllThree()));
  // The flooded model's first tokens are due in 50 ms, which a flood misses:
  // from then on it waits behind a model whose first tokens can still be on time.
  ASSERT_NO_FATAL_FAILURE(Add("flooded", kQ4, scheduler::LoadPolicy::kStartup, milliseconds(50)));
  ASSERT_NO_FATAL_FAILURE(Add("quiet", kQ8));
  ASSERT_NO_FATAL_FAILURE(Add("third", kF16));
  // A step cannot be cut short: the quiet model's first token waits for the
  // flooded model's step in progress, one pass over its fp32 weights and a
  // slice of tokens (about 100 ms on two cores). The 1.5x bound therefore
  // holds for prompts whose own prefill takes a few such steps, as this one's
  // does; a shorter prompt's TTFT grows by that one step instead.
  constexpr int kQuietPrompt = 256;
  constexpr int kSamples = 5;
  constexpr int kFloodStreams = 6;
  TtftMs("quiet", kQuietPrompt);  // warm: buffers sized, rates measured
  std::vector<double> unloaded;
  for (int i = 0; i < kSamples; ++i) unloaded.push_back(TtftMs("quiet", kQuietPrompt));

  // Streams of 320-token prompts: several seconds of prefill on two cores.
  std::vector<std::thread> flood;
  std::atomic<int> flood_ok{0};
  for (int i = 0; i < kFloodStreams; ++i) {
    flood.emplace_back([&, i] {
      const v1::GenerateRequest r = TokenRequest("flooded", 320, 16, 2000 + i);  // distinct prompts
      if (Generate(*stub_, r).status.ok()) ++flood_ok;
    });
  }
  ASSERT_TRUE(
      WaitFor([&] { return (*router_->Find("flooded"))->Stats().num_running > 0; }, seconds(30)));
  std::this_thread::sleep_for(milliseconds(200));  // its deadlines have passed
  std::vector<double> loaded;
  for (int i = 0; i < kSamples; ++i) loaded.push_back(TtftMs("quiet", kQuietPrompt));
  const runtime::EngineStats during = (*router_->Find("flooded"))->Stats();
  for (std::thread& t : flood) t.join();
  // Unloaded again after the flood: on a shared machine the cores' speed
  // drifts over seconds, and the samples around the flood's see it as the
  // flood's do.
  for (int i = 0; i < kSamples; ++i) unloaded.push_back(TtftMs("quiet", kQuietPrompt));

  EXPECT_GT(during.num_running + during.num_waiting, 0) << "the flood outlasted the measurement";
  EXPECT_EQ(flood_ok.load(), kFloodStreams) << "the flood is served too";
  std::printf(
      "quiet model's TTFT: %.1f ms unloaded (before and after), %.1f ms during the flood "
      "(medians)\n",
      Median(unloaded), Median(loaded));
  EXPECT_LE(Median(loaded), 1.5 * Median(unloaded))
      << "unloaded median " << Median(unloaded) << " ms, during the flood " << Median(loaded)
      << " ms";
}

TEST_F(MultiModelTest, AnIdleModelIsEvictedForALazyOneAndReloadsWithTheLoadInItsTtft) {
  // Room for any two of the three, never for all three: the largest pair plus
  // half the smallest model (footprints differ once weights stay quantized).
  int64_t lazy_weights = 0;
  std::vector<int64_t> sizes = {Footprint(kQ4), Footprint(kF16), Footprint(kQ8, &lazy_weights)};
  std::sort(sizes.begin(), sizes.end());
  ASSERT_NO_FATAL_FAILURE(Start(sizes[2] + sizes[1] + sizes[0] / 2));
  ASSERT_NO_FATAL_FAILURE(Add("a", kQ4));
  ASSERT_NO_FATAL_FAILURE(Add("b", kF16));
  ASSERT_NO_FATAL_FAILURE(Add("lazy", kQ8, scheduler::LoadPolicy::kLazy));
  EXPECT_EQ(Info("lazy").state(), v1::MODEL_STATE_EVICTED);
  TtftMs("b", 8);
  std::this_thread::sleep_for(milliseconds(5));
  TtftMs("a", 8);  // now b is the least recently used

  const double lazy_ttft = TtftMs("lazy", 8);
  EXPECT_EQ(Info("lazy").state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(Info("lazy").weights_bytes(), static_cast<uint64_t>(lazy_weights)) << "as predicted";
  EXPECT_EQ(Info("b").state(), v1::MODEL_STATE_EVICTED);
  EXPECT_THAT(Info("b").state_reason(), HasSubstr("lazy"));
  EXPECT_EQ(Info("b").weights_bytes(), 0u);
  EXPECT_EQ(Info("a").state(), v1::MODEL_STATE_READY);
  const double lazy_load_ms = (*router_->Find("lazy"))->status().last_load_seconds * 1000;
  EXPECT_GT(lazy_load_ms, 0);
  EXPECT_GE(lazy_ttft, lazy_load_ms) << "the load is part of the first request's TTFT";

  // b comes back on its next request, evicting a, and its TTFT holds its load.
  const double b_ttft = TtftMs("b", 8);
  EXPECT_EQ(Info("b").state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(Info("a").state(), v1::MODEL_STATE_EVICTED);
  const scheduler::ModelStatus back = (*router_->Find("b"))->status();
  EXPECT_EQ(back.loads_ok, 2);
  EXPECT_GE(b_ttft, back.last_load_seconds * 1000);
}

TEST_F(MultiModelTest, AFileThatFailsToLoadLeavesTheOtherTwoServing) {
  ASSERT_NO_FATAL_FAILURE(Start(AllThree()));
  ASSERT_NO_FATAL_FAILURE(Add("a", kQ4));
  ASSERT_NO_FATAL_FAILURE(Add("b", kQ8));
  // The header and metadata are whole, the tensor data is cut short: it
  // registers, and its load fails.
  const std::string cut = ::testing::TempDir() + "/multi_model_cut.gguf";
  {
    std::ifstream in(kF16, std::ios::binary);
    std::string head(8 << 20, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(cut, std::ios::binary).write(head.data(), in.gcount());
  }
  grpc::ClientContext ctx;
  v1::LoadModelRequest load;
  load.set_name("cut");
  load.set_path(std::filesystem::path(cut).filename().string());  // under the model root
  v1::LoadModelResponse loaded;
  const grpc::Status s = stub_->LoadModel(&ctx, load, &loaded);
  if (s.ok()) {
    ASSERT_TRUE(
        WaitFor([&] { return Info("cut").state() == v1::MODEL_STATE_FAILED; }, seconds(60)));
    EXPECT_FALSE(Info("cut").state_reason().empty());
  } else {
    // Or refused at registration, naming what is wrong; either way it is not served.
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }
  EXPECT_GT(TtftMs("a", 8), 0);
  EXPECT_GT(TtftMs("b", 8), 0);
  EXPECT_EQ(Info("a").state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(Info("b").state(), v1::MODEL_STATE_READY);
  std::filesystem::remove(cut);
}

TEST_F(MultiModelTest, UnloadingAModelWithLiveStreamsEndsThemAndFreesItsMemory) {
  ASSERT_NO_FATAL_FAILURE(Start(AllThree()));
  ASSERT_NO_FATAL_FAILURE(Add("a", kQ4));
  ASSERT_NO_FATAL_FAILURE(Add("b", kQ8));
  ASSERT_NO_FATAL_FAILURE(Add("doomed", kF16));
  std::vector<std::thread> streams;
  std::vector<StreamResult> results(3);
  for (int i = 0; i < 3; ++i) {
    streams.emplace_back([&, i] {
      const v1::GenerateRequest r = TokenRequest("doomed", 64, 600, 3000 + i);
      results[i] = Generate(*stub_, r);
    });
  }
  std::weak_ptr<scheduler::ServedModel> doomed = *router_->Find("doomed");
  // Not an ASSERT: the streams must be ended (by the unload) before returning.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto m = doomed.lock();
        return m != nullptr && m->Stats().num_running == 3 && m->kv_bytes_held() > 0;
      },
      seconds(60)));
  grpc::ClientContext ctx;
  v1::UnloadModelRequest unload;
  unload.set_name("doomed");
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(stub_->UnloadModel(&ctx, unload, &unloaded).ok());
  for (std::thread& t : streams) t.join();
  for (const StreamResult& r : results) {
    EXPECT_THAT(r.status.error_code(),
                AnyOf(grpc::StatusCode::CANCELLED, grpc::StatusCode::UNAVAILABLE))
        << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr("unloaded"));
  }
  // Its engine, weights and KV memory are gone once its streams have ended
  // (the last stream's end destroys it, on a gRPC thread: wait for that).
  const auto held_by_others = [&] {
    int64_t held = 0;
    for (const std::string name : {"a", "b"}) held += (*router_->Find(name))->kv_bytes_held();
    return held;
  };
  EXPECT_TRUE(WaitFor([&] { return doomed.expired(); }, seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return router_->devices()[0]->kv_pool->used() == held_by_others(); },
                      seconds(10)))
      << router_->devices()[0]->kv_pool->used() << " bytes used, " << held_by_others()
      << " by the others";
  EXPECT_EQ(Info("doomed").name(), "");
  EXPECT_GT(TtftMs("a", 8), 0) << "the others serve on";
}

}  // namespace
}  // namespace cohost::server
