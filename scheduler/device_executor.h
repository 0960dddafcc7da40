// The one thread that steps every engine placed on a device. Engines attached
// here own no thread: Submit and Abort on them only queue work and wake the
// executor (EngineConfig::on_work), which picks the next engine by
// PickNextEngine and caps the step's tokens by StepTokenCap: to a time slice
// while several engines share the device, and to the model's TPOT target while
// its streams decode. Thread-safe: Attach, Detach and Wake may be called
// from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/batching/request.h"
#include "runtime/engine/engine.h"

namespace cohost::scheduler {

struct ExecutorOptions {
  // While two or more engines are attached, a step is sized to last about this
  // long (from the engine's measured prefill rate): how long another model's
  // first token can wait behind a chunk already running. 0: no cap.
  runtime::Clock::duration step_slice = std::chrono::milliseconds(250);
  int32_t min_slice_tokens = 16;         // a step may always take this many new tokens
  int32_t unmeasured_slice_tokens = 64;  // before an engine's rate is known
  // Called on the executor's thread after every step with the device, the
  // engine's name (EngineTargets::name) and the step's seconds. Must be cheap
  // and must not block: every engine of the device waits for it.
  std::function<void(const std::string& device, const std::string& model, double seconds)> on_step;
};

// How one engine's steps are scheduled among the others.
struct EngineTargets {
  std::chrono::milliseconds ttft_target{1000};
  std::string name;
  std::chrono::milliseconds tpot_target{200};  // the model's, for on_step
  // Called on the executor's thread after each of this engine's steps with the
  // step's seconds and when it ended; same rules as ExecutorOptions::on_step.
  std::function<void(double seconds, runtime::Clock::time_point end)> on_step;
};

class DeviceExecutor {
 public:
  DeviceExecutor(std::string device, ExecutorOptions options = {});
  ~DeviceExecutor();  // stops the thread; attached engines are left as they are

  // Steps `engine` from now on. The engine must have been created with
  // on_work = [this] { Wake(); } (MakeWakeCallback) and must outlive its
  // attachment.
  void Attach(runtime::Engine* engine, EngineTargets targets);
  // Stops stepping `engine`; returns once the round under way (if any) has
  // ended, so that no step of it, nor of an engine that could reach it,
  // is running.
  void Detach(runtime::Engine* engine);
  // Something was queued on an attached engine.
  void Wake();
  std::function<void()> MakeWakeCallback() {
    return [this] { Wake(); };
  }

  const std::string& device() const { return device_; }
  const ExecutorOptions& options() const { return options_; }
  int64_t num_steps() const;
  // Tokens its engines' steps have computed, all of them: the device's
  // progress (an engine that waits for memory another holds is not hung
  // while this moves).
  int64_t tokens_computed() const;
  // Detach calls now waiting for a round to end (lets tests act at that moment).
  int32_t detach_waiters() const;

 private:
  struct Slot {
    runtime::Engine* engine;
    EngineTargets targets;
    int64_t last_stepped = 0;
    std::optional<runtime::Clock::time_point> last_step_end;
    double tokens_per_second = 0;  // moving estimate over steps that computed tokens
    bool stalled = false;          // its last step computed nothing, with work left
  };

  enum class Round {
    kIdle,        // no engine had work
    kStepped,     // an engine was stepped
    kNoProgress,  // every engine with work waits for memory; the step gave none
  };

  void Run();
  // One round: picks an engine with work and steps it.
  Round StepOnce();
  // The round's work over a snapshot of the slots, taken when they were at
  // `generation`, while in_round_ is set.
  Round RoundOver(std::vector<Slot>& slots, int64_t generation);

  const std::string device_;
  const ExecutorOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;  // guarded by mu_
  // Bumped by every Attach and Detach: a round whose snapshot is older
  // starts over.
  int64_t slots_generation_ = 0;  // guarded by mu_
  // A round (the engines' loads read, one engine stepped) is under way: the
  // engines snapshotted for it are in use until it ends.
  bool in_round_ = false;        // guarded by mu_
  int64_t rounds_ended_ = 0;     // guarded by mu_
  bool woken_ = false;           // guarded by mu_
  int32_t detach_waiters_ = 0;   // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  int64_t round_ = 0;            // guarded by mu_
  int64_t num_steps_ = 0;        // guarded by mu_
  int64_t tokens_computed_ = 0;  // guarded by mu_
  // The last pick was a promoted starved decode (EnginePick::promoted). Only
  // the executor's thread touches it.
  bool after_promotion_ = false;
  std::thread thread_;
};

}  // namespace cohost::scheduler
