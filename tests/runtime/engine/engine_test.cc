// The Engine on a tiny random-weight model: submit validation, abort in every
// state, and randomized property tests (single-threaded stepping, and the run
// loop fed from several threads) on a deliberately small KV pool.

#include "runtime/engine/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "cohost/kernels/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/engine/engine_state.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/support/forwarding_backend.h"
#include "tests/support/recording_backend.h"
#include "tests/support/run_to_idle.h"
#include "tests/support/sentencepiece_spec.h"
#include "tests/support/tiny_model.h"
#include "tests/support/wait_for.h"

namespace cohost::runtime {
namespace {

// Records everything a request sends, and checks the sink protocol: deltas,
// then exactly one finish.
class RecordingSink : public TokenSink {
 public:
  explicit RecordingSink(int fail_after_deltas = -1) : fail_after_(fail_after_deltas) {}
  bool OnDelta(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(finished_) << "delta after finish";
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
    logprobs_.insert(logprobs_.end(), d.logprobs.begin(), d.logprobs.end());
    text_ += d.text;
    ++deltas_;
    return fail_after_ < 0 || deltas_ < fail_after_;
  }
  void OnFinish(const FinishInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(finished_) << "finished twice";
    finished_ = true;
    info_ = info;
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  FinishInfo info() const {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }
  std::vector<int32_t> tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  std::vector<TokenLogprobs> logprobs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return logprobs_;
  }

 private:
  mutable std::mutex mu_;
  int fail_after_;
  int deltas_ = 0;
  bool finished_ = false;
  FinishInfo info_;
  std::vector<int32_t> tokens_;
  std::vector<TokenLogprobs> logprobs_;
  std::string text_;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = kernels::MakeCpuBackend(1);
    absl::StatusOr<std::unique_ptr<Model>> m =
        Model::Create(testing::MakeTinyModelFile(), backend_.get());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    absl::StatusOr<std::unique_ptr<Tokenizer>> t =
        Tokenizer::Create(testing::MakeByteTokenizerSpec());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }

