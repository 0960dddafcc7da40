// The continuous-batching engine under what clients do to it: the input is a
// script of submits (prompts over a few tokens, so that prefixes are shared;
// greedy or seeded draws, penalties, stop ids and strings, logprobs, JSON
// mode, priorities, tenants), aborts, consumers that go away, and steps, on
// the tiny model with a KV pool small enough that sequences are preempted.
// The engine's contract:
//   - every request it takes finishes exactly once, with nothing after;
//     within max_tokens; a step never fails;
//   - once idle, no sequence is left and every KV block is free again (none
//     leaked by an abort, a preemption or the prefix cache);
//   - a greedy request's tokens (one finished by length or stop, whose
//     consumer stayed) are those it gets alone on a fresh engine: a batch,
//     preemption or a cached prefix changes nothing, as
//     EngineTest.GreedyOutputDoesNotDependOnBatching holds on the same model
//     (the CPU kernels give a row the same logits whatever shares its batch;
//     were a row's sums ever ordered by its batch, a near tie could flip, and
//     both would say so).

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "runtime/engine/engine.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/support/tiny_model.h"

namespace cohost::fuzz {
namespace {

using runtime::Engine;
using runtime::FinishInfo;
using runtime::FinishReason;
using runtime::GenerateRequest;
using runtime::TokenDelta;

// The input, read a byte at a time (zeros past its end).
class Script {
 public:
  Script(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }
  uint8_t Next() { return at_ < size_ ? data_[at_++] : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

struct Sink : runtime::TokenSink {
  int stop_after = -1;  // deltas taken before the consumer goes (-1: never)
  std::vector<int32_t> tokens;
  int deltas = 0;
  int finishes = 0;
  FinishInfo info;
  bool OnDelta(const TokenDelta& delta) override {
    FUZZ_CHECK(finishes == 0, "a delta after the finish");
    tokens.insert(tokens.end(), delta.token_ids.begin(), delta.token_ids.end());
    return stop_after < 0 || ++deltas <= stop_after;
  }
  void OnFinish(const FinishInfo& finish) override {
    ++finishes;
    info = finish;
  }
};

struct World {
  std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend(1);
  std::unique_ptr<runtime::Model> model =
      runtime::Model::Create(runtime::testing::MakeTinyModelFile(), backend.get()).value();
  std::unique_ptr<runtime::Tokenizer> tokenizer =
      runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec()).value();
};

const World& TheWorld() {
  static const World* const world = new World;
  return *world;
}

std::unique_ptr<Engine> MakeEngine(int32_t num_blocks, int32_t max_seqs, int32_t step_tokens) {
  runtime::EngineConfig c;
  c.block_size = 4;
  c.num_kv_blocks = num_blocks;
  c.step_scheduler.max_num_seqs = max_seqs;
  c.step_scheduler.max_tokens_per_step = step_tokens;
  const World& w = TheWorld();
  absl::StatusOr<std::unique_ptr<Engine>> e = Engine::Create(w.model.get(), w.tokenizer.get(), c);
  FUZZ_CHECK(e.ok(), "%s", e.status().ToString().c_str());
  return *std::move(e);
}

GenerateRequest MakeRequest(Script& s) {
  GenerateRequest r;
  const int length = 1 + s.Next() % 24;
  for (int i = 0; i < length; ++i) r.prompt_ids.push_back('a' + s.Next() % 4);
  runtime::SamplingParams& p = r.sampling;
  const uint8_t knobs = s.Next();
  p.max_tokens = 1 + s.Next() % 12;
  p.temperature = knobs & 1 ? 0.8f : 0.f;
  p.seed = s.Next();
  if (knobs & 2) p.repetition_penalty = 1.3f;
  if (knobs & 4) p.stop_token_ids = {'a' + s.Next() % 8};
  if (knobs & 8) p.stop_strings.push_back({static_cast<char>('a' + s.Next() % 8)});
  if (knobs & 16) p.logprobs = s.Next() % 3;
  if (knobs & 32) p.response_format = runtime::ResponseFormat::kJsonObject;
  if (knobs & 64) p.ignore_eos = true;
  if (p.response_format != runtime::ResponseFormat::kText) p.ignore_eos = false;
  r.priority = s.Next() % 3;
  r.tenant.push_back(knobs & 128 ? 'b' : 'a');
  return r;
}

// Steps `e` until it is idle; a step never fails, and work ends.
void RunToIdle(Engine& e) {
  for (int i = 0; i < 5000; ++i) {
    absl::StatusOr<bool> more = e.Step();
    FUZZ_CHECK(more.ok(), "a step failed: %s", more.status().ToString().c_str());
    if (!*more) return;
  }
  FUZZ_CHECK(false, "still busy after 5000 steps");
}

struct Submitted {
  runtime::RequestId id;
  GenerateRequest request;
  std::shared_ptr<Sink> sink;
};

void Run(const uint8_t* data, size_t size) {
  Script s(data, size);
  const int32_t num_blocks = 8 + s.Next() % 24;
  std::unique_ptr<Engine> engine = MakeEngine(num_blocks, 1 + s.Next() % 6, 8 + s.Next() % 40);
  std::vector<Submitted> submitted;
  std::set<runtime::RequestId> aborted;
  for (int op = 0; op < 64 && !s.done(); ++op) {
    const uint8_t kind = s.Next() % 8;
    if (kind < 3) {
      auto sink = std::make_shared<Sink>();
      if (s.Next() % 8 == 0) sink->stop_after = s.Next() % 4;
      GenerateRequest request = MakeRequest(s);
      absl::StatusOr<runtime::RequestId> id = engine->Submit(request, sink);
      if (!id.ok()) {  // too long for the pool or the context: the client's error
        FUZZ_CHECK(absl::IsInvalidArgument(id.status()), "%s", id.status().ToString().c_str());
        FUZZ_CHECK(sink->finishes == 0, "a refused request finished");
        continue;
      }
      submitted.push_back({*id, std::move(request), std::move(sink)});
    } else if (kind == 3 && !submitted.empty()) {
      const Submitted& victim = submitted[s.Next() % submitted.size()];
      engine->Abort(victim.id);
      aborted.insert(victim.id);
    } else {
      for (int steps = 1 + s.Next() % 4; steps > 0; --steps) {
        absl::StatusOr<bool> more = engine->Step();
        FUZZ_CHECK(more.ok(), "a step failed: %s", more.status().ToString().c_str());
      }
    }
  }
  RunToIdle(*engine);
  const runtime::EngineStats stats = engine->Stats();
  FUZZ_CHECK(stats.num_running == 0 && stats.num_waiting == 0, "idle with %d running, %d waiting",
             stats.num_running, stats.num_waiting);
  FUZZ_CHECK(stats.kv_blocks_free == stats.kv_blocks_total, "idle with %d of %d blocks free",
             stats.kv_blocks_free, stats.kv_blocks_total);
  for (const Submitted& r : submitted) {
    FUZZ_CHECK(r.sink->finishes == 1, "request %lld finished %d times",
               static_cast<long long>(r.id), r.sink->finishes);
    FUZZ_CHECK(static_cast<int>(r.sink->tokens.size()) <= r.request.sampling.max_tokens,
               "%zu tokens past max_tokens %d", r.sink->tokens.size(),
               r.request.sampling.max_tokens);
    FUZZ_CHECK(r.sink->info.reason != FinishReason::kError, "request failed: %s",
               r.sink->info.status.ToString().c_str());
  }
  // Greedy requests again, each alone on a fresh engine with room for it.
  for (const Submitted& r : submitted) {
    const bool whole =
        r.sink->info.reason == FinishReason::kLength || r.sink->info.reason == FinishReason::kStop;
    if (r.request.sampling.temperature != 0.f || !whole || r.sink->stop_after >= 0 ||
        aborted.count(r.id) > 0) {
      continue;
    }
    std::unique_ptr<Engine> alone = MakeEngine(num_blocks, 1, 64);
    auto sink = std::make_shared<Sink>();
    FUZZ_CHECK(alone->Submit(r.request, sink).ok(), "alone, refused");
    RunToIdle(*alone);
    FUZZ_CHECK(sink->tokens == r.sink->tokens, "request %lld: %zu tokens batched, %zu alone",
               static_cast<long long>(r.id), r.sink->tokens.size(), sink->tokens.size());
  }
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)cohost::fuzz::TheWorld();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::fuzz::Run(data, size);
  return 0;
}
