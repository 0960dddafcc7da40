// Engine internals shared by engine.cc (the thread-safe front) and
// engine_step.cc (one step). Not part of the public API.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/stop_checker.h"

namespace cohost::runtime {

// One live request: scheduler state plus everything needed to turn its logits
// into streamed text.
struct LiveRequest {
  LiveRequest(RequestId id, GenerateRequest req, std::shared_ptr<TokenSink> s,
              const Tokenizer& tokenizer, uint64_t default_seed)
      : request(std::move(req)),
        sink(std::move(s)),
        sampler(request.sampling, default_seed),
        detok(tokenizer),
        stops(request.sampling.stop_strings) {
    seq.id = id;
    seq.tokens = request.prompt_ids;
    seq.num_prompt_tokens = static_cast<int32_t>(request.prompt_ids.size());
    seq.max_tokens = request.sampling.max_tokens;
    seq.cache_salt = request.tenant.empty() ? 0 : absl::Hash<std::string>{}(request.tenant) | 1;
  }

  Sequence seq;
  GenerateRequest request;
  std::shared_ptr<TokenSink> sink;
  Sampler sampler;
  IncrementalDetokenizer detok;
  StopChecker stops;
  Clock::time_point submitted = Clock::now();
  Clock::time_point first_scheduled, first_token;
  bool scheduled_once = false;
};

struct Engine::Impl {
  Impl(int32_t num_blocks, int32_t block_size, const EngineConfig& config)
      : kv_manager(num_blocks, block_size, config.enable_prefix_caching),
        scheduler(config.scheduler, &kv_manager) {}

  std::unique_ptr<KvCache> kv_cache;
  KvCacheManager kv_manager;
  StepScheduler scheduler;
  absl::flat_hash_map<RequestId, std::unique_ptr<LiveRequest>> live;
  Batch batch;
  std::vector<float> logits;
  int64_t next_arrival = 0;
  EngineStats counters;  // owned by the stepping thread

  // Shared with other threads.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::vector<std::unique_ptr<LiveRequest>> inbox;
  std::vector<RequestId> aborts;
  EngineStats snapshot;
  RequestId next_id = 1;
  std::mt19937_64 seed_source{std::random_device{}()};
  bool stop = false;
  std::thread loop;
};

}  // namespace cohost::runtime
