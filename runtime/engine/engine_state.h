// Engine internals shared by engine.cc (the thread-safe front) and
// engine_step.cc (one step). Not part of the public API.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "cohost/kernels/sample_spec.h"
#include "runtime/batching/kv_cache_manager.h"
#include "runtime/batching/prefix_index.h"
#include "runtime/batching/step_cost.h"
#include "runtime/batching/step_scheduler.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/json_constraint.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/stop_checker.h"
#include "runtime/tokenizer/detokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {

// A tenant's prefix-cache salt (and fair-share key): tenants never share
// cached blocks; the empty tenant is 0.
inline uint64_t TenantSalt(const std::string& tenant) {
  return tenant.empty() ? 0 : absl::Hash<std::string>{}(tenant) | 1;
}

// One live request: scheduler state plus everything needed to turn its logits
// into streamed text.
struct LiveRequest {
  LiveRequest(RequestId id, GenerateRequest req, std::shared_ptr<TokenSink> s,
              const Tokenizer& tokenizer, uint64_t default_seed, Clock::time_point now)
      : request(std::move(req)),
        sink(std::move(s)),
        sampler(request.sampling, default_seed),
        // The completion continues the prompt's text, if it has any.
        detok(tokenizer, /*skip_special=*/true,
              std::all_of(request.prompt_ids.begin(), request.prompt_ids.end(),
                          [&](int32_t id) { return tokenizer.IsControl(id); })),
        stops(request.sampling.stop_strings),
        submitted(now) {
    json_schema = request.sampling.OutputSchema();
    if (json_schema) json.emplace(*json_schema);
    json_phase = request.sampling.json_phase;
    seq.id = id;
    seq.tokens = request.prompt_ids;
    seq.num_prompt_tokens = static_cast<int32_t>(request.prompt_ids.size());
    seq.max_tokens = request.sampling.max_tokens;
    seq.priority = request.priority;
    seq.cache_salt = TenantSalt(request.tenant);
    seq.tenant_key = seq.cache_salt;
    seq.tenant_weight = request.tenant_weight;
  }

  // Its next token is the argmax of the model's logits, and nothing else is
  // read from them: a step of only such requests brings back ids.
  bool TakesArgmax() const { return sampler.IsGreedy() && !request.sampling.logprobs && !json; }

  Sequence seq;
  GenerateRequest request;
  std::shared_ptr<TokenSink> sink;
  Sampler sampler;
  IncrementalDetokenizer detok;
  StopChecker stops;
  // Set for a JSON response format: its schema, and the document's state
  // after the tokens sampled so far (masked by Impl::json_constraint), and
  // whether it has started (a think block may come first).
  std::shared_ptr<const JsonSchema> json_schema;
  std::optional<JsonGrammar> json;
  JsonPhase json_phase = JsonPhase::kDocument;
  Clock::time_point submitted;
  Clock::time_point first_scheduled, first_token;
  bool scheduled_once = false;
  // The last sampled token's, when the request asks for logprobs.
  std::optional<TokenLogprobs> logprobs;
  // Sampled tokens not sent yet: each goes out with its text (its first
  // byte; one without text once all text before it went), so while the
  // StopChecker holds text back (a possible stop string's start) its tokens
  // wait too, and a stop string's tokens, like its text, are never sent.
  // [start, end): the token's bytes of the completion's text as
  // detokenized; `released_bytes`: the bytes sent so far.
  struct HeldToken {
    int32_t id;
    std::optional<TokenLogprobs> logprobs;
    int64_t start, end;
  };
  std::deque<HeldToken> held;
  int64_t detokenized_bytes = 0;
  int64_t released_bytes = 0;
  // While in the inbox: how much of the prompt the prefix cache held when it
  // was submitted (its backlog share is the rest).
  int32_t cached_at_submit = 0;
};

// Everything Step() owns, and the queues other threads hand it work through.
struct Engine::Impl {
  Impl(int32_t num_blocks, int32_t block_size, const EngineConfig& config, int32_t group_blocks,
       int32_t initial_groups)
      : kv_manager(num_blocks, block_size, config.enable_prefix_caching, group_blocks,
                   initial_groups),
        step_scheduler(config.step_scheduler, &kv_manager, config.fair_share) {}

  // The step's pieces (engine_step.cc), on the stepping thread.
  // Removes a request from the scheduler (freeing its blocks), tells its sink,
  // and forgets it. Unknown ids are ignored.
  void Retire(RequestId id, FinishReason reason, absl::Status status, Clock::time_point now);
  // Ends every request whose deadline is at or before `now`, queued or running,
  // and, given the step cost, every request still without a first token
  // whose first token cannot come before its deadline: the prefill ahead of
  // it in this engine and its own (less what the prefix cache holds, for one
  // not started), in steps of `sched`'s budget, would end past it (the
  // queue's head, when short, starts beside running prefills: its first
  // token needs a step at most). Both with DEADLINE_EXCEEDED.
  void ExpireDeadlines(Clock::time_point now, const std::optional<StepCost>& cost,
                       const StepSchedulerConfig& sched);
  // The prompt tokens `seq` has yet to prefill before its first token; for
  // one holding no blocks (not started, or preempted) less the prefix the
  // cache holds now, which it will find at admission.
  int64_t PrefillLeft(Sequence& seq);
  // Streams the token just sampled for `r` and retires it if it finished.
  void EmitToken(LiveRequest& r, const Tokenizer& tokenizer, Clock::time_point now);

  std::unique_ptr<KvCache> kv_cache;
  // Thread-safe: the allocator's cached hashes. Declared first, so that it
  // outlives the allocator that writes to it.
  PrefixIndex prefix_index;
  KvCacheManager kv_manager;
  StepScheduler step_scheduler;
  absl::flat_hash_map<RequestId, std::unique_ptr<LiveRequest>> live;
  Batch batch;
  std::vector<float> logits;
  SampleInputs sample_inputs;  // a device-sampled step's rows (Model::ForwardSample)
  SampledRows sampled;         // its tokens, and logprobs where asked
  int64_t next_arrival = 0;
  // A growth of its KV memory failed in the last step: its work waits for
  // memory (Engine::ReclaimKv).
  bool kv_short = false;
  EngineStats counters;  // owned by the stepping thread
  // What JSON requests' draws are held to (EngineConfig::json_constraint).
  std::shared_ptr<const JsonConstraint> json_constraint;
  StepCostFit cost_fit;  // of this engine's steps

  // Shared with other threads.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::vector<std::unique_ptr<LiveRequest>> inbox;
  std::vector<std::pair<RequestId, absl::Status>> aborts;  // with why
  EngineStats snapshot;
  RequestId next_id = 1;
  std::mt19937_64 seed_source{std::random_device{}()};
  bool stop = false;
  std::thread loop;
};

}  // namespace cohost::runtime
