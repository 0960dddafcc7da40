// The Router on tiny random-weight models: the model table (add, load, find,
// list, unload, name rules), admission limits by requests and by prompt
// tokens, draining, AbortAll, unloading with requests in flight, and
// concurrent submitters. Requests are held in the queue deterministically by
// a sink that blocks the engine thread inside its first OnDelta until the
// test opens a gate: everything submitted meanwhile stays unscheduled.

#include "scheduler/router.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/loader/tiny_gguf_model.h"
#include "tests/support/gated_sink.h"
#include "tests/support/requests.h"
#include "tests/support/tiny_model.h"
#include "tests/support/wait_for.h"

namespace cohost::scheduler {
namespace {

using runtime::FinishInfo;
using runtime::FinishReason;
using ::testing::HasSubstr;

constexpr auto kWait = std::chrono::seconds(120);  // generous for sanitizer builds

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

using cohost::testing::Gate;
using cohost::testing::RecordingSink;

runtime::GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, uint32_t seed = 1) {
  return cohost::testing::RandomGreedyRequest(prompt_len, max_tokens, seed);
}

runtime::EngineConfig SmallEngine() {
  runtime::EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 128;
  c.step_scheduler.max_num_seqs = 4;
  c.step_scheduler.max_tokens_per_step = 16;
  c.step_scheduler.max_prefill_chunk = 8;
  return c;
}

runtime::LoadedModel TinyLoaded() {
  runtime::LoadedModel loaded;
  absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t =
      runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec());
  EXPECT_TRUE(t.ok()) << t.status();
  if (t.ok()) loaded.tokenizer = *std::move(t);
  return loaded;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override { backend_ = kernels::MakeCpuBackend(1); }

  // A test that fails with the engine held in a gate must not hang: open
  // every gate before the router (and its engines) go.
  void TearDown() override {
    for (Gate& g : gates_) g.Open();
    router_.reset();
  }

  Gate& NewGate() { return gates_.emplace_back(); }

  void MakeRouter(AdmissionLimits limits = {}) {
    router_ = std::make_unique<Router>(backend_.get(), SmallEngine(), limits);
  }

  absl::Status AddTiny(const std::string& name,
                       const runtime::testing::TinyModelOptions& options = {}) {
    runtime::LoadedModel loaded = TinyLoaded();
    absl::StatusOr<std::unique_ptr<runtime::Model>> m =
        runtime::Model::Create(runtime::testing::MakeTinyModelFile(options), backend_.get());
    if (!m.ok()) return m.status();
    loaded.model = *std::move(m);
    return router_->AddModel(name, "tiny:" + name, std::move(loaded));
  }

  std::shared_ptr<ServedModel> FindOrDie(const std::string& name) {
    absl::StatusOr<std::shared_ptr<ServedModel>> m = router_->Find(name);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : nullptr;
  }

  // Submits a request whose first delta blocks the engine thread on `gate`,
  // and waits until it does: from then on nothing else gets scheduled.
  std::shared_ptr<RecordingSink> SubmitBlocker(const std::shared_ptr<ServedModel>& model,
                                               Gate* gate, int32_t prompt_len = 3,
                                               int32_t max_tokens = 20) {
    auto sink = std::make_shared<RecordingSink>(gate);
    absl::StatusOr<runtime::RequestId> id =
        router_->Submit(model, Request(prompt_len, max_tokens), sink);
    EXPECT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(gate->WaitEntered()) << "the engine never produced a token";
    return sink;
  }