  std::unique_ptr<Engine> MakeEngine(int32_t num_blocks, int32_t block_size = 4,
                                     int32_t max_num_seqs = 6,
                                     std::optional<StepCost> step_cost = std::nullopt) {
    EngineConfig c;
    c.clock = [this] { return now_; };
    c.step_cost = step_cost;
    c.block_size = block_size;
    c.num_kv_blocks = num_blocks;
    c.step_scheduler.max_num_seqs = max_num_seqs;
    c.step_scheduler.max_tokens_per_step = 16;
    c.step_scheduler.max_prefill_chunk = 8;
    absl::StatusOr<std::unique_ptr<Engine>> e = Engine::Create(model_.get(), tokenizer_.get(), c);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  static GenerateRequest Request(int32_t prompt_len, int32_t max_tokens, uint32_t seed = 1) {
    GenerateRequest r;
    std::mt19937 rng(seed);
    for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(rng() % 256);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    return r;
  }

  // Each request's sink, all submitted at once to one engine over `model`
  // (`c` on the test's clock); *stats the engine's once idle, if asked.
  std::vector<std::shared_ptr<RecordingSink>> RunSinks(Model* model, EngineConfig c,
                                                       const std::vector<GenerateRequest>& requests,
                                                       EngineStats* stats = nullptr) {
    c.clock = [this] { return now_; };
    std::unique_ptr<Engine> e = Engine::Create(model, tokenizer_.get(), c).value();
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (const GenerateRequest& request : requests) {
      sinks.push_back(std::make_shared<RecordingSink>());
      EXPECT_TRUE(e->Submit(request, sinks.back()).ok());
    }
    RunToIdle(*e);
    if (stats != nullptr) *stats = e->Stats();
    return sinks;
  }
  // Each request's tokens, as RunSinks.
  std::vector<std::vector<int32_t>> RunTogether(Model* model, const EngineConfig& c,
                                                const std::vector<GenerateRequest>& requests,
                                                EngineStats* stats = nullptr) {
    std::vector<std::vector<int32_t>> tokens;
    for (const auto& sink : RunSinks(model, c, requests, stats)) tokens.push_back(sink->tokens());
    return tokens;
  }

  static void RunToIdle(Engine& e, int max_steps = 10000) { testing::RunToIdle(e, max_steps); }

  // `r` submitted with its deadline `in` from now; its sink.
  std::shared_ptr<RecordingSink> SubmitDue(Engine& e, GenerateRequest r,
                                           std::chrono::milliseconds in) {
    r.deadline = now_ + in;
    auto sink = std::make_shared<RecordingSink>();
    EXPECT_TRUE(e.Submit(r, sink).ok());
    return sink;
  }

  // The engines' clock: time moves only when a test moves it. Read on the
  // stepping thread, so only tests that step on their own thread move it.
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(EngineTest, SubmitRejectsRequestsThatCanNeverRun) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/9);  // 8 usable blocks = 32 tokens
  auto sink = std::make_shared<RecordingSink>();
  EXPECT_EQ(e->Submit(Request(0, 4), sink).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Submit(Request(30, 3), sink).status().code(), absl::StatusCode::kInvalidArgument)
      << "33 tokens can never fit 32";
  EXPECT_TRUE(e->Submit(Request(29, 3), sink).ok());
  GenerateRequest bad = Request(4, 4);
  bad.prompt_ids[1] = 272;
  EXPECT_EQ(e->Submit(bad, sink).status().code(), absl::StatusCode::kInvalidArgument);
  bad = Request(4, 4);
  bad.sampling.temperature = -1;
  EXPECT_EQ(e->Submit(bad, sink).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Submit(Request(4, 4), nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  RunToIdle(*e);
  EXPECT_TRUE(sink->finished());

  EngineConfig whole;
  whole.block_size = 4;
  whole.num_kv_blocks = 64;
  whole.step_scheduler.chunked_prefill = false;
  whole.step_scheduler.max_tokens_per_step = 16;
  whole.step_scheduler.max_num_seqs = 4;
  std::unique_ptr<Engine> w = Engine::Create(model_.get(), tokenizer_.get(), whole).value();
  EXPECT_EQ(w->Submit(Request(12, 6), sink).status().code(), absl::StatusCode::kInvalidArgument)
      << "without chunking, 17 tokens can never start in a 16-token step";
  sink = std::make_shared<RecordingSink>();
  EXPECT_TRUE(w->Submit(Request(12, 5), sink).ok());
  RunToIdle(*w);
  EXPECT_TRUE(sink->finished());
}

TEST_F(EngineTest, GreedyOutputDoesNotDependOnBatching) {
  // Alone, then four at once: same tokens (the CPU kernels are deterministic
  // per row, whatever else shares the batch).
  std::vector<std::vector<int32_t>> alone;
  for (uint32_t s = 0; s < 4; ++s) {
    std::unique_ptr<Engine> e = MakeEngine(64);
    auto sink = std::make_shared<RecordingSink>();
    ASSERT_TRUE(e->Submit(Request(5 + 7 * s, 12, s), sink).ok());
    RunToIdle(*e);
    alone.push_back(sink->tokens());
    EXPECT_EQ(alone.back().size(), 12u);
  }
  std::unique_ptr<Engine> e = MakeEngine(64);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (uint32_t s = 0; s < 4; ++s) {
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(e->Submit(Request(5 + 7 * s, 12, s), sinks.back()).ok());
  }
  RunToIdle(*e);
  for (uint32_t s = 0; s < 4; ++s) EXPECT_EQ(sinks[s]->tokens(), alone[s]) << s;
}

// A device whose memory is its own (a ForwardingBackend adopts nothing): it
// counts the rows it draws and the largest copy to the host.
class DeviceLikeBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  void SampleRows(const float* x, int32_t rows, int32_t width, const kernels::SampleSpec* specs,
                  int32_t* out) override {
    for (int32_t r = 0; r < rows; ++r) drawn_rows += specs[r].temperature > 0.f;
    ForwardingBackend::SampleRows(x, rows, width, specs, out);
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    largest_copy = std::max(largest_copy, bytes);
    return ForwardingBackend::CopyToHost(dst, src, bytes);
  }
  int drawn_rows = 0;
  size_t largest_copy = 0;
};

TEST_F(EngineTest, OnADeviceTokensAreDrawnThereAsTheRequestAsks) {
  DeviceLikeBackend device(kernels::MakeCpuBackend(1));
  std::unique_ptr<Model> model = Model::Create(testing::MakeTinyModelFile(), &device).value();
  const int32_t vocab = model->config().vocab_size;
  EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 64;
  // Each request's tokens, run together in one engine.
  auto run_all = [&](const std::vector<GenerateRequest>& requests) {
    std::vector<std::vector<int32_t>> tokens = RunTogether(model.get(), c, requests);
    for (const std::vector<int32_t>& t : tokens) EXPECT_EQ(t.size(), 12u);
    return tokens;
  };
  auto run = [&](const GenerateRequest& request) { return run_all({request})[0]; };
  const GenerateRequest greedy = Request(9, 12, 3);
  const std::vector<int32_t> greedy_tokens = run(greedy);
  EXPECT_EQ(device.drawn_rows, 0);
  // top_k 1 leaves only the argmax, whatever the temperature and the draw.
  GenerateRequest top1 = greedy;
  top1.sampling.temperature = 1.5f;
  top1.sampling.top_k = 1;
  top1.sampling.seed = 5;
  EXPECT_EQ(run(top1), greedy_tokens);
  EXPECT_EQ(device.drawn_rows, 12);
  // Seeded draws repeat; another seed draws otherwise.
  GenerateRequest hot = greedy;
  hot.sampling.temperature = 3.f;
  hot.sampling.top_k = 50;
  hot.sampling.seed = 11;
  const std::vector<int32_t> a = run(hot);
  EXPECT_EQ(run(hot), a);
  hot.sampling.seed = 12;
  EXPECT_NE(run(hot), a);
  EXPECT_NE(a, greedy_tokens);
  // Only ids came back, never a row of logits.
  EXPECT_LT(device.largest_copy, vocab * sizeof(float));
  // Penalties read the request's history; they move its logits on the device
  // too (Backend::ApplyPenalties), and a penalized argmax there is the host
  // Sampler's: an engine on the CPU backend itself samples it on the host.
  GenerateRequest penalized = Request(6, 12, 4);
  penalized.sampling.repetition_penalty = 1.3f;
  penalized.sampling.presence_penalty = 0.5f;
  penalized.sampling.frequency_penalty = 0.7f;
  const std::vector<int32_t> penalized_tokens = run(penalized);
  EXPECT_LT(device.largest_copy, vocab * sizeof(float));
  std::unique_ptr<kernels::Backend> cpu = kernels::MakeCpuBackend(1);
  ASSERT_TRUE(cpu->AdoptsHostMemory()) << "the host samples penalized rows here";
  std::unique_ptr<Model> host_model =
      Model::Create(testing::MakeTinyModelFile(), cpu.get()).value();
  EXPECT_EQ(RunTogether(host_model.get(), c, {penalized})[0], penalized_tokens);
  GenerateRequest unpenalized = penalized;
  unpenalized.sampling.repetition_penalty = 1.f;
  unpenalized.sampling.presence_penalty = unpenalized.sampling.frequency_penalty = 0.f;
  EXPECT_NE(run(unpenalized), penalized_tokens) << "the penalties moved something";
  // A logit bias rides with the penalties (PenaltyTerm::add, before them):
  // the greedy tokens it gives on the device are the host's. Its tokens are
  // the first ones the unbiased request wrote, pushed down, and others up.
  GenerateRequest biased = unpenalized;
  biased.sampling.repetition_penalty = 1.2f;
  const std::vector<int32_t> unbiased_tokens = run(unpenalized);
  std::set<int32_t> down(unbiased_tokens.begin(), unbiased_tokens.begin() + 3);
  for (int32_t t = 0; t < vocab; t += 37) {
    biased.sampling.logit_bias.push_back({t, down.count(t) ? -5.f : 2.5f});
  }
  for (int32_t t : down) {
    if (t % 37 != 0) biased.sampling.logit_bias.push_back({t, -5.f});
  }
  std::sort(biased.sampling.logit_bias.begin(), biased.sampling.logit_bias.end(), ByToken);
  const std::vector<int32_t> biased_tokens = run(biased);
  EXPECT_LT(device.largest_copy, vocab * sizeof(float));
  EXPECT_EQ(RunTogether(host_model.get(), c, {biased})[0], biased_tokens);
  EXPECT_NE(biased_tokens, unbiased_tokens) << "the bias moved something";
  // Logprobs are computed there too (Backend::RowLogprobs): pairs come back,
  // never a row of logits, and they are the host's, of the raw logits before
  // the penalties (the host samples such a request on the CPU backend).
  GenerateRequest asked = penalized;
  asked.sampling.logprobs = 2;
  const std::shared_ptr<RecordingSink> on_device = RunSinks(model.get(), c, {asked})[0];
  EXPECT_LT(device.largest_copy, vocab * sizeof(float));
  const std::shared_ptr<RecordingSink> on_host = RunSinks(host_model.get(), c, {asked})[0];
  EXPECT_EQ(on_device->tokens(), penalized_tokens);
  EXPECT_EQ(on_host->tokens(), penalized_tokens);
  const std::vector<TokenLogprobs> got = on_device->logprobs(), want = on_host->logprobs();
  ASSERT_EQ(got.size(), penalized_tokens.size());
  ASSERT_EQ(want.size(), got.size());
  bool penalty_moved_the_argmax = false;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].chosen.id, want[i].chosen.id) << i;
    EXPECT_FLOAT_EQ(got[i].chosen.logprob, want[i].chosen.logprob) << i;
    ASSERT_EQ(got[i].top.size(), 2u);
    ASSERT_EQ(want[i].top.size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(got[i].top[k].id, want[i].top[k].id) << i;
      EXPECT_FLOAT_EQ(got[i].top[k].logprob, want[i].top[k].logprob) << i;
    }
    penalty_moved_the_argmax |= got[i].top[0].id != got[i].chosen.id;
  }
  EXPECT_TRUE(penalty_moved_the_argmax) << "some logprobs read logits the penalties moved";
  // Requests asking different numbers of alternatives share a step: each
  // gets its own count, from its own row (the step computes the largest).
  GenerateRequest one = Request(8, 12, 5);
  one.sampling.logprobs = 1;
  GenerateRequest four = Request(9, 12, 6);
  four.sampling.logprobs = 4;
  four.sampling.repetition_penalty = 1.4f;
  const auto device_pair = RunSinks(model.get(), c, {one, four});
  const auto host_pair = RunSinks(host_model.get(), c, {one, four});
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(device_pair[k]->tokens(), host_pair[k]->tokens()) << k;
    const std::vector<TokenLogprobs> d = device_pair[k]->logprobs(), h = host_pair[k]->logprobs();
    ASSERT_EQ(d.size(), 12u) << k;
    ASSERT_EQ(h.size(), d.size()) << k;
    for (size_t i = 0; i < d.size(); ++i) {
      ASSERT_EQ(d[i].top.size(), k == 0 ? 1u : 4u) << k;
      EXPECT_EQ(d[i].chosen.id, h[i].chosen.id) << k << " " << i;
      EXPECT_FLOAT_EQ(d[i].chosen.logprob, h[i].chosen.logprob) << k << " " << i;
      for (size_t j = 0; j < d[i].top.size(); ++j) {
        EXPECT_EQ(d[i].top[j].id, h[i].top[j].id) << k << " " << i << " " << j;
        EXPECT_FLOAT_EQ(d[i].top[j].logprob, h[i].top[j].logprob) << k << " " << i << " " << j;
      }
    }
  }
  // Where each request draws depends on it alone: beside one asking
  // logprobs, a seeded request draws the same tokens as alone.
  hot.sampling.seed = 11;
  EXPECT_EQ(run_all({hot, asked})[0], a);
  // And the host Sampler draws what the device does from the same logits
  // (one rule, kernels/sample_spec.h): top-k, top-p and min-p as thresholds,
  // the draw in id order, the same number. It drew in rank order before.
  GenerateRequest nucleus = hot;
  nucleus.sampling.top_p = 0.9f;
  nucleus.sampling.min_p = 0.01f;
  for (const GenerateRequest& r : {hot, nucleus}) {
    EXPECT_EQ(RunTogether(host_model.get(), c, {r})[0], run(r));
  }
}

