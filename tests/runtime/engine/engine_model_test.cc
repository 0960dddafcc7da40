// The Engine on the default model: batching, preemption and prefix caching
// must not change greedy output. The one-sequence Generator is the oracle.

#include <memory>

#include "gtest/gtest.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/loaded_model.h"
#include "tests/support/default_model.h"
#include "tests/support/generator.h"
#include "tests/support/run_to_idle.h"

namespace cohost::runtime {
namespace {

class CollectingSink : public TokenSink {
 public:
  bool OnDelta(const TokenDelta& d) override {
    tokens.insert(tokens.end(), d.token_ids.begin(), d.token_ids.end());
    text += d.text;
    return true;
  }
  void OnFinish(const FinishInfo& i) override {
    info = i;
    finished = true;
  }
  std::vector<int32_t> tokens;
  std::string text;
  FinishInfo info;
  bool finished = false;
};

const char* const kPrompts[8] = {
    "The capital of France is",
    "def add(a, b):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "To make a cup of tea, first",
    "1, 2, 3, 4, 5,",
    "Water boils at a temperature of",
    "The quick brown fox",
};

class EngineModelTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::DefaultModel*> shared = testing::SharedDefaultModel();
    ASSERT_TRUE(shared.ok()) << shared.status();
    backend_ = (*shared)->backend.get();
    model_ = &(*shared)->model;
  }

  static std::vector<int32_t> Ids(const std::string& text) {
    return model_->tokenizer->Encode(text).value();
  }
  static SamplingParams Greedy(int32_t n) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = n;
    p.ignore_eos = true;
    return p;
  }
  static std::vector<int32_t> Alone(const std::vector<int32_t>& ids, int32_t n) {
    Generator g(model_->model.get(), model_->tokenizer.get());
    absl::StatusOr<GenerationResult> r = g.Generate(ids, Greedy(n));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->generated_ids : std::vector<int32_t>{};
  }
  static std::unique_ptr<Engine> MakeEngine(int32_t num_blocks, bool prefix_caching = true) {
    EngineConfig c;
    c.num_kv_blocks = num_blocks;
    c.enable_prefix_caching = prefix_caching;
    c.step_scheduler.max_tokens_per_step = 64;
    c.step_scheduler.max_num_seqs = 8;
    c.step_scheduler.max_prefill_chunk = 32;
    return Engine::Create(model_->model.get(), model_->tokenizer.get(), c).value();
  }
  static void RunToIdle(Engine& e) { testing::RunToIdle(e); }

  static kernels::Backend* backend_;
  static LoadedModel* model_;
};
kernels::Backend* EngineModelTest::backend_ = nullptr;
LoadedModel* EngineModelTest::model_ = nullptr;

constexpr int32_t kTokens = 16;

void ExpectBatchedEqualsAlone(Engine& e, int64_t* preemptions) {
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const char* p : kPrompts) {
    GenerateRequest r;
    r.prompt_ids = EngineModelTest::Ids(p);
    r.sampling.temperature = 0;
    r.sampling.max_tokens = kTokens;
    r.sampling.ignore_eos = true;
    sinks.push_back(std::make_shared<CollectingSink>());
    ASSERT_TRUE(e.Submit(std::move(r), sinks.back()).ok());
  }
  EngineModelTest::RunToIdle(e);
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE(kPrompts[i]);
    ASSERT_TRUE(sinks[i]->finished);
    EXPECT_EQ(sinks[i]->info.reason, FinishReason::kLength);
    EXPECT_EQ(sinks[i]->tokens, EngineModelTest::Alone(EngineModelTest::Ids(kPrompts[i]), kTokens));
  }
  EngineStats st = e.Stats();
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  *preemptions = st.num_preemptions;
}

TEST_F(EngineModelTest, EightPromptsTogetherMatchEachAlone) {
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/128);
  int64_t preemptions = -1;
  ExpectBatchedEqualsAlone(*e, &preemptions);
  EXPECT_EQ(preemptions, 0);
}

