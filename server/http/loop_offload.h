// Work the HTTP front door's event loop hands to a few threads of its own:
// parsing a request's JSON and tokenizing its prompt cost tens of
// milliseconds per megabyte, which on the loop thread would hold every other
// connection's output and every request behind it. A job runs on a worker and
// returns what then runs back on the loop thread, where everything that
// touches libevent stays.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

struct event;
struct event_base;

namespace cohost::server::http {

class LoopOffload {
 public:
  // What a job returns: run on the loop thread (may be empty).
  using Continuation = std::function<void()>;
  using Job = std::function<Continuation()>;

  // `threads` workers (at least one) for the loop of `base`.
  LoopOffload(event_base* base, int threads);
  ~LoopOffload();  // Stop()

  LoopOffload(const LoopOffload&) = delete;
  LoopOffload& operator=(const LoopOffload&) = delete;

  // Any thread: queues `job`; its continuation runs on the loop thread. Once
  // stopped, dropped.
  void Run(Job job);
  // Joins the workers once the jobs they run have ended; queued jobs and
  // continuations not yet run are dropped. Call it after the loop has ended.
  // Idempotent.
  void Stop();

 private:
  static void OnDone(int, short, void* self);
  void Work();

  event* done_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;                // guarded by mu_
  std::vector<Continuation> finished_;  // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace cohost::server::http