// Decode steps from captured graphs (EngineConfig::decode_graphs) through
// everything an engine does between them: prefill chunks beside decodes,
// sequences finishing and joining, preemption under a small cache, sampled
// and penalized requests drawn on the device, logprobs computed there. On a
// backend with graph semantics (RecordingBackend) every request's tokens are
// those of the same engine without graphs, and on one with a stream's too
// (queued ops, staged uploads read as the copy runs).
// A JSON request is masked where it draws: on a device (Backend::MaskRows,
// only ids come back) it draws the tokens the host draws with its mask, and
// they are a JSON object's; one that asks for logprobs is drawn on the host.
TEST_F(EngineTest, AJsonRequestIsMaskedOnTheDeviceAsOnTheHost) {
  DeviceLikeBackend device(kernels::MakeCpuBackend(1));
  std::unique_ptr<Model> on_device = Model::Create(testing::MakeTinyModelFile(), &device).value();
  const int32_t vocab = on_device->config().vocab_size;
  EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = 64;
  GenerateRequest json = Request(9, 40, 3);
  json.sampling.ignore_eos = false;
  json.sampling.temperature = 1.f;
  json.sampling.seed = 21;
  json.sampling.response_format = ResponseFormat::kJsonObject;
  GenerateRequest text = Request(7, 12, 4);  // beside it, drawn as ever
  text.sampling.temperature = 2.f;
  text.sampling.seed = 3;
  const std::vector<std::vector<int32_t>> drawn = RunTogether(on_device.get(), c, {json, text});
  EXPECT_GT(device.drawn_rows, 0);
  EXPECT_LT(device.largest_copy, vocab * sizeof(float)) << "ids came back, not logits";
  const std::vector<std::vector<int32_t>> on_host = RunTogether(model_.get(), c, {json, text});
  EXPECT_EQ(drawn, on_host);
  ASSERT_FALSE(drawn[0].empty());
  JsonGrammar document;
  EXPECT_TRUE(document.FeedAll(tokenizer_->Decode(drawn[0]))) << tokenizer_->Decode(drawn[0]);
  const std::string doc = tokenizer_->Decode(drawn[0]);
  EXPECT_EQ(doc[doc.find_first_not_of(" \t\r\n")], '{') << doc;

  // Beside a request that asks for logprobs the step draws on the host: the
  // same tokens, and nothing fails.
  GenerateRequest logprobs = text;
  logprobs.sampling.logprobs = 2;
  EXPECT_EQ(RunTogether(on_device.get(), c, {json, logprobs}), on_host);
  EXPECT_GE(device.largest_copy, vocab * sizeof(float)) << "the raw rows came back";
  json.sampling.logprobs = 2;
  const std::vector<int32_t> with_logprobs = RunTogether(on_device.get(), c, {json})[0];
  EXPECT_EQ(with_logprobs, on_host[0]);
}

TEST_F(EngineTest, DecodeGraphsLeaveEveryRequestsTokensAsTheyWere) {
  std::vector<GenerateRequest> requests;
  for (uint32_t i = 0; i < 6; ++i) requests.push_back(Request(5 + 3 * i, 20, 10 + i));
  requests[1].sampling.temperature = 0.8f;
  requests[1].sampling.top_p = 0.9f;
  requests[1].sampling.seed = 3;
  requests[2].sampling.repetition_penalty = 1.2f;
  requests[2].sampling.frequency_penalty = 0.4f;
  requests[2].sampling.logprobs = 3;
  // Each request's tokens; *logprobs request 2's.
  auto run = [&](bool graphs, DecodeGraphStats* stats, int64_t* preemptions,
                 std::vector<TokenLogprobs>* logprobs, bool async = false) {
    cohost::testing::RecordingBackend backend(kernels::MakeCpuBackend(1));
    std::unique_ptr<Model> model = Model::Create(testing::MakeTinyModelFile(), &backend).value();
    backend.set_async(async);
    EngineConfig c;
    c.block_size = 4;
    c.num_kv_blocks = 40;
    c.step_scheduler.max_num_seqs = 6;
    c.step_scheduler.max_tokens_per_step = 16;
    c.step_scheduler.max_prefill_chunk = 8;
    c.decode_graphs = graphs;
    EngineStats engine;
    std::vector<std::vector<int32_t>> tokens;
    for (const auto& sink : RunSinks(model.get(), c, requests, &engine)) {
      tokens.push_back(sink->tokens());
      if (tokens.size() == 3) *logprobs = sink->logprobs();
    }
    *stats = model->decode_graph_stats();
    *preemptions = engine.num_preemptions;
    return tokens;
  };
  // The same logprobs, entry by entry.
  auto expect_same = [](const std::vector<TokenLogprobs>& got,
                        const std::vector<TokenLogprobs>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].chosen.id, want[i].chosen.id) << i;
      EXPECT_FLOAT_EQ(got[i].chosen.logprob, want[i].chosen.logprob) << i;
      ASSERT_EQ(got[i].top.size(), want[i].top.size()) << i;
      for (size_t j = 0; j < got[i].top.size(); ++j) {
        EXPECT_EQ(got[i].top[j].id, want[i].top[j].id) << i << " " << j;
        EXPECT_FLOAT_EQ(got[i].top[j].logprob, want[i].top[j].logprob) << i << " " << j;
      }
    }
  };
  DecodeGraphStats eager_stats, graph_stats;
  int64_t eager_preemptions = 0, graph_preemptions = 0;
  std::vector<TokenLogprobs> eager_logprobs, graph_logprobs;
  const auto eager = run(false, &eager_stats, &eager_preemptions, &eager_logprobs);
  const auto graphs = run(true, &graph_stats, &graph_preemptions, &graph_logprobs);
  EXPECT_EQ(graphs, eager);
  ASSERT_EQ(eager_logprobs.size(), 20u);
  expect_same(graph_logprobs, eager_logprobs);
  for (const auto& t : eager) EXPECT_EQ(t.size(), 20u);
  EXPECT_EQ(eager_stats.captures, 0);
  EXPECT_GT(graph_stats.captures, 0);
  EXPECT_GT(graph_stats.launches, 10);
  EXPECT_GT(eager_preemptions, 0) << "the cache is small enough to preempt";
  EXPECT_EQ(graph_preemptions, eager_preemptions);
  // And on a stream: ops and copies queued, staged uploads read as they run.
  DecodeGraphStats async_stats;
  int64_t async_preemptions = 0;
  std::vector<TokenLogprobs> async_logprobs;
  EXPECT_EQ(run(true, &async_stats, &async_preemptions, &async_logprobs, true), eager);
  expect_same(async_logprobs, eager_logprobs);
  EXPECT_GT(async_stats.launches, 10);
}

