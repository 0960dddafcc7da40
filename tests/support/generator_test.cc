// Generation loop on the default model: stop conditions, streaming, seeds and
// input validation.

#include "tests/support/generator.h"

#include <memory>

#include "gtest/gtest.h"
#include "runtime/engine/loaded_model.h"
#include "tests/support/default_model.h"

namespace cohost::runtime {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::DefaultModel*> shared = testing::SharedDefaultModel();
    ASSERT_TRUE(shared.ok()) << shared.status();
    backend_ = (*shared)->backend.get();
    model_ = &(*shared)->model;
  }
  std::vector<int32_t> Ids(const std::string& text) {
    absl::StatusOr<std::vector<int32_t>> ids = model_->tokenizer->Encode(text);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.value_or(std::vector<int32_t>{});
  }
  static SamplingParams Greedy(int32_t max_tokens) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
  }
  Generator gen() { return Generator(model_->model.get(), model_->tokenizer.get()); }

  static kernels::Backend* backend_;
  static LoadedModel* model_;
};
kernels::Backend* GeneratorTest::backend_ = nullptr;
LoadedModel* GeneratorTest::model_ = nullptr;

TEST_F(GeneratorTest, StreamedDeltasConcatenateToTheDecodedText) {
  std::string streamed;
  int deltas = 0;
  absl::StatusOr<GenerationResult> r =
      gen().Generate(Ids("The capital of France is"), Greedy(16), [&](std::string_view d) {
        streamed += d;
        ++deltas;
        return true;
      });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(streamed, r->text);
  EXPECT_GT(deltas, 1);
  EXPECT_EQ(r->text, model_->tokenizer->Decode(r->generated_ids));
  EXPECT_GT(r->ttft_ms, 0);
}

TEST_F(GeneratorTest, StopStringEndsGenerationAndIsNotEmitted) {
  absl::StatusOr<GenerationResult> full =
      gen().Generate(Ids("The capital of France is"), Greedy(8));
  ASSERT_TRUE(full.ok());
  ASSERT_NE(full->text.find("Paris"), std::string::npos) << full->text;
  SamplingParams p = Greedy(8);
  p.stop_strings = {"ris"};
  absl::StatusOr<GenerationResult> r = gen().Generate(Ids("The capital of France is"), p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStopString);
  EXPECT_EQ(r->text, full->text.substr(0, full->text.find("ris")));
}

TEST_F(GeneratorTest, StopTokenIdAndMaxTokens) {
  absl::StatusOr<GenerationResult> full =
      gen().Generate(Ids("The capital of France is"), Greedy(6));
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->finish_reason, FinishReason::kLength);
  EXPECT_EQ(full->generated_ids.size(), 6u);
  SamplingParams p = Greedy(6);
  p.stop_token_ids = {full->generated_ids[2]};
  absl::StatusOr<GenerationResult> r = gen().Generate(Ids("The capital of France is"), p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_EQ(r->generated_ids,
            std::vector<int32_t>(full->generated_ids.begin(), full->generated_ids.begin() + 3));
}

TEST_F(GeneratorTest, ChatTurnEndsWithEndOfTurnToken) {
  absl::StatusOr<std::string> chat = model_->tokenizer->ApplyChatTemplate({{"user", "Say hello."}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  absl::StatusOr<GenerationResult> r = gen().Generate(Ids(*chat), Greedy(64));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_TRUE(model_->tokenizer->IsEndOfGeneration(r->generated_ids.back()));
  EXPECT_EQ(r->text.find("<|im_end|>"), std::string::npos);
}

TEST_F(GeneratorTest, SameSeedSameOutputDifferentSeedDifferentOutput) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.max_tokens = 24;
  p.ignore_eos = true;
  p.seed = 42;
  auto a = gen().Generate(Ids("Once upon a time"), p);
  auto b = gen().Generate(Ids("Once upon a time"), p);
  p.seed = 43;
  auto c = gen().Generate(Ids("Once upon a time"), p);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->generated_ids, b->generated_ids);
  EXPECT_NE(a->generated_ids, c->generated_ids);
}

TEST_F(GeneratorTest, SinkThatStopsCancelsTheRequest) {
  int calls = 0;
  absl::StatusOr<GenerationResult> r = gen().Generate(
      Ids("Once upon a time"), Greedy(32), [&](std::string_view) { return ++calls < 2; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

TEST_F(GeneratorTest, RejectsBadInput) {
  Generator g = gen();
  EXPECT_EQ(g.Generate({}, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.Generate(std::vector<int32_t>{1, -1}, Greedy(4)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      g.Generate(std::vector<int32_t>{1, model_->config().vocab_size}, Greedy(4)).status().code(),
      absl::StatusCode::kInvalidArgument);
  SamplingParams too_long = Greedy(model_->config().max_position_embeddings);
  EXPECT_EQ(g.Generate(Ids("hi"), too_long).status().code(), absl::StatusCode::kInvalidArgument);
  SamplingParams nan = Greedy(4);
  nan.top_p = std::nanf("");
  EXPECT_EQ(g.Generate(Ids("hi"), nan).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohost::runtime
