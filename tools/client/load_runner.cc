// The bench load loop: one ClientReadReactor per request; the calling thread
// paces arrivals and waits on a condition variable for free slots.

#include "tools/client/load_runner.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "tools/client/client_common.h"

namespace cohost::tools {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class Runner;

// One streamed Generate. Owned by the Runner until OnDone, which hands the
// result back and deletes the call.
class StreamCall : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  StreamCall(Runner* runner, v1::GenerateRequest request, double start_s)
      : runner_(runner), request_(std::move(request)) {
    result_.start_s = start_s;
  }
  grpc::ClientContext& context() { return context_; }

  void Start(v1::Inference::Stub& stub) {
    start_ = Clock::now();
    stub.async()->Generate(&context_, &request_, this);
    StartRead(&message_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    const double t = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    if (message_.token_ids_size() > 0) {
      if (result_.token_times_ms.empty()) result_.ttft_ms = t;
      result_.token_times_ms.insert(result_.token_times_ms.end(), message_.token_ids_size(), t);
    }
    if (message_.has_usage()) {
      result_.prompt_tokens = static_cast<int32_t>(message_.usage().prompt_tokens());
      saw_usage_ = true;
      usage_completion_ = static_cast<int32_t>(message_.usage().completion_tokens());
    }
    if (message_.has_timings())
      result_.server_ttft_ms = message_.timings().time_to_first_token_ms();
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override;

 private:
  Runner* runner_;
  v1::GenerateRequest request_;
  grpc::ClientContext context_;
  v1::GenerateResponse message_;
  Clock::time_point start_;
  RequestResult result_;
  bool saw_usage_ = false;
  int32_t usage_completion_ = 0;
};

class Runner {
 public:
  Runner(v1::Inference::Stub& stub, const LoadPlan& plan) : stub_(stub), plan_(plan) {}

  LoadRun Run(RequestSource& source, const LoadProgress& progress) {
    t0_ = Clock::now();
    last_done_ = t0_;  // a run that issues nothing lasts 0 s
    auto report = [&] {
      if (!progress) return;
      size_t finished, issued;
      {
        std::lock_guard<std::mutex> lock(mu_);
        finished = finished_;
        issued = issued_;
      }
      progress(finished, issued, SecondsSince(t0_));
    };
    const double duration = plan_.duration_s > 0 ? plan_.duration_s : 1e300;
    const auto interrupted = [&] {
      return plan_.interrupt != nullptr && plan_.interrupt->load(std::memory_order_relaxed);
    };
    for (;;) {
      if (interrupted()) break;
      if (plan_.num_requests > 0 && issued_ >= plan_.num_requests) break;
      if (SecondsSince(t0_) >= duration) break;
      std::optional<double> arrival = plan_.next_arrival ? plan_.next_arrival() : 0.0;
      if (!arrival) break;
      // Sleep until the arrival (or the end of the run), reporting progress.
      const double due = std::min(*arrival, duration);
      while (SecondsSince(t0_) < due && !interrupted()) {
        const double left = due - SecondsSince(t0_);
        std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, 0.1)));
        report();
      }
      if (*arrival >= duration || interrupted()) break;
      // Wait for a concurrency slot.
      {
        std::unique_lock<std::mutex> lock(mu_);
        while (plan_.max_concurrency > 0 &&
               live_.size() >= static_cast<size_t>(plan_.max_concurrency) && !interrupted()) {
          cv_.wait_for(lock, std::chrono::milliseconds(100));
          lock.unlock();
          report();
          lock.lock();
        }
      }
      if (SecondsSince(t0_) >= duration || interrupted()) break;
      Issue(source.Next());
    }
    // Drain: let in-flight calls finish up to the cap, then cancel the rest.
    const Clock::time_point drain_end =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(plan_.drain_timeout_s));
    LoadRun run;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!live_.empty() && Clock::now() < drain_end && !interrupted()) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        lock.unlock();
        report();
        lock.lock();
      }
      run.interrupted = interrupted();
      run.cancelled_at_drain = live_.size();
      for (StreamCall* call : live_) call->context().TryCancel();
      // Every call destroyed and reported, not only unlisted: gRPC may be torn
      // down once this returns.
      cv_.wait(lock, [&] { return finished_ == issued_; });
      run.results = std::move(results_);
      run.duration_s = std::chrono::duration<double>(last_ok_.value_or(last_done_) - t0_).count();
    }
    report();
    std::sort(run.results.begin(), run.results.end(),
              [](const RequestResult& a, const RequestResult& b) { return a.start_s < b.start_s; });
    return run;
  }

  // A call about to be destroyed: the drain no longer cancels it, and its
  // concurrency slot is free.
  void Unlist(StreamCall* call) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(call);
  }

  // A destroyed call's result.
  void Finished(RequestResult result) {
    std::lock_guard<std::mutex> lock(mu_);
    last_done_ = Clock::now();
    if (result.ok()) last_ok_ = last_done_;
    results_.push_back(std::move(result));
    ++finished_;
    cv_.notify_all();
  }

 private:
  void Issue(RequestSpec spec) {
    v1::GenerateRequest request = plan_.base;
    if (spec.text) {
      request.set_text(*spec.text);
    } else {
      request.mutable_tokens()->mutable_ids()->Add(spec.ids.begin(), spec.ids.end());
    }
    request.set_max_tokens(static_cast<uint32_t>(spec.max_tokens));
    auto* call = new StreamCall(this, std::move(request), SecondsSince(t0_));
    AddCallMetadata(&call->context(), plan_.tenant);
    if (plan_.request_timeout_ms) {
      call->context().set_deadline(std::chrono::system_clock::now() +
                                   std::chrono::milliseconds(*plan_.request_timeout_ms));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.insert(call);
      ++issued_;
    }
    call->Start(stub_);
  }

  v1::Inference::Stub& stub_;
  const LoadPlan& plan_;
  Clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_set<StreamCall*> live_;      // guarded by mu_
  std::vector<RequestResult> results_;        // guarded by mu_
  size_t finished_ = 0;                       // guarded by mu_
  size_t issued_ = 0;                         // written by the run thread, read under mu_
  Clock::time_point last_done_;               // guarded by mu_
  std::optional<Clock::time_point> last_ok_;  // guarded by mu_
};

void StreamCall::OnDone(const grpc::Status& status) {
  result_.e2e_ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  result_.status_code = StatusCodeName(status.error_code());
  if (!status.ok()) result_.error_message = status.error_message();
  result_.output_tokens =
      saw_usage_ ? usage_completion_ : static_cast<int32_t>(result_.token_times_ms.size());
  // Unlisted first, so that the drain never cancels a deleted call; the call
  // (and its ClientContext) is destroyed before the runner hears of it: once
  // the runner has every call back, the program may tear gRPC down, and a
  // context destroyed after that aborts the process.
  Runner* runner = runner_;
  RequestResult result = std::move(result_);
  runner->Unlist(this);
  delete this;
  runner->Finished(std::move(result));
}

}  // namespace

LoadRun RunLoad(v1::Inference::Stub& stub, const LoadPlan& plan, RequestSource& source,
                const LoadProgress& progress) {
  Runner runner(stub, plan);
  return runner.Run(source, progress);
}

}  // namespace cohost::tools
