// grpc.health.v1 statuses for the served models: one service name per model
// plus "" (the whole server). A model is SERVING while it is loaded and makes
// progress: an engine with work for which neither its own step counter nor
// its device's computed tokens have moved for the stall timeout is
// NOT_SERVING until one moves again. (An engine that waits for KV memory
// another model's work holds, or for its turn on the device, is waiting,
// not hung.)
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "grpcpp/health_check_service_interface.h"
#include "runtime/engine/engine.h"
#include "scheduler/router.h"
#include "server/accept_watch.h"

namespace cohost::server {

// Per-model stall detection from successive EngineStats snapshots.
class ProgressTracker {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ProgressTracker(Clock::duration stall_timeout) : stall_timeout_(stall_timeout) {}

  // Whether the model's engine counts as making progress at `now`: it is idle
  // (nothing running or waiting), or its num_steps or `device_tokens` (what
  // its device has computed, DeviceExecutor::tokens_computed) moved within
  // the stall timeout. A model not `resident` (loading, evicted, failed: its
  // requests wait for the load) has no engine to stall; its clock starts
  // when it is.
  bool Update(const std::string& model, bool resident, const runtime::EngineStats& stats,
              int64_t device_tokens, Clock::time_point now);
  void Forget(const std::string& model) { entries_.erase(model); }

 private:
  struct Entry {
    int64_t steps = 0;
    int64_t device_tokens = 0;
    Clock::time_point last_progress;
  };
  Clock::duration stall_timeout_;
  std::map<std::string, Entry> entries_;
};

class HealthWatchdog {
 public:
  using Clock = ProgressTracker::Clock;
  HealthWatchdog(scheduler::Router* router, Clock::duration interval,
                 Clock::duration stall_timeout);
  ~HealthWatchdog();

  // Before Start: also watch that `port` accepts (AcceptWatch); while it
  // does not for `timeout`, the whole server ("") is NOT_SERVING.
  void WatchAccepts(int port, Clock::duration timeout);
  // Whether the watched port accepts (true when none is watched); any thread.
  bool accepting() const { return !accepts_ || accepts_->accepting(); }

  // Publishes the statuses to `health` now, then re-checks every interval on
  // its own thread.
  void Start(grpc::HealthCheckServiceInterface* health);
  // Re-check soon (the model list changed).
  void Poke();
  // Stops checking and sets every service NOT_SERVING for good (draining).
  // Before Start, only stops.
  void ShutdownHealth();
  // Stops checking; statuses stay as they are.
  void Stop();

 private:
  void Loop();
  void Poll();

  scheduler::Router* router_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  Clock::duration interval_;
  ProgressTracker tracker_;                // touched by Poll only
  std::map<std::string, bool> published_;  // touched by Poll only
  std::optional<AcceptWatch> accepts_;     // set before Start; updated by Poll

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool poke_ = false;
  std::thread thread_;
};

}  // namespace cohost::server