  static void ExpectIdle(ServedModel& m) {
    EXPECT_EQ(m.admission().queued_requests(), 0);
    EXPECT_EQ(m.admission().queued_prompt_tokens(), 0);
    EXPECT_EQ(m.admission().in_flight(), 0);
    EXPECT_TRUE(m.admission().InFlightIds().empty());
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::deque<Gate> gates_;  // outlives router_ and every engine thread
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, AddFindListUnload) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  ASSERT_TRUE(AddTiny("other-1.5b", {.experts = 4}).ok());

  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->name(), "tiny");
  EXPECT_EQ(m->path(), "tiny:tiny");
  EXPECT_EQ(m->config().vocab_size, 272);

  std::vector<ModelSummary> list = router_->ListModels();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "other-1.5b");  // sorted by name
  EXPECT_EQ(list[1].name, "tiny");
  EXPECT_EQ(list[1].path, "tiny:tiny");
  EXPECT_EQ(list[1].architecture, "llama");
  EXPECT_EQ(list[1].context_length, 256);
  EXPECT_EQ(list[1].vocab_size, 272);
  EXPECT_EQ(list[1].experts, 0) << "a dense model";
  EXPECT_EQ(list[1].experts_used, 0);
  EXPECT_EQ(list[0].architecture, "qwen3moe");
  EXPECT_EQ(list[0].experts, 4);
  EXPECT_EQ(list[0].experts_used, 2);
  EXPECT_EQ(list[1].kv_cache_tokens, m->request_limits().kv_capacity_tokens);
  EXPECT_GT(list[1].kv_cache_tokens, 0);
  EXPECT_TRUE(list[1].serving);

  EXPECT_TRUE(router_->UnloadModel("tiny").ok());
  absl::StatusOr<std::shared_ptr<ServedModel>> gone = router_->Find("tiny");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(gone.status()), HasSubstr("\"tiny\""));
  EXPECT_EQ(router_->UnloadModel("tiny").code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(router_->ListModels().size(), 1u);
  EXPECT_EQ(router_->ListModels()[0].name, "other-1.5b");

  // A pointer held from before refuses new requests (the model is retired),
  // and the name is free again.
  auto sink = std::make_shared<RecordingSink>();
  const absl::Status after = router_->Submit(m, Request(3, 2), sink).status();
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable) << after;
  EXPECT_THAT(Msg(after), HasSubstr("unloaded"));
  EXPECT_TRUE(AddTiny("tiny").ok());
  EXPECT_NE(FindOrDie("tiny"), m);
}

TEST_F(RouterTest, NotFoundNamesTheModel) {
  MakeRouter();
  absl::StatusOr<std::shared_ptr<ServedModel>> m = router_->Find("nope");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(m.status()), HasSubstr("nope"));
  EXPECT_EQ(router_->UnloadModel("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(router_->ListModels().empty());
  // No name at all is the request's mistake (as the HTTP door says too).
  const absl::Status none = router_->Find("").status();
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument) << none;
  EXPECT_THAT(Msg(none), HasSubstr("model is required"));
  // A client may name megabytes of control bytes: the answer quotes the
  // longest a model's name can be, escaped, and says it is cut.
  const std::string huge(4 << 20, '\x01');
  const absl::Status big = router_->Find(huge).status();
  EXPECT_EQ(big.code(), absl::StatusCode::kNotFound);
  EXPECT_LT(big.message().size(), 1024u) << big.message().size();
  EXPECT_THAT(Msg(big), HasSubstr("\\x01\\x01"));
  EXPECT_THAT(Msg(big), HasSubstr("...")) << "cut";
}

TEST_F(RouterTest, NameRules) {
  MakeRouter();
  for (const std::string& bad :
       {std::string(), std::string("a b"), std::string("x/y"), std::string("caf\xc3\xa9"),
        std::string("q\"uote"), std::string("nul\0x", 5), std::string(129, 'a')}) {
    EXPECT_EQ(AddTiny(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    // LoadModel refuses the name before touching the path.
    EXPECT_EQ(router_->LoadModel(bad, "/nonexistent").code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_TRUE(router_->ListModels().empty());
  for (const std::string& good : {std::string(128, 'z'), std::string("Qwen2.5-0.5B_instruct"),
                                  std::string("7"), std::string("a.b-c_d")}) {
    EXPECT_TRUE(AddTiny(good).ok()) << good;
  }
  EXPECT_EQ(router_->ListModels().size(), 4u);
}

TEST_F(RouterTest, DuplicateNames) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("m").ok());
  std::shared_ptr<ServedModel> first = FindOrDie("m");
  absl::Status again = AddTiny("m");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(again), HasSubstr("\"m\""));
  // Refused before loading: the path does not even exist.
  EXPECT_EQ(router_->LoadModel("m", "/nonexistent/model.gguf").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(FindOrDie("m"), first);
  EXPECT_EQ(router_->ListModels().size(), 1u);
}

TEST_F(RouterTest, LoadModelReportsLoaderErrors) {
  MakeRouter();
  absl::Status s = router_->LoadModel("m", "/nonexistent/model.gguf");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(router_->Find("m").status().code(), absl::StatusCode::kNotFound);

  const std::string path = runtime::testing::TempPath("router_garbage.gguf");
  runtime::testing::WriteFile(path, "GGUF this is not a model");
  EXPECT_FALSE(router_->LoadModel("m", path).ok());
  EXPECT_TRUE(router_->ListModels().empty());
  std::filesystem::remove(path);
}

TEST_F(RouterTest, LoadModelFromFileServesRequests) {
  MakeRouter();
  const std::string path = runtime::testing::TempPath("router_tiny.gguf");
  runtime::testing::WriteFile(path, runtime::testing::MakeTinyModel().writer.Build());
  int progress_calls = 0;
  absl::Status s = router_->LoadModel("gguf", path, [&](uint64_t done, uint64_t total) {
    ++progress_calls;
    EXPECT_LE(done, total);
  });
  std::filesystem::remove(path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GT(progress_calls, 0);
  std::shared_ptr<ServedModel> m = FindOrDie("gguf");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->path(), path);
  EXPECT_EQ(m->config().vocab_size, runtime::testing::kVocab);

  runtime::GenerateRequest r;
  r.prompt_ids = {3, 4, 5};
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 4;
  r.sampling.ignore_eos = true;
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, r, sink).ok());
  ASSERT_TRUE(sink->WaitFinished());
  EXPECT_EQ(sink->info().reason, FinishReason::kLength);
  EXPECT_EQ(sink->tokens(), 4);
  ExpectIdle(*m);
}

