// Per-model (and per-tenant) serving metrics and their Prometheus text exposition: latency
// histograms (time to first token, inter-token latency, queue time, end to
// end), counters (requests by finish reason and by error code, tokens,
// preemptions, cancellations) and gauges read from the engines at scrape time.
// Thread-safe: recorded from gRPC and engine threads, rendered on the HTTP one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/batching/request.h"

namespace cohost::server {

// Live values sampled from one model's engine when /metrics is scraped.
struct ModelGauges {
  std::string model;
  int64_t running_requests = 0;
  int64_t waiting_requests = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;     // refcount > 0
  int64_t preemptions_total = 0;  // engine counter, exported as a counter
  int64_t kv_used_bytes = 0;      // its share of the device's KV pool now
  // Lifecycle: the device it is placed on, every state it can be in with the
  // current one true (cohost_model_state is 1 for that one, 0 for the rest),
  // resident weights, and counters kept by the scheduler.
  std::string device;
  std::vector<std::pair<std::string, bool>> states;
  int64_t weights_bytes = 0;
  int64_t offloaded_bytes = 0;  // weights kept in host memory while evicted
  int64_t evictions_total = 0;
  // Admission's TTFT predictions against the actual TTFTs of the same
  // requests (scheduler::TtftPredictionBook): counters, so that a rate of the
  // error over a rate of the count is the predictor's mean error.
  int64_t ttft_predictions_total = 0;
  double ttft_predicted_seconds_total = 0;
  double ttft_actual_seconds_total = 0;
  double ttft_prediction_abs_error_seconds_total = 0;
};

// Live values of one device's KV pool, sampled at scrape time.
struct DeviceGauges {
  std::string device;
  int64_t kv_pool_bytes = 0;
  int64_t kv_pool_used_bytes = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();

  // Seconds, per model.
  void ObserveTimeToFirstToken(std::string_view model, double seconds);
  void ObserveInterTokenLatency(std::string_view model, double seconds);
  void ObserveQueueTime(std::string_view model, double seconds);
  // End-to-end latency, requests by finish reason, prompt / cached prompt /
  // generated tokens, cancellations.
  void RecordFinish(std::string_view model, const runtime::FinishInfo& info);
  // A further choice of a request (HTTP's n > 1): only its generated tokens
  // (the request, its prompt and its end are the first choice's), for the
  // model and, if any, the tenant.
  void RecordFurtherChoice(std::string_view model, const std::string* tenant,
                           const runtime::FinishInfo& info);
  // A request that failed with a gRPC status code (its canonical name, e.g.
  // "RESOURCE_EXHAUSTED"); model is "" when it named no known model.
  void RecordError(std::string_view model, std::string_view code);
  // A request whose forced tool call is held to less than its schema, the
  // grammar's limits past (`to`: "no_value_bounds" or "any_arguments",
  // ForcedFallbackName).
  void RecordForcedCallFallback(std::string_view model, std::string_view to);
  // One attempt to load a model's weights: counted by result, and its
  // seconds observed when it succeeded.
  void RecordModelLoad(std::string_view model, bool ok, double seconds);
  // One executor step of `model` on `device`, in seconds. Called on the
  // executor's thread: a shared lock and a few atomic adds.
  void ObserveExecutorStep(std::string_view device, std::string_view model, double seconds);

  // Per tenant (the API key's, or the one a client claims without keys).
  // Tenants the operator named (ReserveTenantLabels) always have their own
  // label; of the others, the first kMaxTenantLabels whose requests were
  // admitted get one. The rest count as "(other)", as do refusals of a
  // tenant without a label, and requests without a tenant as "(none)".
  static constexpr size_t kMaxTenantLabels = 64;
  // The tenants of the configuration file and of the API keys.
  void ReserveTenantLabels(const std::vector<std::string>& tenants);
  void ObserveTenantTimeToFirstToken(std::string_view tenant, double seconds);
  // Requests and their prompt and generated tokens.
  void RecordTenantFinish(std::string_view tenant, const runtime::FinishInfo& info);
  // A request refused or failed with a gRPC code name, once its tenant is
  // known, and why admission refused it (scheduler::RefusalReason; "" for
  // other failures, shown as "other"). `admitted`: it failed after its
  // admission (its tenant may take a label, as its finish would).
  void RecordTenantRefusal(std::string_view tenant, std::string_view code,
                           std::string_view reason = "", bool admitted = false);

  // A port's connections: gRPC's (plaintext: server/grpc_listener.h) and the
  // OpenAI HTTP port's. Open now and the cap (gauges, shown once set), and
  // each time accepting paused (at the cap: reason "full"; else accept
  // failed, e.g. out of descriptors: "error").
  enum class Port { kGrpc, kHttp };
  void SetConnections(Port port, int64_t open, int64_t limit);
  void RecordAcceptPause(Port port, bool at_cap);
  // A gRPC connection closed by the listener: before it was handed to gRPC,
  // it sent nothing in time ("silent"), not HTTP/2 ("not_http2"), or its
  // address had its share of connections ("per_client"); after, it was shut
  // down at the cap, idle, to make room ("idle_at_cap").
  void RecordGrpcConnectionDropped(std::string_view reason);
  // An OpenAI HTTP connection closed as it came: its address had its share.
  void RecordHttpConnectionPastItsShare();

  // cohost_cpu_info{cpu,features,quant_kernels,half_kernels} 1: what the CPU
  // kernels run on.
  void SetCpuInfo(std::string cpu, std::string features, std::string quant_kernels,
                  std::string half_kernels);

  // The Prometheus text format (version 0.0.4), all metrics prefixed cohost_,
  // labelled {model="..."} (device gauges {device="..."}).
  std::string Render(const std::vector<ModelGauges>& gauges,
                     const std::vector<DeviceGauges>& devices = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohost::server