TEST_F(EngineTest, LogprobsComeWithEachTokenOnlyWhenAsked) {
  std::unique_ptr<Engine> e = MakeEngine(64);
  GenerateRequest asked = Request(6, 10);
  asked.sampling.logprobs = 3;
  auto with = std::make_shared<RecordingSink>();
  auto without = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(asked, with).ok());
  ASSERT_TRUE(e->Submit(Request(6, 10), without).ok());
  RunToIdle(*e);
  EXPECT_TRUE(without->logprobs().empty());
  const std::vector<int32_t> tokens = with->tokens();
  const std::vector<TokenLogprobs> logprobs = with->logprobs();
  ASSERT_EQ(tokens, without->tokens());  // asking changes nothing else
  ASSERT_EQ(logprobs.size(), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenLogprobs& l = logprobs[i];
    EXPECT_EQ(l.chosen.id, tokens[i]);
    ASSERT_EQ(l.top.size(), 3u);
    // Greedy without penalties picks the most likely token.
    EXPECT_EQ(l.top[0].id, tokens[i]);
    EXPECT_FLOAT_EQ(l.top[0].logprob, l.chosen.logprob);
    EXPECT_LE(l.chosen.logprob, 0.0f);
    EXPECT_GE(l.top[0].logprob, l.top[1].logprob);
    EXPECT_GE(l.top[1].logprob, l.top[2].logprob);
  }
}

// Records the order in which requests are first scheduled.
class ScheduleOrderSink : public RecordingSink {
 public:
  ScheduleOrderSink(std::vector<int>* order, int label) : order_(order), label_(label) {}
  void OnScheduled() override { order_->push_back(label_); }

 private:
  std::vector<int>* order_;
  int label_;
};

TEST_F(EngineTest, UnderABacklogHigherPriorityStartsFirst) {
  std::unique_ptr<Engine> e = MakeEngine(64, 4, /*max_num_seqs=*/1);
  std::vector<int> order;  // written on this (the stepping) thread only
  const int priorities[] = {0, 0, 0, 5, -2, 5};
  for (int i = 0; i < 6; ++i) {
    GenerateRequest r = Request(4, 3, static_cast<uint32_t>(i));
    r.priority = priorities[i];
    ASSERT_TRUE(e->Submit(r, std::make_shared<ScheduleOrderSink>(&order, i)).ok());
    if (i == 0) {
      ASSERT_TRUE(e->Step().ok());  // 0 runs before the others arrive
    }
  }
  RunToIdle(*e);
  EXPECT_EQ(order, (std::vector<int>{0, 3, 5, 1, 2, 4}));
}

// An engine sharing its device's tenant counters (EngineConfig::fair_share)
// and destroyed with requests live (an evicted model) takes its tenants out
// of them: the counters outlive it, and a stale tenant would pin every later
// newcomer's starting counter.
TEST_F(EngineTest, DestroyedWithLiveRequestsItLeavesTheSharedTenantCounters) {
  FairShare device;
  EngineConfig c;
  c.clock = [this] { return now_; };
  c.block_size = 4;
  c.num_kv_blocks = 64;
  c.step_scheduler.max_num_seqs = 2;
  c.step_scheduler.max_tokens_per_step = 16;
  c.step_scheduler.max_prefill_chunk = 8;
  c.fair_share = &device;
  absl::StatusOr<std::unique_ptr<Engine>> e = Engine::Create(model_.get(), tokenizer_.get(), c);
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (uint32_t i = 0; i < 4; ++i) {  // two running, two waiting
    GenerateRequest r = Request(6, 50, i);
    r.tenant = i % 2 == 0 ? "a" : "b";
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE((*e)->Submit(r, sinks.back()).ok());
  }
  ASSERT_TRUE((*e)->Step().ok());
  ASSERT_TRUE((*e)->Step().ok());
  EXPECT_EQ(device.num_active(), 2);
  e->reset();
  EXPECT_EQ(device.num_active(), 0);
  for (const auto& sink : sinks) {
    ASSERT_TRUE(sink->finished());
    EXPECT_EQ(sink->info().reason, FinishReason::kCancelled);
  }
}

// An abort with a reason that the engine's end overtakes (its model was
// unloaded: the abort, then the engine goes) keeps its reason: the request
// ends cancelled with it, not as a plain cancel (a stream then ended OK).
TEST_F(EngineTest, DestroyedWithAbortsPendingItEndsThemWithTheirReason) {
  std::unique_ptr<Engine> e = MakeEngine(64);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  std::vector<RequestId> ids;
  for (uint32_t i = 0; i < 3; ++i) {
    sinks.push_back(std::make_shared<RecordingSink>());
    absl::StatusOr<RequestId> id = e->Submit(Request(6, 50, i), sinks.back());
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
    if (i == 0) {
      ASSERT_TRUE(e->Step().ok());  // the first runs; the others wait in the inbox
    }
  }
  e->Abort(ids[0], absl::UnavailableError("model \"m\" was unloaded"));
  e->Abort(ids[1], absl::UnavailableError("model \"m\" was unloaded"));
  e.reset();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(sinks[i]->finished()) << i;
    EXPECT_EQ(sinks[i]->info().reason, FinishReason::kCancelled) << i;
  }
  EXPECT_EQ(sinks[0]->info().status.code(), absl::StatusCode::kUnavailable) << "running";
  EXPECT_EQ(sinks[1]->info().status.code(), absl::StatusCode::kUnavailable) << "in the inbox";
  EXPECT_TRUE(sinks[2]->info().status.ok()) << "never aborted";
}