TEST_F(RouterTest, SubmitRunsAndCountersSettle) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 8; ++i) {
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(router_->Submit(m, Request(5 + i, 6, i), sinks.back()).ok());
  }
  for (auto& s : sinks) {
    ASSERT_TRUE(s->WaitFinished());
    EXPECT_TRUE(s->scheduled());
    EXPECT_EQ(s->info().reason, FinishReason::kLength);
    EXPECT_EQ(s->tokens(), 6);
  }
  ExpectIdle(*m);
  EXPECT_EQ(router_->num_in_flight(), 0);
}

TEST_F(RouterTest, EngineRejectionUndoesCounters) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  runtime::GenerateRequest bad = Request(4, 4);
  bad.prompt_ids[2] = 9999;  // outside the vocabulary
  auto sink = std::make_shared<RecordingSink>();
  EXPECT_EQ(router_->Submit(m, bad, sink).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_->Submit(m, Request(0, 4), sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_->Submit(m, Request(4, 4), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_->Submit(nullptr, Request(4, 4), sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectIdle(*m);
  EXPECT_FALSE(sink->finished());
}

TEST_F(RouterTest, AdmissionLimitByRequests) {
  AdmissionLimits limits;
  limits.max_queued_requests = 2;
  MakeRouter(limits);
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> blocker = SubmitBlocker(m, &gate);
  EXPECT_EQ(m->admission().queued_requests(), 0) << "the running request left the queue";

  std::vector<std::shared_ptr<RecordingSink>> queued;
  for (int i = 0; i < 2; ++i) {
    queued.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(router_->Submit(m, Request(4, 3, i), queued.back()).ok());
  }
  EXPECT_EQ(m->admission().queued_requests(), 2);
  EXPECT_EQ(m->admission().queued_prompt_tokens(), 8);
  EXPECT_EQ(m->admission().in_flight(), 3);
  EXPECT_EQ(router_->num_in_flight(), 3);

  auto refused = std::make_shared<RecordingSink>();
  absl::StatusOr<runtime::RequestId> full = router_->Submit(m, Request(4, 3), refused);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Msg(full.status()), HasSubstr("\"tiny\""));
  EXPECT_THAT(Msg(full.status()), HasSubstr("max_queued_requests = 2"));
  EXPECT_EQ(m->admission().queued_requests(), 2) << "a refusal leaves the counters alone";
  EXPECT_EQ(m->admission().in_flight(), 3);
  EXPECT_EQ(router_->limits().retry_pushback_ms, 500);

  gate.Open();
  ASSERT_TRUE(blocker->WaitFinished());
  EXPECT_EQ(blocker->info().reason, FinishReason::kLength);
  for (auto& s : queued) {
    ASSERT_TRUE(s->WaitFinished());
    EXPECT_EQ(s->info().reason, FinishReason::kLength);
  }
  EXPECT_FALSE(refused->finished());
  ExpectIdle(*m);
  EXPECT_EQ(router_->num_in_flight(), 0);

  // Room again.
  auto later = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(4, 3), later).ok());
  ASSERT_TRUE(later->WaitFinished());
  ExpectIdle(*m);
}

