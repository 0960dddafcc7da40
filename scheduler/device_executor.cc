#include "scheduler/device_executor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "scheduler/executor_policy.h"

namespace cohost::scheduler {
namespace {

// While every engine with work waits for KV memory and the last step freed
// none, the executor waits this long before trying again (doubling from the
// first to the last), unless woken: memory can come back from outside a step
// (an engine detached, a pool's account released) without a Wake, and trying
// at once would spin a core.
constexpr auto kFirstNoProgressWait = std::chrono::milliseconds(1);
constexpr auto kLastNoProgressWait = std::chrono::milliseconds(64);

}  // namespace

DeviceExecutor::DeviceExecutor(std::string device, ExecutorOptions options)
    : device_(std::move(device)), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

DeviceExecutor::~DeviceExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DeviceExecutor::Attach(runtime::Engine* engine, EngineTargets targets) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    slots_.push_back(Slot{engine, std::move(targets), 0, std::nullopt});
    ++slots_generation_;
    woken_ = true;  // it may already hold work
  }
  cv_.notify_all();
}

void DeviceExecutor::Detach(runtime::Engine* engine) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Inside a step of `engine` (a sink dropped the last holder of its model):
    // the engine would be destroyed under its own Step. An internal invariant
    // (the server's sinks hold models by raw pointer), not a client's doing.
    std::fprintf(stderr, "cohost executor %s: an engine detached from its own step\n",
                 device_.c_str());
    std::abort();
  }
  std::unique_lock<std::mutex> lock(mu_);
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                              [engine](const Slot& s) { return s.engine == engine; }),
               slots_.end());
  ++slots_generation_;
  // Any round, not only one stepping this engine: a round reads every
  // engine's load, and a step of another engine may call this one through the
  // device's KV pool (Engine::ReclaimKv). Only the round under way now: a
  // later one snapshots the slots without this engine (and its reclaimer is
  // gone before its Detach). Waiting for no round at all instead would wait
  // as long as the device stays busy, since the next round starts at once.
  const bool in_round = in_round_;
  const int64_t rounds_ended = rounds_ended_;
  ++detach_waiters_;
  cv_.wait(lock, [&] { return !in_round || rounds_ended_ != rounds_ended; });
  --detach_waiters_;
}

int32_t DeviceExecutor::detach_waiters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return detach_waiters_;
}

void DeviceExecutor::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

int64_t DeviceExecutor::num_steps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return num_steps_;
}

int64_t DeviceExecutor::tokens_computed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_computed_;
}

void DeviceExecutor::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || woken_; });
      if (stop_) return;
      woken_ = false;
    }
    // Step until no engine has work; a Wake during a step sets woken_ again,
    // so nothing queued meanwhile is missed.
    std::chrono::milliseconds no_progress_wait = kFirstNoProgressWait;
    for (Round round = StepOnce(); round != Round::kIdle; round = StepOnce()) {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) return;
      if (round != Round::kNoProgress) {
        no_progress_wait = kFirstNoProgressWait;
        continue;
      }
      if (cv_.wait_for(lock, no_progress_wait, [this] { return stop_ || woken_; })) {
        if (stop_) return;
        woken_ = false;  // this loop steps again now anyway
      }
      no_progress_wait = std::min(no_progress_wait * 2, kLastNoProgressWait);
    }
  }
}

DeviceExecutor::Round DeviceExecutor::StepOnce() {
  std::vector<Slot> slots;
  int64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    slots = slots_;
    generation = slots_generation_;
    in_round_ = true;
  }
  const Round round = RoundOver(slots, generation);
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_round_ = false;
    ++rounds_ended_;
  }
  cv_.notify_all();  // a Detach may be waiting for this round to end
  return round;
}