TEST_F(EngineTest, AbortInEveryStateFreesBlocks) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/13);  // 48 tokens
  const int32_t total = e->Stats().kv_blocks_total;
  // queued (never stepped), mid-prefill (20-token prompt, chunk 8), decoding.
  auto queued = std::make_shared<RecordingSink>();
  auto prefill = std::make_shared<RecordingSink>();
  auto decoding = std::make_shared<RecordingSink>();
  RequestId d = *e->Submit(Request(3, 30, 1), decoding);
  ASSERT_TRUE(e->Step().ok());  // d prefilled, first token
  ASSERT_TRUE(e->Step().ok());  // d decoding
  RequestId p = *e->Submit(Request(20, 4, 2), prefill);
  ASSERT_TRUE(e->Step().ok());  // p's first chunk
  RequestId q = *e->Submit(Request(4, 4, 3), queued);
  e->Abort(q);
  e->Abort(p);
  e->Abort(d);
  e->Abort(999);  // unknown: ignored
  ASSERT_TRUE(e->Step().ok());
  for (auto& s : {queued, prefill, decoding}) {
    ASSERT_TRUE(s->finished());
    EXPECT_EQ(s->info().reason, FinishReason::kCancelled);
  }
  EngineStats st = e->Stats();
  EXPECT_EQ(st.kv_blocks_free, total);
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_GT(decoding->tokens().size(), 0u);
  e->Abort(d);  // finished: ignored
  ASSERT_TRUE(e->Step().ok());
}

// What a device executor runs for every engine each round: the aborts take
// effect between steps without a step of this engine, and the requests left
// run on as before.
TEST_F(EngineTest, ApplyAbortsFreesBlocksWithoutAStep) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/13);
  const int32_t total = e->Stats().kv_blocks_total;
  auto kept = std::make_shared<RecordingSink>();
  auto decoding = std::make_shared<RecordingSink>();
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(Request(3, 6, 1), kept).ok());
  RequestId d = *e->Submit(Request(9, 30, 2), decoding);
  ASSERT_TRUE(e->Step().ok());  // both prefilled, first tokens
  ASSERT_TRUE(e->Step().ok());
  RequestId q = *e->Submit(Request(4, 4, 3), queued);  // still in the inbox
  EXPECT_FALSE(e->ApplyAborts()) << "none queued";
  const int32_t held = total - e->Stats().kv_blocks_free;
  e->Abort(d);
  e->Abort(q);
  EXPECT_TRUE(e->ApplyAborts());
  for (auto& sink : {decoding, queued}) {
    ASSERT_TRUE(sink->finished());
    EXPECT_EQ(sink->info().reason, FinishReason::kCancelled);
  }
  EXPECT_FALSE(kept->finished());
  const EngineStats st = e->Stats();
  EXPECT_LT(total - st.kv_blocks_free, held) << "the decode's blocks are free";
  EXPECT_EQ(st.num_running, 1);
  EXPECT_EQ(st.num_waiting, 0);
  while (!kept->finished()) ASSERT_TRUE(e->Step().ok());
  EXPECT_EQ(kept->info().reason, FinishReason::kLength);
  EXPECT_EQ(e->Stats().kv_blocks_free, total);
}

TEST_F(EngineTest, AnIdAlreadyLiveIsRefusedNotScheduled) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/64);
  auto first = std::make_shared<RecordingSink>();
  auto again = std::make_shared<RecordingSink>();
  auto twin = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(RequestId{7}, Request(4, 3, 1), first).ok());
  ASSERT_TRUE(e->Step().ok());  // 7 is live
  // The same id while it runs, and twice within one step's arrivals: the
  // scheduler held the duplicate after it was destroyed (ASan: use after free).
  ASSERT_TRUE(e->Submit(RequestId{7}, Request(4, 3, 2), again).ok());
  ASSERT_TRUE(e->Submit(RequestId{8}, Request(4, 3, 3), std::make_shared<RecordingSink>()).ok());
  ASSERT_TRUE(e->Submit(RequestId{8}, Request(4, 3, 4), twin).ok());
  while (*e->Step()) {
  }
  ASSERT_TRUE(first->finished());
  EXPECT_EQ(first->info().reason, FinishReason::kLength);
  for (auto& s : {again, twin}) {
    ASSERT_TRUE(s->finished());
    EXPECT_EQ(s->info().reason, FinishReason::kError);
    EXPECT_EQ(s->info().status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(s->tokens().empty());
  }
  EXPECT_EQ(e->Stats().kv_blocks_free, e->Stats().kv_blocks_total);
}

