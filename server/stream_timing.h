// The server's view of one request's timings, for both front doors: queue
// time, time to first token and inter-token latency measured from its
// arrival at the server (so they include parsing, tokenization and
// admission), reported to ServerMetrics as they happen. Called from the
// request's sink only, which the engine calls on one thread at a time.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "runtime/batching/request.h"
#include "server/metrics.h"

namespace cohost::server {

class StreamTiming {
 public:
  StreamTiming(ServerMetrics* metrics, runtime::Clock::time_point arrival)
      : metrics_(metrics), arrival_(arrival) {}

  // The model is known once the request names one that exists.
  void set_model(std::string model) { model_ = std::move(model); }
  const std::string& model() const { return model_; }
  // The tenant's metrics get its TTFT and finish too.
  void set_tenant(std::string tenant) { tenant_ = std::move(tenant); }
  // A further choice of a request (HTTP's n > 1, started once the first has
  // its first token): its queue time, first token, prompt and end are not
  // the request's (the first choice's are), so only its inter-token gaps and
  // generated tokens are observed.
  void set_further_choice() { further_choice_ = true; }

  void OnScheduled();
  // A delta carrying `count` tokens: the first delta is the TTFT (and its
  // other tokens gaps of zero), later ones inter-token gaps, a gap shared
  // evenly by its tokens (tokens held back behind a possible stop string
  // come out together): n tokens sent, n - 1 gaps.
  void OnTokens(int count);
  // `info` with queue time, TTFT and end-to-end time from the server's view;
  // records the finish in metrics. A request that generated tokens but sent
  // none (a stop string at once) has its first output, the end, as its TTFT.
  runtime::FinishInfo OnFinish(const runtime::FinishInfo& info);

 private:
  void FirstToken(runtime::Clock::time_point now);

  ServerMetrics* metrics_;
  runtime::Clock::time_point arrival_;
  std::string model_;
  std::optional<std::string> tenant_;
  std::optional<runtime::Clock::time_point> scheduled_, first_token_, last_token_;
  bool further_choice_ = false;
};

}  // namespace cohost::server