TEST_F(EngineModelTest, EightPromptsMatchEachAloneUnderPreemption) {
  // 8 sequences of up to ~28 tokens need 16 blocks of 16 at the end; 10
  // usable blocks force preemption and recompute.
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/11);
  int64_t preemptions = -1;
  ExpectBatchedEqualsAlone(*e, &preemptions);
  EXPECT_GT(preemptions, 0);
}

// Sampled requests drawn together (on the host, the rows split over the
// backend's threads: HostParallelFor) draw what each draws alone: every
// request keeps its own sampler, logits row and logprobs.
TEST_F(EngineModelTest, EightSampledPromptsTogetherMatchEachAlone) {
  const auto request = [](int i) {
    GenerateRequest r;
    r.prompt_ids = Ids(kPrompts[i]);
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = i % 2 == 0 ? 0.9f : 1.f;
    r.sampling.top_k = i % 3 == 0 ? 40 : 0;
    r.sampling.seed = 100 + i;
    if (i % 4 == 1) r.sampling.logprobs = 3;
    r.sampling.max_tokens = kTokens;
    r.sampling.ignore_eos = true;
    return r;
  };
  struct Drawn {
    std::vector<int32_t> tokens;
    std::vector<float> chosen_logprobs;
  };
  class Sink : public CollectingSink {
   public:
    bool OnDelta(const TokenDelta& d) override {
      for (const TokenLogprobs& l : d.logprobs) chosen.push_back(l.chosen.logprob);
      return CollectingSink::OnDelta(d);
    }
    std::vector<float> chosen;
  };
  const auto run = [&](const std::vector<int>& which) {
    std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/128);
    std::vector<std::shared_ptr<Sink>> sinks;
    for (int i : which) {
      sinks.push_back(std::make_shared<Sink>());
      EXPECT_TRUE(e->Submit(request(i), sinks.back()).ok());
    }
    RunToIdle(*e);
    std::vector<Drawn> out;
    for (const auto& sink : sinks) {
      EXPECT_TRUE(sink->finished);
      out.push_back({sink->tokens, sink->chosen});
    }
    return out;
  };
  const std::vector<Drawn> together = run({0, 1, 2, 3, 4, 5, 6, 7});
  ASSERT_EQ(together.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE(kPrompts[i]);
    const std::vector<Drawn> alone = run({i});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(together[i].tokens.size(), static_cast<size_t>(kTokens));
    EXPECT_EQ(together[i].tokens, alone[0].tokens);
    // The logprobs within rounding: this model's weights are dequantized to
    // fp32 and multiplied by OpenBLAS, whose sums' order follows the batch.
    ASSERT_EQ(together[i].chosen_logprobs.size(), i % 4 == 1 ? static_cast<size_t>(kTokens) : 0u);
    ASSERT_EQ(alone[0].chosen_logprobs.size(), together[i].chosen_logprobs.size());
    for (size_t t = 0; t < alone[0].chosen_logprobs.size(); ++t) {
      EXPECT_NEAR(together[i].chosen_logprobs[t], alone[0].chosen_logprobs[t], 1e-4) << t;
    }
  }
}

