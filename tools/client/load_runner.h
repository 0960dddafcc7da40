// Drives `cohost bench`'s load over gRPC: issues streamed Generate calls at the
// planned arrival times (open loop) and/or keeping a fixed number in flight
// (closed loop), with the callback (reactor) client API, so hundreds of streams
// need no thread each; records what each stream saw as a RequestResult.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cohost/v1/inference.grpc.pb.h"
#include "tools/client/load_gen.h"

namespace cohost::tools {

struct LoadPlan {
  // Model, sampling, stops, ignore_eos; the input and max_tokens are set per
  // request from the RequestSource.
  v1::GenerateRequest base;
  std::string tenant;
  std::optional<int64_t> request_timeout_ms;
  // Arrival time (seconds from the start) of the next request, or nullopt when the
  // schedule is exhausted. Unset: issue whenever a concurrency slot is free.
  std::function<std::optional<double>()> next_arrival;
  int32_t max_concurrency = 0;  // 0 = unbounded (open loop)
  size_t num_requests = 0;      // 0 = unbounded
  double duration_s = 0;        // 0 = unbounded; no request is issued after it
  double drain_timeout_s = 60;  // after issuing stops, in-flight calls get this long
  // Set (from a signal handler, say): issue nothing more, cancel what is in
  // flight, and return what was seen so far (LoadRun::interrupted).
  const std::atomic<bool>* interrupt = nullptr;
};

struct LoadRun {
  std::vector<RequestResult> results;  // ordered by issue time
  // Run start -> the last successful completion (the last completion of any
  // kind when none succeeded): a call the drain cancelled, or one that timed
  // out, would stretch every throughput by the time nothing was served.
  double duration_s = 0;
  size_t cancelled_at_drain = 0;
  bool interrupted = false;  // LoadPlan::interrupt was set
};

// Progress: (finished, issued, seconds since the start), called every ~100 ms on
// the calling thread.
using LoadProgress = std::function<void(size_t, size_t, double)>;

// At least one of num_requests, duration_s and a finite next_arrival must bound
// the run. Blocks until every issued call has finished.
LoadRun RunLoad(v1::Inference::Stub& stub, const LoadPlan& plan, RequestSource& source,
                const LoadProgress& progress);

}  // namespace cohost::tools