TEST_F(RouterTest, AdmissionLimitByPromptTokens) {
  AdmissionLimits limits;
  limits.max_queued_prompt_tokens = 10;
  MakeRouter(limits);
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> blocker = SubmitBlocker(m, &gate, /*prompt_len=*/9);
  EXPECT_EQ(m->admission().queued_prompt_tokens(), 0);

  auto a = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(6, 2), a).ok());
  auto refused = std::make_shared<RecordingSink>();
  absl::StatusOr<runtime::RequestId> full = router_->Submit(m, Request(5, 2), refused);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Msg(full.status()), HasSubstr("\"tiny\""));
  EXPECT_THAT(Msg(full.status()), HasSubstr("max_queued_prompt_tokens = 10"));
  auto b = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(4, 2), b).ok()) << "6 + 4 fits 10 exactly";
  EXPECT_EQ(m->admission().queued_prompt_tokens(), 10);
  EXPECT_EQ(m->admission().queued_requests(), 2);

  // A prompt larger than the whole queue can never wait its turn.
  EXPECT_EQ(router_->Submit(m, Request(11, 2), refused).status().code(),
            absl::StatusCode::kInvalidArgument);

  gate.Open();
  for (auto& s : {blocker, a, b}) {
    ASSERT_TRUE(s->WaitFinished());
    EXPECT_EQ(s->info().reason, FinishReason::kLength);
  }
  EXPECT_FALSE(refused->finished());
  ExpectIdle(*m);
}

TEST_F(RouterTest, LimitsArePerModel) {
  AdmissionLimits limits;
  limits.max_queued_requests = 1;
  MakeRouter(limits);
  ASSERT_TRUE(AddTiny("a").ok());
  ASSERT_TRUE(AddTiny("b").ok());
  std::shared_ptr<ServedModel> a = FindOrDie("a"), b = FindOrDie("b");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> blocker = SubmitBlocker(a, &gate);
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(a, Request(3, 2), queued).ok());
  EXPECT_EQ(router_->Submit(a, Request(3, 2), std::make_shared<RecordingSink>()).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Model b's queue is its own: admitted while a's is full. (It runs once the
  // gate opens: both models share the device's one executor thread, which
  // the blocked sink holds.)
  auto other = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(b, Request(3, 2), other).ok());
  gate.Open();
  ASSERT_TRUE(other->WaitFinished());
  EXPECT_EQ(other->info().reason, FinishReason::kLength);
  ASSERT_TRUE(blocker->WaitFinished());
  ASSERT_TRUE(queued->WaitFinished());
  ExpectIdle(*a);
  ExpectIdle(*b);
}

TEST_F(RouterTest, DrainingRefusesNewRequestsAndKeepsInFlightOnes) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> running = SubmitBlocker(m, &gate, 3, 5);
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(3, 5), queued).ok());

  EXPECT_FALSE(router_->draining());
  router_->StartDraining();
  EXPECT_TRUE(router_->draining());
  absl::StatusOr<runtime::RequestId> refused =
      router_->Submit(m, Request(3, 5), std::make_shared<RecordingSink>());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Msg(refused.status()), "server is draining");
  // A further choice of an admitted call (HTTP's n) finishes as the call's
  // first does, until the drain's wait is over (AbortAll).
  auto further = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(3, 5), further, /*further_choice=*/true).ok());
  EXPECT_EQ(router_->num_in_flight(), 3);
  EXPECT_FALSE(router_->ListModels()[0].serving);

  gate.Open();
  ASSERT_TRUE(running->WaitFinished());
  ASSERT_TRUE(queued->WaitFinished());
  EXPECT_EQ(running->info().reason, FinishReason::kLength);
  EXPECT_EQ(queued->info().reason, FinishReason::kLength);
  EXPECT_EQ(queued->tokens(), 5);
  ASSERT_TRUE(further->WaitFinished());
  EXPECT_EQ(further->info().reason, FinishReason::kLength);
  EXPECT_EQ(router_->num_in_flight(), 0);
  ExpectIdle(*m);
  router_->AbortAll();
  EXPECT_EQ(
      router_->Submit(m, Request(3, 5), std::make_shared<RecordingSink>(), true).status().code(),
      absl::StatusCode::kUnavailable)
      << "the drain's wait is over";
}