DeviceExecutor::Round DeviceExecutor::RoundOver(std::vector<Slot>& slots, int64_t generation) {
  // Engine::Load and Step run here, on the one thread that steps these engines;
  // the lock is held only to read and update the slots. Detach waits for the
  // round, so every engine in `slots` lives until it returns.
  std::vector<EngineCandidate> candidates(slots.size());
  bool any_unstalled_work = false;
  std::vector<runtime::EngineLoad> loads(slots.size());
  // Every engine's cancellations free their memory now, whichever engine this
  // round steps; memory freed may be what a stalled engine waits for.
  bool aborted = false;
  for (Slot& slot : slots) aborted = slot.engine->ApplyAborts() || aborted;
  if (aborted) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Slot& s : slots_) s.stalled = false;
    for (Slot& s : slots) s.stalled = false;
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    loads[i] = slots[i].engine->Load();
    candidates[i].has_work = loads[i].has_work;
    any_unstalled_work = any_unstalled_work || (loads[i].has_work && !slots[i].stalled);
    candidates[i].oldest_awaiting_first = loads[i].oldest_awaiting_first;
    candidates[i].ttft_target = slots[i].targets.ttft_target;
    candidates[i].last_stepped = slots[i].last_stepped;
    candidates[i].tpot_target = slots[i].targets.tpot_target;
    candidates[i].last_step_end = slots[i].last_step_end;
    candidates[i].decoding = loads[i].num_live > loads[i].num_awaiting_first;
  }
  // An engine whose last step did nothing (it waits for KV memory other
  // engines are giving back) steps only when no other engine has work.
  if (any_unstalled_work) {
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].stalled) candidates[i].has_work = false;
    }
  }
  const runtime::Clock::time_point now = runtime::Clock::now();
  const std::optional<EnginePick> picked = PickNextEngine(candidates, now, after_promotion_);
  if (!picked) return Round::kIdle;
  const size_t pick = picked->index;
  runtime::Engine* engine = slots[pick].engine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // An engine attached or detached since the snapshot: the pick and its cap
    // were made over engines that are no longer the device's (the picked one
    // may be gone, its Detach waiting for this round; or a newcomer's work
    // may already be queued, and a step sized for an engine alone would make
    // it wait). The next round starts over from the slots as they are now.
    if (slots_generation_ != generation) return Round::kStepped;
  }
  after_promotion_ = picked->promoted;  // a pick skipped above promoted nobody

  runtime::StepLimits limits;
  limits.max_new_tokens = StepTokenCap(
      candidates, pick, now,
      {options_.step_slice, options_.min_slice_tokens, options_.unmeasured_slice_tokens},
      slots[pick].tokens_per_second);
  const auto start = runtime::Clock::now();
  absl::StatusOr<bool> more = engine->Step(limits);
  const runtime::Clock::time_point end = runtime::Clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();
  if (!more.ok()) {
    std::fprintf(stderr, "cohost executor %s: step failed: %s\n", device_.c_str(),
                 std::string(more.status().message()).c_str());
  }
  const runtime::EngineLoad after = engine->Load();
  const int64_t tokens = after.tokens_computed - loads[pick].tokens_computed;
  // Computing tokens is progress; so is ending requests (an abort, a
  // deadline), which gives their memory back to the device's other engines.
  const bool progress = tokens > 0 || after.num_live < loads[pick].num_live;
  if (options_.on_step) options_.on_step(device_, slots[pick].targets.name, seconds);
  if (slots[pick].targets.on_step) slots[pick].targets.on_step(seconds, end);

  {
    std::lock_guard<std::mutex> lock(mu_);
    ++num_steps_;
    tokens_computed_ += tokens;
    ++round_;
    for (Slot& s : slots_) {
      // Progress anywhere may have freed memory a stalled engine waits for.
      if (progress) s.stalled = false;
      if (s.engine != engine) continue;
      s.last_stepped = round_;
      s.last_step_end = end;
      s.stalled = !progress && more.ok() && *more;
      // Steps of a few tokens are decode steps whose time is mostly fixed
      // cost; they would understate the prefill rate the slice is sized by.
      if (tokens >= options_.min_slice_tokens && seconds > 0) {
        const double rate = static_cast<double>(tokens) / seconds;
        s.tokens_per_second =
            s.tokens_per_second > 0 ? 0.7 * s.tokens_per_second + 0.3 * rate : rate;
      }
    }
  }
  // Picked while stalled, so no engine with work was free of a stall; and
  // it is still stuck.
  const bool no_progress = slots[pick].stalled && !progress && more.ok() && *more;
  return no_progress ? Round::kNoProgress : Round::kStepped;
}

}  // namespace cohost::scheduler