TEST_F(EngineTest, DeadlinesEndQueuedAndRunningRequests) {
  using std::chrono::milliseconds;
  // One sequence at a time, so the second request waits in the queue.
  std::unique_ptr<Engine> e = MakeEngine(32, /*block_size=*/4, /*max_num_seqs=*/1);
  GenerateRequest late = Request(4, 4);
  late.deadline = now_;
  EXPECT_EQ(e->Submit(late, std::make_shared<RecordingSink>()).status().code(),
            absl::StatusCode::kDeadlineExceeded)
      << "a deadline at the submit time has passed";

  auto running = SubmitDue(*e, Request(4, 100), milliseconds(30));
  auto queued = SubmitDue(*e, Request(4, 100, /*seed=*/2), milliseconds(10));
  auto patient = std::make_shared<RecordingSink>();  // no deadline: outlives both
  ASSERT_TRUE(e->Submit(Request(4, 3, /*seed=*/3), patient).ok());

  ASSERT_TRUE(e->Step().ok());
  EXPECT_EQ(e->Stats().num_running, 1);
  EXPECT_EQ(e->Stats().num_waiting, 2);
  now_ += milliseconds(9);
  ASSERT_TRUE(e->Step().ok());
  EXPECT_FALSE(queued->finished()) << "1 ms before its deadline";

  now_ += milliseconds(1);  // the queued request's deadline, never scheduled
  ASSERT_TRUE(e->Step().ok());
  ASSERT_TRUE(queued->finished());
  EXPECT_EQ(queued->info().reason, FinishReason::kError);
  EXPECT_EQ(queued->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(queued->tokens().empty());
  EXPECT_EQ(queued->info().timings.queue_ms, 0) << "it was never scheduled";
  EXPECT_FALSE(running->finished());
  EXPECT_EQ(e->Stats().num_waiting, 1);

  now_ += milliseconds(20);  // the running request's deadline
  ASSERT_TRUE(e->Step().ok());
  ASSERT_TRUE(running->finished());
  EXPECT_EQ(running->info().reason, FinishReason::kError);
  EXPECT_EQ(running->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(running->tokens().empty()) << "it ran until its deadline";
  EXPECT_DOUBLE_EQ(running->info().timings.e2e_ms, 30.0) << "timings read the engine's clock";

  RunToIdle(*e);
  ASSERT_TRUE(patient->finished());
  EXPECT_EQ(patient->info().reason, FinishReason::kLength);
  EXPECT_EQ(e->Stats().kv_blocks_free, e->Stats().kv_blocks_total);
}

TEST_F(EngineTest, RequestsWhoseFirstTokenCannotMeetTheirDeadlineAreDroppedEarly) {
  using std::chrono::milliseconds;
  // 10 ms a step whatever its size, 16 tokens a step: predictions are exact.
  std::unique_ptr<Engine> e =
      MakeEngine(64, /*block_size=*/4, /*max_num_seqs=*/1, StepCost{0.010, 0});
  auto first = std::make_shared<RecordingSink>();  // 32 tokens: 2 steps
  ASSERT_TRUE(e->Submit(Request(32, 2), first).ok());
  // Behind 32: 48 tokens, 30 ms, due in 35.
  auto fits = SubmitDue(*e, Request(16, 2, /*seed=*/2), milliseconds(35));
  // Behind 48: 64 tokens, 40 ms, due in 35.
  auto hopeless = SubmitDue(*e, Request(16, 2, /*seed=*/3), milliseconds(35));
  // Behind 48 once the hopeless one went: 40 ms, due in 45.
  auto after = SubmitDue(*e, Request(16, 2, /*seed=*/4), milliseconds(45));
  EXPECT_EQ(e->Stats().PrefillTokensLeft(), 32 + 3 * 16) << "queued prompts count before a step";

  ASSERT_TRUE(e->Step().ok());
  ASSERT_TRUE(hopeless->finished()) << "dropped at the first step, not run to waste";
  EXPECT_EQ(hopeless->info().reason, FinishReason::kError);
  EXPECT_EQ(hopeless->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(hopeless->info().status.message()),
              ::testing::HasSubstr("cannot be met: its first token is predicted in 40 ms"));
  EXPECT_FALSE(fits->finished());
  EXPECT_FALSE(after->finished()) << "the dropped request no longer holds it up";
  EXPECT_EQ(e->Stats().PrefillTokensLeft(), 32 + 2 * 16 - 8)
      << "the first chunk of the first prompt is computed";
  ASSERT_TRUE(e->Stats().step_cost);
  EXPECT_EQ(e->Stats().step_cost->fixed_seconds, 0.010);
  RunToIdle(*e);
  for (const auto& sink : {first, fits, after}) {
    ASSERT_TRUE(sink->finished());
    EXPECT_EQ(sink->info().reason, FinishReason::kLength);
  }
}

// The early drop predicts as the scheduler serves: a short prompt at the
// head of the queue starts beside a long prefill, so it is kept where the
// whole prefill ahead would have dropped it; a long one behind is not.
TEST_F(EngineTest, TheEarlyDeadlineDropLetsAShortPromptStartBesideALongPrefill) {
  using std::chrono::milliseconds;
  // 10 ms a step; steps of 16 tokens, chunks of 8: a prompt of at most 8 is short.
  std::unique_ptr<Engine> e =
      MakeEngine(64, /*block_size=*/4, /*max_num_seqs=*/6, StepCost{0.010, 0});
  auto long_prompt = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(Request(64, 2), long_prompt).ok());
  ASSERT_TRUE(e->Step().ok());  // 56 of its tokens left: 4 steps
  auto short_prompt = SubmitDue(*e, Request(8, 2, /*seed=*/2), milliseconds(25));
  // Behind 56 + 8: 76 tokens, 50 ms.
  auto long_behind = SubmitDue(*e, Request(12, 2, /*seed=*/3), milliseconds(25));

  ASSERT_TRUE(e->Step().ok());
  ASSERT_TRUE(long_behind->finished());
  EXPECT_EQ(long_behind->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(short_prompt->finished()) << short_prompt->info().status;
  EXPECT_EQ(short_prompt->tokens().size(), 1u) << "its first token in the first step";
  RunToIdle(*e);
  for (const auto& sink : {long_prompt, short_prompt}) {
    ASSERT_TRUE(sink->finished());
    EXPECT_EQ(sink->info().reason, FinishReason::kLength);
  }
}

TEST_F(EngineTest, TheEarlyDeadlineDropCountsACachedPrefixAsComputed) {
  using std::chrono::milliseconds;
  // 10 ms a step of 16 tokens; one sequence at a time, so the requests
  // behind the first are still waiting (no blocks) when their deadlines are
  // judged.
  std::unique_ptr<Engine> e =
      MakeEngine(64, /*block_size=*/4, /*max_num_seqs=*/1, StepCost{0.010, 0});
  auto warm = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(Request(32, 2, /*seed=*/7), warm).ok());
  RunToIdle(*e);
  ASSERT_EQ(e->CachedPromptTokens(Request(32, 2, /*seed=*/7)), 28) << "7 whole blocks of 4";

  ASSERT_TRUE(e->Submit(Request(32, 2, /*seed=*/8), std::make_shared<RecordingSink>()).ok());
  // Behind 32 tokens: 32 + 4 left of its own = 3 steps, 30 ms, due in 35.
  // Priced whole (32 + 32) it would be 40 ms, and dropped.
  auto cached = SubmitDue(*e, Request(32, 2, /*seed=*/7), milliseconds(35));
  // Behind 36: 68 tokens, 50 ms.
  auto cold = SubmitDue(*e, Request(32, 2, /*seed=*/9), milliseconds(35));

  ASSERT_TRUE(e->Step().ok());
  ASSERT_TRUE(cold->finished());
  EXPECT_EQ(cold->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(cached->finished()) << "kept: its cached prefix is not work ahead";
  RunToIdle(*e);
  ASSERT_TRUE(cached->finished());
  EXPECT_EQ(cached->info().reason, FinishReason::kLength);
  EXPECT_EQ(cached->info().cached_prompt_tokens, 28);
}

TEST_F(EngineTest, PrefillBacklogBySharesWhatANewRequestOfEachPriorityWaitsFor) {
  // One sequence at a time, prompts in chunks of 8.
  std::unique_ptr<Engine> e = MakeEngine(64, /*block_size=*/4, /*max_num_seqs=*/1);
  const auto submit = [&](int32_t prompt, int32_t priority, uint32_t seed) {
    GenerateRequest r = Request(prompt, 2, seed);
    r.priority = priority;
    ASSERT_TRUE(e->Submit(r, std::make_shared<RecordingSink>()).ok());
  };
  submit(32, 0, 1);
  submit(16, 5, 2);
  submit(8, -1, 3);
  EngineStats s = e->Stats();  // all still queued
  EXPECT_EQ(s.PrefillTokensLeft(), 56);
  EXPECT_EQ(s.prefill_tokens_started, 0);
  EXPECT_EQ(s.prefill_tokens_waiting, (std::map<int32_t, int64_t>{{-1, 8}, {0, 32}, {5, 16}}));
  EXPECT_EQ(s.PrefillTokensAhead(0), 48) << "behind its own priority and higher";
  EXPECT_EQ(s.PrefillTokensAhead(5), 16);
  EXPECT_EQ(s.PrefillTokensAhead(6), 0) << "a higher priority goes first";
  EXPECT_EQ(s.PrefillTokensAhead(-1), 56);

  ASSERT_TRUE(e->Step().ok());  // the priority-5 request starts: 8 of its 16 computed
  s = e->Stats();
  EXPECT_EQ(s.prefill_tokens_started, 8);
  EXPECT_EQ(s.prefill_tokens_waiting, (std::map<int32_t, int64_t>{{-1, 8}, {0, 32}}));
  EXPECT_EQ(s.PrefillTokensAhead(100), 8) << "no priority goes before started work";
  EXPECT_EQ(s.PrefillTokensAhead(0), 40);
  EXPECT_EQ(s.PrefillTokensLeft(), 48);
  RunToIdle(*e);
  s = e->Stats();
  EXPECT_EQ(s.PrefillTokensLeft(), 0);
  EXPECT_EQ(s.PrefillTokensAhead(-5), 0);
}

// A short prompt with nothing queued ahead of it starts beside the running
// prefills (StepScheduler::ShortPromptReserve): it waits for two steps at
// most, its own tokens included, not for the whole prefill ahead.
TEST(EngineStatsTest, AShortPromptWaitsForTwoStepsAtMostBesideRunningPrefills) {
  StepSchedulerConfig sched;  // 512 tokens a step, chunks of 512, 64 sequences
  EngineStats s;
  s.num_running = 1;
  s.prefill_tokens_started = 6000;  // a long prompt prefilling
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 0, 512, sched), 2 * 512 - 31);
  EXPECT_EQ(s.PrefillTokensAheadOf(256, 0, 512, sched), 2 * 512 - 256) << "half a step is short";
  EXPECT_EQ(s.PrefillTokensAheadOf(257, 0, 512, sched), 6000) << "longer: behind it all";
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 0, 40, sched), 6000) << "past half a capped step";
  s.prefill_tokens_waiting[0] = 10;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 0, 512, sched), 6010) << "a prompt queued ahead goes first";
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 2 * 512 - 31) << "not ahead of a higher one";
  s.preempted_waiting = true;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 6000) << "a preempted one goes first";
  s.preempted_waiting = false;
  s.num_running = 64;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 6000) << "no room for another sequence";
  s.num_running = 1;
  s.top_prefill_priority = 2;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 6000) << "a higher prefill keeps its room";
  s.top_prefill_priority = 1;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 2 * 512 - 31);
  s.prefill_tokens_started = 100;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 100) << "never more than the backlog";
  sched.chunked_prefill = false;
  s.prefill_tokens_started = 6000;
  EXPECT_EQ(s.PrefillTokensAheadOf(31, 1, 512, sched), 6000) << "without chunking: no lane";
}