TEST_F(RouterTest, AbortOneRequest) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> running = SubmitBlocker(m, &gate, 3, 4);
  auto queued = std::make_shared<RecordingSink>();
  absl::StatusOr<runtime::RequestId> id = router_->Submit(m, Request(3, 4), queued);
  ASSERT_TRUE(id.ok());
  router_->Abort(m, *id);
  gate.Open();
  ASSERT_TRUE(queued->WaitFinished());
  ASSERT_TRUE(running->WaitFinished());
  EXPECT_EQ(queued->info().reason, FinishReason::kCancelled);
  EXPECT_EQ(queued->tokens(), 0);
  EXPECT_FALSE(queued->scheduled());
  EXPECT_EQ(running->info().reason, FinishReason::kLength);
  ExpectIdle(*m);
}

TEST_F(RouterTest, AbortAllCancelsEverything) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("a").ok());
  ASSERT_TRUE(AddTiny("b").ok());
  std::shared_ptr<ServedModel> a = FindOrDie("a"), b = FindOrDie("b");
  // The device's executor is held inside a's first token; everything else,
  // on both models, is queued behind it.
  Gate& gate = NewGate();
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  sinks.push_back(SubmitBlocker(a, &gate, 3, 50));
  for (int i = 0; i < 4; ++i) {
    for (const auto& m : {a, b}) {
      sinks.push_back(std::make_shared<RecordingSink>());
      ASSERT_TRUE(router_->Submit(m, Request(4, 50, i), sinks.back()).ok());
    }
  }
  EXPECT_EQ(router_->num_in_flight(), 9);
  router_->StartDraining();
  router_->AbortAll();
  gate.Open();
  for (auto& s : sinks) {
    ASSERT_TRUE(s->WaitFinished());
    EXPECT_EQ(s->info().reason, FinishReason::kCancelled);
  }
  // The blocked one stopped right after the token it was writing; the queued
  // ones never ran.
  EXPECT_EQ(sinks[0]->tokens(), 1);
  for (size_t i = 1; i < sinks.size(); ++i) EXPECT_EQ(sinks[i]->tokens(), 0) << i;
  EXPECT_EQ(router_->num_in_flight(), 0);
  ExpectIdle(*a);
  ExpectIdle(*b);
}

TEST_F(RouterTest, UnloadAbortsInFlightRequests) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> running = SubmitBlocker(m, &gate, 3, 50);
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(router_->Submit(m, Request(3, 50), queued).ok());

  ASSERT_TRUE(router_->UnloadModel("tiny").ok());
  EXPECT_EQ(router_->Find("tiny").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router_->num_in_flight(), 0) << "counts loaded models only";
  gate.Open();
  ASSERT_TRUE(running->WaitFinished());
  ASSERT_TRUE(queued->WaitFinished());
  EXPECT_EQ(running->info().reason, FinishReason::kCancelled);
  EXPECT_EQ(queued->info().reason, FinishReason::kCancelled);
  ExpectIdle(*m);
  m.reset();  // the last holder: stops the engine
}

TEST_F(RouterTest, DroppingTheLastHolderCancelsLiveRequests) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> running = SubmitBlocker(m, &gate, 3, 50);
  std::vector<std::shared_ptr<RecordingSink>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(router_->Submit(m, Request(3, 50, i), queued.back()).ok());
  }
  ASSERT_TRUE(router_->UnloadModel("tiny").ok());
  // The engine thread is still blocked in a sink: let it go once this thread
  // is inside ~ServedModel, waiting in Engine::Stop for the step to end.
  const DeviceExecutor* executor = &m->executor();
  std::thread opener([&gate, executor] {
    EXPECT_TRUE(testing::WaitFor([executor] { return executor->detach_waiters() > 0; }, kWait));
    gate.Open();
  });
  m.reset();
  opener.join();
  EXPECT_TRUE(running->finished()) << "the engine is gone; every sink has its finish";
  EXPECT_EQ(running->info().reason, FinishReason::kCancelled);
  for (auto& s : queued) {
    EXPECT_TRUE(s->finished());
    EXPECT_EQ(s->info().reason, FinishReason::kCancelled);
  }
}

