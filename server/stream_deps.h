// What every generation stream shares, whichever front door (gRPC or HTTP)
// it came through, and the bounds on what one stream may buffer.
#pragma once

#include <chrono>
#include <cstddef>

#include "scheduler/router.h"
#include "server/auth/api_keys.h"
#include "server/metrics.h"

namespace cohost::server {

// What one stream may buffer for a client that reads slower than the engine
// produces.
struct StreamLimits {
  size_t max_message_bytes = size_t{256} << 10;  // coalesced deltas per message
  // Unsent output beyond this means the client stopped reading: the request is
  // aborted and the call ends (RESOURCE_EXHAUSTED on gRPC).
  size_t max_backlog_bytes = size_t{8} << 20;
  // Once its request has ended (or its backlog overflowed), a stream whose
  // write has not completed for this long has a client that stopped reading:
  // the call is cancelled, so that it lets go of what it holds (gRPC). And
  // what was unsent then must drain at drain_progress_bytes per this long
  // (30 s a MiB: 35 KB/s, a slow link's pace), else the same: a client that
  // reads a message just inside each write's timeout would hold its output
  // for many of them (gRPC's stream; on the HTTP port, a whole reply over
  // the backlog bound, HttpFrontDoor::draining_).
  std::chrono::milliseconds write_stall_timeout = std::chrono::seconds(30);
  size_t drain_progress_bytes = size_t{1} << 20;
};

// All outlive the front doors (router and metrics also outlive every engine,
// whose sinks report to metrics to the end).
struct StreamDeps {
  scheduler::Router* router = nullptr;
  ServerMetrics* metrics = nullptr;
  const auth::ApiKeys* keys = nullptr;  // never null; empty: no keys needed
  StreamLimits limits;
};

}  // namespace cohost::server
