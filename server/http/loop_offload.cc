// LoopOffload: a job queue, its workers, and a manually activated event that
// runs the finished jobs' continuations on the loop thread.

#include "server/http/loop_offload.h"

#include <event2/event.h>

#include <algorithm>
#include <utility>

namespace cohost::server::http {

LoopOffload::LoopOffload(event_base* base, int threads)
    : done_(event_new(base, -1, 0, &LoopOffload::OnDone, this)) {
  for (int i = 0; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { Work(); });
}

LoopOffload::~LoopOffload() {
  Stop();
  event_free(done_);
}

void LoopOffload::Run(Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void LoopOffload::Stop() {
  // What the dropped jobs and continuations hold is let go of outside the
  // lock (a call, a model: their destructors may take locks of their own).
  std::deque<Job> dropped_jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped_jobs.swap(jobs_);
  }
  cv_.notify_all();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  std::vector<Continuation> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped.swap(finished_);
  }
}

void LoopOffload::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Continuation then = job();
    job = nullptr;  // what it held goes here, not on the loop thread
    lock.lock();
    if (stopping_ || !then) {
      lock.unlock();
      then = nullptr;  // outside the lock, as in Stop
      lock.lock();
      continue;
    }
    finished_.push_back(std::move(then));
    // One activation runs every continuation queued by then.
    if (finished_.size() == 1) event_active(done_, EV_READ, 0);
  }
}

void LoopOffload::OnDone(int, short, void* self) {
  auto* o = static_cast<LoopOffload*>(self);
  std::vector<Continuation> finished;
  {
    std::lock_guard<std::mutex> lock(o->mu_);
    finished.swap(o->finished_);
  }
  for (Continuation& then : finished) then();
}

}  // namespace cohost::server::http