// The snapshot says what closes the short-prompt lane for a prediction: the
// highest priority of a running prefill, and a preempted sequence queued
// (a decoding one too: it goes before any new prompt).
TEST_F(EngineTest, TheSnapshotTellsWhatClosesTheShortPromptLane) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/64, /*block_size=*/4);
  GenerateRequest long_prompt = Request(24, 1, /*seed=*/1);
  long_prompt.priority = 3;
  ASSERT_TRUE(e->Submit(long_prompt, std::make_shared<RecordingSink>()).ok());
  ASSERT_TRUE(e->Step().ok());  // 8 of its 24 computed
  EXPECT_EQ(e->Stats().top_prefill_priority, 3);
  EXPECT_FALSE(e->Stats().preempted_waiting);
  RunToIdle(*e);
  EXPECT_EQ(e->Stats().top_prefill_priority, std::numeric_limits<int32_t>::min());

  // Two decodes that outgrow six blocks: the newer is preempted and waits.
  e = MakeEngine(/*num_blocks=*/7, /*block_size=*/4);
  ASSERT_TRUE(e->Submit(Request(4, 12, /*seed=*/2), std::make_shared<RecordingSink>()).ok());
  ASSERT_TRUE(e->Submit(Request(4, 12, /*seed=*/3), std::make_shared<RecordingSink>()).ok());
  bool seen = false;
  for (int step = 0; step < 40 && !seen; ++step) {
    ASSERT_TRUE(e->Step().ok());
    const EngineStats s = e->Stats();
    seen = s.num_preemptions > 0 && s.num_waiting > 0;
    if (seen) {
      EXPECT_TRUE(s.preempted_waiting) << "a preempted decode is queued";
    }
  }
  EXPECT_TRUE(seen) << "the cache is small enough to preempt";
  RunToIdle(*e);
  EXPECT_FALSE(e->Stats().preempted_waiting);
}

TEST_F(EngineTest, PrefillBacklogLeavesOutWhatThePrefixCacheHolds) {
  // One sequence at a time, prompts in chunks of 8, blocks of 4.
  std::unique_ptr<Engine> e = MakeEngine(64, /*block_size=*/4, /*max_num_seqs=*/1);
  ASSERT_TRUE(e->Submit(Request(32, 2, /*seed=*/7), std::make_shared<RecordingSink>()).ok());
  RunToIdle(*e);
  ASSERT_EQ(e->CachedPromptTokens(Request(32, 2, /*seed=*/7)), 28) << "7 whole blocks of 4";

  ASSERT_TRUE(e->Submit(Request(16, 2, /*seed=*/1), std::make_shared<RecordingSink>()).ok());
  auto cached = std::make_shared<RecordingSink>();
  ASSERT_TRUE(e->Submit(Request(32, 2, /*seed=*/7), cached).ok());
  EngineStats s = e->Stats();  // both in the inbox
  EXPECT_EQ(s.prefill_tokens_waiting, (std::map<int32_t, int64_t>{{0, 16 + 4}}))
      << "the cached prompt adds only its 4 uncached tokens";

  ASSERT_TRUE(e->Step().ok());  // the cold one starts; the cached one waits, holding no blocks
  s = e->Stats();
  EXPECT_EQ(s.prefill_tokens_started, 8);
  EXPECT_EQ(s.prefill_tokens_waiting, (std::map<int32_t, int64_t>{{0, 4}}));
  RunToIdle(*e);
  ASSERT_TRUE(cached->finished());
  EXPECT_EQ(cached->info().cached_prompt_tokens, 28) << "the prediction's assumption held";
  EXPECT_EQ(e->Stats().PrefillTokensLeft(), 0);
}

