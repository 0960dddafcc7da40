// Health statuses from the Router's model list and each engine's step counter.

#include "server/health_watchdog.h"

namespace cohost::server {

bool ProgressTracker::Update(const std::string& model, bool resident,
                             const runtime::EngineStats& stats, int64_t device_tokens,
                             Clock::time_point now) {
  if (!resident) {
    entries_.erase(model);
    return true;
  }
  auto [it, inserted] = entries_.try_emplace(model, Entry{stats.num_steps, device_tokens, now});
  Entry& e = it->second;
  const bool idle = stats.num_running == 0 && stats.num_waiting == 0;
  if (inserted || idle || stats.num_steps != e.steps || device_tokens != e.device_tokens) {
    e.steps = stats.num_steps;
    e.device_tokens = device_tokens;
    e.last_progress = now;
  }
  return now - e.last_progress < stall_timeout_;
}

HealthWatchdog::HealthWatchdog(scheduler::Router* router, Clock::duration interval,
                               Clock::duration stall_timeout)
    : router_(router), interval_(interval), tracker_(stall_timeout) {}

HealthWatchdog::~HealthWatchdog() { Stop(); }

void HealthWatchdog::WatchAccepts(int port, Clock::duration timeout) {
  accepts_.emplace(port, timeout);
}

void HealthWatchdog::Start(grpc::HealthCheckServiceInterface* health) {
  health_ = health;
  Poll();
  thread_ = std::thread([this] { Loop(); });
}

void HealthWatchdog::Poke() {
  std::lock_guard<std::mutex> lock(mu_);
  poke_ = true;
  cv_.notify_all();
}

void HealthWatchdog::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void HealthWatchdog::ShutdownHealth() {
  Stop();
  if (health_ != nullptr) health_->Shutdown();  // NOT_SERVING everywhere; later updates are ignored
}

void HealthWatchdog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval_, [this] { return stop_ || poke_; });
    if (stop_) break;
    poke_ = false;
    lock.unlock();
    Poll();
    lock.lock();
  }
}

void HealthWatchdog::Poll() {
  const Clock::time_point now = Clock::now();
  std::map<std::string, bool> serving;
  bool overall_ok = true;
  for (const scheduler::ModelSummary& m : router_->ListModels()) {
    bool ok = m.serving;
    if (absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> model = router_->Find(m.name);
        model.ok()) {
      ok = tracker_.Update(m.name, m.state == scheduler::ModelState::kReady, (*model)->Stats(),
                           (*model)->device().executor->tokens_computed(), now) &&
           ok;
    } else {
      ok = false;  // unloaded between the two calls
    }
    serving[m.name] = ok && !router_->draining();
    // The server as a whole is unwell only when a resident model is: one
    // that is loading, evicted or failed to load is that model's own state.
    if (m.state == scheduler::ModelState::kReady) overall_ok = overall_ok && ok;
  }
  // Models that went away stay known to health clients, as NOT_SERVING.
  for (auto& [name, was] : published_) {
    if (!name.empty() && !serving.count(name)) {
      tracker_.Forget(name);
      if (was) health_->SetServingStatus(name, false);
      was = false;
    }
  }
  const bool accepting = !accepts_ || accepts_->Update(now);
  const bool all = !router_->draining() && overall_ok && accepting;
  for (const auto& [name, ok] : serving) {
    auto it = published_.find(name);
    if (it == published_.end() || it->second != ok) {
      health_->SetServingStatus(name, ok);
      published_[name] = ok;
    }
  }
  auto overall = published_.find("");
  if (overall == published_.end() || overall->second != all) {
    health_->SetServingStatus("", all);
    published_[""] = all;
  }
}

}  // namespace cohost::server