TEST_F(RouterTest, DestroyingTheRouterWithLiveRequests) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  Gate& gate = NewGate();
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  const DeviceExecutor* executor = nullptr;
  {
    std::shared_ptr<ServedModel> m = FindOrDie("tiny");
    executor = &m->executor();
    sinks.push_back(SubmitBlocker(m, &gate, 3, 50));
    for (int i = 0; i < 5; ++i) {
      sinks.push_back(std::make_shared<RecordingSink>());
      ASSERT_TRUE(router_->Submit(m, Request(8, 50, i), sinks.back()).ok());
    }
  }
  // Let the blocked step go once the router's destructor is waiting for it.
  std::thread opener([&gate, executor] {
    EXPECT_TRUE(testing::WaitFor([executor] { return executor->detach_waiters() > 0; }, kWait));
    gate.Open();
  });
  router_.reset();  // the last holder of the model: waits for the blocked step
  opener.join();
  for (auto& s : sinks) {
    EXPECT_TRUE(s->finished());
    EXPECT_EQ(s->info().reason, FinishReason::kCancelled);
  }
  EXPECT_EQ(sinks[0]->tokens(), 1);
}

// A call may hold its model past the Router (the front doors go first in
// `cohost serve`, but nothing else makes them): the model's engine keeps
// stepping its requests, whose sinks settle the tenants' books, which the
// Router shares with them rather than owns alone.
TEST_F(RouterTest, AModelHeldPastTheRouterRunsItsRequestsToTheirEnd) {
  MakeRouter();
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");
  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> running = SubmitBlocker(m, &gate, 3, 20);
  router_.reset();  // not the last holder: returns with the request held in its sink
  gate.Open();
  ASSERT_TRUE(running->WaitFinished());
  EXPECT_EQ(running->info().reason, FinishReason::kLength);
  EXPECT_EQ(running->tokens(), 20);
  ExpectIdle(*m);
  m.reset();
}

// Several threads submit at once against a small queue: the queue bound holds
// at every moment, every request is either admitted (and finishes) or refused
// with RESOURCE_EXHAUSTED, and the counters end at zero. The engine is held
// for thread 0's first 10 submissions, so some must be refused. Meant for
// TSan too.
TEST_F(RouterTest, ConcurrentSubmittersRespectTheBound) {
  AdmissionLimits limits;
  limits.max_queued_requests = 4;
  limits.max_queued_prompt_tokens = 40;
  MakeRouter(limits);
  ASSERT_TRUE(AddTiny("tiny").ok());
  std::shared_ptr<ServedModel> m = FindOrDie("tiny");

  std::atomic<bool> done{false};
  std::atomic<int> max_queued{0};
  std::atomic<int64_t> max_tokens_queued{0};
  std::thread monitor([&] {
    while (!done.load()) {
      int q = m->admission().queued_requests();
      int64_t t = m->admission().queued_prompt_tokens();
      if (q > max_queued.load()) max_queued.store(q);
      if (t > max_tokens_queued.load()) max_tokens_queued.store(t);
      std::this_thread::yield();
    }
  });

  Gate& gate = NewGate();
  std::shared_ptr<RecordingSink> blocker = SubmitBlocker(m, &gate, 3, 3);

  constexpr int kThreads = 4, kPerThread = 25;
  std::mutex mu;
  std::vector<std::shared_ptr<RecordingSink>> admitted;
  std::atomic<int> refused{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kPerThread; ++i) {
        auto sink = std::make_shared<RecordingSink>();
        const int32_t len = 2 + static_cast<int32_t>(rng() % 8);
        absl::StatusOr<runtime::RequestId> id =
            router_->Submit(m, Request(len, 1 + rng() % 4, rng()), sink);
        if (id.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          admitted.push_back(sink);
        } else if (id.status().code() == absl::StatusCode::kResourceExhausted) {
          refused.fetch_add(1);
        } else {
          other_errors.fetch_add(1);
        }
        if (t == 0 && i == 9) gate.Open();
        if (i > 10 && rng() % 3 == 0) router_->AbortAll();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& s : admitted) ASSERT_TRUE(s->WaitFinished());
  ASSERT_TRUE(blocker->WaitFinished());
  done.store(true);
  monitor.join();

  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(static_cast<int>(admitted.size()) + refused.load(), kThreads * kPerThread);
  EXPECT_GE(admitted.size(), 4u);
  EXPECT_GE(refused.load(), 6) << "at most 4 of thread 0's first 10 fit while the engine is held";
  EXPECT_LE(max_queued.load(), 4);
  EXPECT_LE(max_tokens_queued.load(), 40);
  for (auto& s : admitted) {
    const FinishReason r = s->info().reason;
    EXPECT_TRUE(r == FinishReason::kLength || r == FinishReason::kCancelled)
        << runtime::FinishReasonName(r);
  }
  ExpectIdle(*m);
  EXPECT_EQ(router_->num_in_flight(), 0);
}

}  // namespace
}  // namespace cohost::scheduler