// A token goes out with its text: while a possible stop string's start is
// held back its token waits too, and the stop string's tokens, like its
// text, never go (nor their logprobs). A token whose text starts before the
// stop string does.
TEST_F(EngineModelTest, AStopStringsTokensAreNotSentAsItsTextIsNot) {
  const std::vector<int32_t> prompt = Ids("1, 2, 3, 4, 5,");
  const std::vector<int32_t> full = Alone(prompt, kTokens);
  ASSERT_EQ(full.size(), static_cast<size_t>(kTokens));
  const auto decode = [](const std::vector<int32_t>& ids, size_t n) {
    return model_->tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.begin() + n));
  };
  const std::string text = decode(full, full.size());
  // The stop string: the text of generated tokens 4 and 5, found first there
  // (two tokens in, so that a token is held back and then dropped).
  const std::string before = decode(full, 4);
  const std::string stop = decode(full, 6).substr(before.size());
  ASSERT_FALSE(stop.empty());
  const size_t at = text.find(stop);
  ASSERT_EQ(at, before.size()) << text;

  class Sink : public CollectingSink {
   public:
    bool OnDelta(const TokenDelta& d) override {
      EXPECT_FALSE(d.token_ids.empty() && d.text.empty()) << "an empty delta";
      logprobs += d.logprobs.size();
      return CollectingSink::OnDelta(d);
    }
    size_t logprobs = 0;
  };
  std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/128);
  GenerateRequest r;
  r.prompt_ids = prompt;
  r.sampling = Greedy(kTokens);
  r.sampling.stop_strings = {stop};
  r.sampling.logprobs = 0;
  auto sink = std::make_shared<Sink>();
  ASSERT_TRUE(e->Submit(std::move(r), sink).ok());
  RunToIdle(*e);
  ASSERT_TRUE(sink->finished);
  EXPECT_EQ(sink->info.reason, FinishReason::kStopString);
  EXPECT_EQ(sink->text, text.substr(0, at));
  EXPECT_EQ(sink->tokens, std::vector<int32_t>(full.begin(), full.begin() + 4));
  EXPECT_EQ(sink->logprobs, sink->tokens.size()) << "one per token sent";
  EXPECT_EQ(sink->info.completion_tokens, 6) << "the usage counts what was generated";
}

TEST_F(EngineModelTest, SharedPrefixIsComputedOnceAndChangesNothing) {
  std::string prefix = "You are a careful assistant. Here are the rules of the game:";
  for (int i = 1; prefix.size() < 1200; ++i) {
    prefix += " Rule " + std::to_string(i) + ": every player takes turns and keeps score.";
  }
  std::vector<int32_t> shared = Ids(prefix);
  shared.resize(200);
  std::vector<int32_t> first = shared, second = shared;
  for (int32_t t : Ids(" Question one: who starts?")) first.push_back(t);
  for (int32_t t : Ids(" Question two: how does the game end?")) second.push_back(t);

  std::vector<int32_t> outputs[2];
  for (bool caching : {true, false}) {
    std::unique_ptr<Engine> e = MakeEngine(/*num_blocks=*/64, caching);
    auto a = std::make_shared<CollectingSink>();
    GenerateRequest ra;
    ra.prompt_ids = first;
    ra.sampling = Greedy(8);
    ASSERT_TRUE(e->Submit(ra, a).ok());
    RunToIdle(*e);
    const int64_t computed_before = e->Stats().num_tokens_computed;

    auto b = std::make_shared<CollectingSink>();
    GenerateRequest rb;
    rb.prompt_ids = second;
    rb.sampling = Greedy(8);
    ASSERT_TRUE(e->Submit(rb, b).ok());
    RunToIdle(*e);
    const int64_t computed = e->Stats().num_tokens_computed - computed_before;
    const int32_t cached = (200 / 16) * 16;  // full blocks of the shared prefix
    if (caching) {
      EXPECT_EQ(b->info.cached_prompt_tokens, cached);
      // Suffix of the prompt plus one token per decode step after the first.
      EXPECT_EQ(computed, static_cast<int64_t>(second.size()) - cached + 7);
      EXPECT_GT(e->Stats().prefix_cache_hits, 0);
    } else {
      EXPECT_EQ(b->info.cached_prompt_tokens, 0);
      EXPECT_EQ(computed, static_cast<int64_t>(second.size()) + 7);
    }
    outputs[caching ? 0 : 1] = b->tokens;
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], Alone(second, 8));
}

}  // namespace
}  // namespace cohost::runtime