TEST_F(EngineTest, CreateRejectsConfigurationsThatCannotRun) {
  auto code_and_message = [&](const EngineConfig& c) {
    absl::StatusOr<std::unique_ptr<Engine>> e = Engine::Create(model_.get(), tokenizer_.get(), c);
    return std::make_pair(e.status().code(), std::string(e.status().message()));
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EngineConfig ok;
  ok.num_kv_blocks = 8;
  ASSERT_EQ(code_and_message(ok).first, absl::StatusCode::kOk);

  struct Case {
    const char* what;
    std::function<void(EngineConfig&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"block size 0", [](EngineConfig& c) { c.block_size = 0; }, "block size 0"},
      {"block size 1025", [](EngineConfig& c) { c.block_size = 1025; }, "[1, 1024]"},
      {"no sequences", [](EngineConfig& c) { c.step_scheduler.max_num_seqs = 0; },
       "must be positive"},
      {"no step budget", [](EngineConfig& c) { c.step_scheduler.max_tokens_per_step = 0; },
       "must be positive"},
      {"no prefill chunk", [](EngineConfig& c) { c.step_scheduler.max_prefill_chunk = -1; },
       "must be positive"},
      {"budget below the sequence cap",
       [](EngineConfig& c) {
         c.step_scheduler.max_num_seqs = 8;
         c.step_scheduler.max_tokens_per_step = 7;
       },
       "at least max_num_seqs"},
      {"one block", [](EngineConfig& c) { c.num_kv_blocks = 1; }, "at least 2 are needed"},
      {"a byte budget under 2 blocks",
       [](EngineConfig& c) {
         c.num_kv_blocks = 0;
         c.kv_cache_bytes = 1;
       },
       "at least 2 are needed"},
      {"more than 2^30 tokens",
       [](EngineConfig& c) {
         c.block_size = 1024;
         c.num_kv_blocks = (1 << 20) + 1;
       },
       "more than 2^30 tokens"},
  };
  for (const Case& c : cases) {
    EngineConfig config = ok;
    c.edit(config);
    auto [code, message] = code_and_message(config);
    EXPECT_EQ(code, kInvalid) << c.what;
    EXPECT_THAT(message, ::testing::HasSubstr(c.message)) << c.what;
  }
  EXPECT_EQ(Engine::Create(nullptr, tokenizer_.get(), ok).status().code(), kInvalid);
  EXPECT_EQ(Engine::Create(model_.get(), nullptr, ok).status().code(), kInvalid);
}

TEST_F(EngineTest, FailingSinkAbortsItsRequest) {
  std::unique_ptr<Engine> e = MakeEngine(32);
  auto sink = std::make_shared<RecordingSink>(/*fail_after_deltas=*/3);
  ASSERT_TRUE(e->Submit(Request(5, 20), sink).ok());
  RunToIdle(*e);
  ASSERT_TRUE(sink->finished());
  EXPECT_EQ(sink->info().reason, FinishReason::kCancelled);
  EXPECT_EQ(sink->tokens().size(), 3u);
  EXPECT_EQ(e->Stats().kv_blocks_free, e->Stats().kv_blocks_total);
}

// Random arrivals, lengths, sampling and aborts on a pool small enough that
// preemption is routine. Afterwards every block is free and every request that
// was not aborted finished normally.
void RunRandomWorkload(EngineTest* t, Engine& e, uint32_t seed, int num_requests,
                       std::vector<std::shared_ptr<RecordingSink>>* sinks,
                       std::vector<bool>* aborted) {
  std::mt19937 rng(seed);
  std::vector<RequestId> ids;
  int submitted = 0;
  for (int step = 0; step < 20000; ++step) {
    while (submitted < num_requests && rng() % 3 == 0) {
      GenerateRequest r;
      const int32_t len = 1 + rng() % 24;
      for (int32_t i = 0; i < len; ++i) r.prompt_ids.push_back(rng() % 272);
      r.sampling.max_tokens = 1 + rng() % 20;
      r.sampling.temperature = rng() % 2 ? 0.f : 1.f;
      r.sampling.seed = rng();
      r.sampling.ignore_eos = rng() % 2;
      r.tenant.assign(
          1, rng() % 2 ? 'a' : 'b');  // GCC 12 -Wrestrict misreads the assignment of a literal
      sinks->push_back(std::make_shared<RecordingSink>());
      aborted->push_back(false);
      absl::StatusOr<RequestId> id = e.Submit(std::move(r), sinks->back());
      ASSERT_TRUE(id.ok()) << id.status();
      ids.push_back(*id);
      ++submitted;
    }
    if (!ids.empty() && rng() % 10 == 0) {
      const size_t victim = rng() % ids.size();
      (*aborted)[victim] = true;
      e.Abort(ids[victim]);
    }
    absl::StatusOr<bool> more = e.Step();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more && submitted == num_requests) return;
  }
  FAIL() << "workload did not drain (deadlock?)";
}

TEST_F(EngineTest, RandomizedWorkloadDrainsAndFreesEverything) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/12);  // 44 tokens for up to 6 seqs
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    std::vector<bool> aborted;
    RunRandomWorkload(this, *e, seed, 60, &sinks, &aborted);
    EngineStats st = e->Stats();
    EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
    EXPECT_EQ(st.num_running, 0);
    EXPECT_EQ(st.num_waiting, 0);
    EXPECT_GT(st.num_preemptions, 0) << "the pool should be small enough to preempt";
    for (size_t i = 0; i < sinks.size(); ++i) {
      ASSERT_TRUE(sinks[i]->finished()) << i;
      const FinishInfo info = sinks[i]->info();
      if (!aborted[i]) {
        EXPECT_NE(info.reason, FinishReason::kCancelled) << i;
        EXPECT_NE(info.reason, FinishReason::kError) << i << info.status;
      }
      EXPECT_LE(info.completion_tokens, 20);
      EXPECT_EQ(static_cast<int32_t>(sinks[i]->tokens().size()), info.completion_tokens);
    }
  }
}

TEST_F(EngineTest, RunLoopWithConcurrentSubmittersAndAborters) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/12);
  e->Start();
  std::mutex mu;
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  std::vector<RequestId> ids;
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 15; ++i) {
        GenerateRequest r;
        const int32_t len = 1 + rng() % 20;
        for (int32_t j = 0; j < len; ++j) r.prompt_ids.push_back(rng() % 256);
        r.sampling.max_tokens = 1 + rng() % 12;
        r.sampling.temperature = 0;
        auto sink = std::make_shared<RecordingSink>();
        absl::StatusOr<RequestId> id = e->Submit(std::move(r), sink);
        ASSERT_TRUE(id.ok());
        std::lock_guard<std::mutex> lock(mu);
        sinks.push_back(sink);
        ids.push_back(*id);
        if (rng() % 4 == 0) e->Abort(ids[rng() % ids.size()]);
        (void)e->Stats();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // Drain: the loop keeps stepping until every request finished.
  EXPECT_TRUE(cohost::testing::WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return std::all_of(sinks.begin(), sinks.end(), [](auto& s) { return s->finished(); });
      },
      std::chrono::minutes(2)));
  e->Stop();
  for (auto& s : sinks) EXPECT_TRUE(s->finished());
  EngineStats st = e->Stats();
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
}

// A completion continues its prompt's text: the first generated token of a
// SentencePiece model keeps its space (" Paris"; it was dropped, as at the
// start of a text). A prompt of control tokens alone (BOS) starts the text.
TEST(LiveRequestTest, ACompletionAfterPromptTextKeepsItsLeadingSpace) {
  const TokenizerSpec s = cohost::testing::ParisSentencePieceSpec();
  const std::unique_ptr<Tokenizer> t = Tokenizer::Create(s).value();
  GenerateRequest after_text;
  after_text.prompt_ids = {1, 3};  // "<s> is"
  LiveRequest continuing(1, after_text, nullptr, *t, 0, Clock::now());
  EXPECT_EQ(continuing.detok.Push(2), " Paris");
  GenerateRequest bos_only;
  bos_only.prompt_ids = {1};
  LiveRequest starting(2, bos_only, nullptr, *t, 0, Clock::now());
  EXPECT_EQ(starting.detok.Push(2), "Paris");
}

}  // namespace
}  // namespace cohost::runtime
