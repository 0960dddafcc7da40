// ServerMetrics: per-model histograms and counters kept in atomics (recording
// is a hash lookup under a shared lock plus a few relaxed atomic adds, with no
// allocation after a model's first observation), rendered in the Prometheus
// text exposition format 0.0.4.

#include "server/metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "common/tenant_name.h"

namespace cohost::server {
namespace {

// Upper bounds (seconds) shared by every latency histogram: a 1-2-5 series
// from 1 ms (an inter-token gap on a GPU) to a minute (a long prompt queued
// behind others). Prometheus' +Inf bucket comes on top.
constexpr std::array<double, 16> kLatencyBounds = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                                                   0.5,   1,     2,     5,    10,   20,   30,  60};
constexpr int kNumReasons = 5;  // FinishReason values
constexpr std::array<runtime::FinishReason, kNumReasons> kReasons = {
    runtime::FinishReason::kStop, runtime::FinishReason::kLength,
    runtime::FinishReason::kStopString, runtime::FinishReason::kCancelled,
    runtime::FinishReason::kError};

class Histogram {
 public:
  void Observe(double seconds) {
    if (std::isnan(seconds)) return;
    seconds = std::max(seconds, 0.0);
    // le is inclusive: the first bound >= the value.
    const size_t i = static_cast<size_t>(
        std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds) -
        kLatencyBounds.begin());
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(seconds, std::memory_order_relaxed);
  }

  // Per-bucket (not cumulative) counts; the last is above every bound.
  std::array<uint64_t, kLatencyBounds.size() + 1> Counts() const {
    std::array<uint64_t, kLatencyBounds.size() + 1> out;
    for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
    return out;
  }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> counts_{};
  std::atomic<double> sum_{0};
};

struct ModelMetrics {
  Histogram ttft, inter_token, queue, e2e, load;
  std::atomic<uint64_t> loads_ok{0}, loads_failed{0};
  std::array<std::atomic<uint64_t>, kNumReasons> finished{};  // by FinishReason
  std::atomic<uint64_t> prompt_tokens{0}, cached_prompt_tokens{0}, generation_tokens{0},
      cancellations{0};
  // Forced tool calls held to less than their schema, by what they fell to.
  std::atomic<uint64_t> fallbacks_no_value_bounds{0}, fallbacks_any_arguments{0};
};

struct TenantMetrics {
  Histogram ttft;
  std::atomic<uint64_t> requests{0}, prompt_tokens{0}, generation_tokens{0};
};

// Prometheus numbers: shortest round-trip decimal, +Inf / -Inf / NaN spelled
// as the format wants them.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// Label values escape backslash, double quote and newline.
std::string EscapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Debian's absl::string_view is not std::string_view, so absl::StrCat does
// not take ours: two small helpers instead.
void Append(std::string* out, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) out->append(p);
}
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  Append(&out, parts);
  return out;
}

void Header(std::string* out, std::string_view name, std::string_view type, std::string_view help) {
  Append(out, {"# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n"});
}

void Sample(std::string* out, std::string_view name, std::string_view labels,
            std::string_view value) {
  if (labels.empty()) return Append(out, {name, " ", value, "\n"});
  Append(out, {name, "{", labels, "} ", value, "\n"});
}

std::string ModelLabel(std::string_view model) {
  return Cat({"model=\"", EscapeLabel(model), "\""});
}

// One histogram's _bucket, _sum and _count samples under `labels`.
void HistogramSamples(std::string* out, std::string_view name, std::string_view labels,
                      const Histogram& h) {
  const std::string bucket = Cat({name, "_bucket"});
  const auto counts = h.Counts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le =
        i < kLatencyBounds.size() ? FormatDouble(kLatencyBounds[i]) : std::string("+Inf");
    Sample(out, bucket, Cat({labels, ",le=\"", le, "\""}), std::to_string(cumulative));
  }
  Sample(out, Cat({name, "_sum"}), labels, FormatDouble(h.Sum()));
  Sample(out, Cat({name, "_count"}), labels, std::to_string(cumulative));
}

// Orders (device, model) keys, owned or viewed, without building strings.
struct StepKeyLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::pair<std::string_view, std::string_view>(a.first, a.second) <
           std::pair<std::string_view, std::string_view>(b.first, b.second);
  }
};

}  // namespace

struct ServerMetrics::Impl {
  mutable std::mutex info_mu;
  std::optional<std::array<std::string, 4>> cpu_info;  // guarded by info_mu

  struct PortConnections {
    std::atomic<bool> seen{false};
    std::atomic<int64_t> open{0}, max{0};
    std::atomic<uint64_t> pauses_full{0}, pauses_error{0};
  };
  PortConnections ports[2];  // by Port
  std::atomic<uint64_t> grpc_dropped_silent{0}, grpc_dropped_not_http2{0},
      grpc_dropped_per_client{0}, grpc_dropped_idle_at_cap{0}, http_dropped_per_client{0};
  PortConnections& port(Port p) { return ports[static_cast<int>(p)]; }

  mutable std::shared_mutex mu;
  absl::flat_hash_map<std::string, std::unique_ptr<ModelMetrics>> models;  // never erased

  // (device, model) -> step times; never erased.
  mutable std::shared_mutex steps_mu;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Histogram>, StepKeyLess> steps;

  mutable std::mutex errors_mu;
  std::map<std::pair<std::string, std::string>, uint64_t> errors;  // (model, code) -> count

  // Tenant label -> record; at most kMaxTenantLabels named ones plus "(none)"
  // and "(other)". Never erased.
  mutable std::shared_mutex tenants_mu;
  absl::flat_hash_map<std::string, std::unique_ptr<TenantMetrics>> tenants;
  size_t named_tenants = 0;  // guarded by tenants_mu
  mutable std::mutex refusals_mu;
  // (label, code, reason) -> count
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> refusals;

  // A tenant's record (it stays put), and where asked the label it is counted
  // under, copied under the lock (the map's keys move when it grows). A
  // tenant without a label takes one of the first-come ones only where
  // `may_take_label` (a refusal does not: made-up names refused at once
  // would take them all).
  TenantMetrics* Tenant(std::string_view tenant, std::string* label = nullptr,
                        bool may_take_label = true) {
    if (tenant.empty()) tenant = kNoTenantLabel;
    const absl::string_view key(tenant.data(), tenant.size());
    {
      std::shared_lock<std::shared_mutex> lock(tenants_mu);
      auto it = tenants.find(key);
      if (it != tenants.end()) {
        if (label != nullptr) *label = it->first;
        return it->second.get();
      }
    }
    std::unique_lock<std::shared_mutex> lock(tenants_mu);
    const bool reserved = tenant == kNoTenantLabel || tenant == kOtherTenantsLabel;
    if (!tenants.contains(key) && !reserved) {
      if (!may_take_label || named_tenants >= ServerMetrics::kMaxTenantLabels) {
        tenant = kOtherTenantsLabel;
      } else {
        ++named_tenants;
      }
    }
    auto [it, inserted] = tenants.try_emplace(absl::string_view(tenant.data(), tenant.size()));
    if (inserted) it->second = std::make_unique<TenantMetrics>();
    if (label != nullptr) *label = it->first;
    return it->second.get();
  }

  // The model's record, created on first use. The reference stays valid for
  // the lifetime of the metrics (records are never removed).
  ModelMetrics& For(std::string_view model) {
    const absl::string_view key(model.data(), model.size());
    {
      std::shared_lock<std::shared_mutex> lock(mu);
      auto it = models.find(key);
      if (it != models.end()) return *it->second;
    }
    std::unique_lock<std::shared_mutex> lock(mu);
    std::unique_ptr<ModelMetrics>& slot = models[key];
    if (slot == nullptr) slot = std::make_unique<ModelMetrics>();
    return *slot;
  }
};

ServerMetrics::ServerMetrics() : impl_(std::make_unique<Impl>()) {}
ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::ObserveTimeToFirstToken(std::string_view model, double seconds) {
  impl_->For(model).ttft.Observe(seconds);
}

void ServerMetrics::ObserveInterTokenLatency(std::string_view model, double seconds) {
  impl_->For(model).inter_token.Observe(seconds);
}

void ServerMetrics::ObserveQueueTime(std::string_view model, double seconds) {
  impl_->For(model).queue.Observe(seconds);
}

void ServerMetrics::RecordFinish(std::string_view model, const runtime::FinishInfo& info) {
  ModelMetrics& m = impl_->For(model);
  const auto reason = static_cast<size_t>(info.reason);
  if (reason < m.finished.size()) m.finished[reason].fetch_add(1, std::memory_order_relaxed);
  if (info.reason == runtime::FinishReason::kCancelled) {
    m.cancellations.fetch_add(1, std::memory_order_relaxed);
  }
  m.prompt_tokens.fetch_add(std::max(info.prompt_tokens, 0), std::memory_order_relaxed);
  m.cached_prompt_tokens.fetch_add(std::max(info.cached_prompt_tokens, 0),
                                   std::memory_order_relaxed);
  m.generation_tokens.fetch_add(std::max(info.completion_tokens, 0), std::memory_order_relaxed);
  m.e2e.Observe(info.timings.e2e_ms / 1000.0);
}

void ServerMetrics::RecordFurtherChoice(std::string_view model, const std::string* tenant,
                                        const runtime::FinishInfo& info) {
  const int64_t generated = std::max(info.completion_tokens, 0);
  impl_->For(model).generation_tokens.fetch_add(generated, std::memory_order_relaxed);
  if (tenant != nullptr) {
    impl_->Tenant(*tenant)->generation_tokens.fetch_add(generated, std::memory_order_relaxed);
  }
}

void ServerMetrics::RecordModelLoad(std::string_view model, bool ok, double seconds) {
  ModelMetrics& m = impl_->For(model);
  (ok ? m.loads_ok : m.loads_failed).fetch_add(1, std::memory_order_relaxed);
  if (ok) m.load.Observe(seconds);
}

void ServerMetrics::ObserveExecutorStep(std::string_view device, std::string_view model,
                                        double seconds) {
  const std::pair<std::string_view, std::string_view> key(device, model);
  {
    std::shared_lock<std::shared_mutex> lock(impl_->steps_mu);
    auto it = impl_->steps.find(key);
    if (it != impl_->steps.end()) {
      it->second->Observe(seconds);
      return;
    }
  }
  std::unique_lock<std::shared_mutex> lock(impl_->steps_mu);
  std::unique_ptr<Histogram>& h = impl_->steps[{std::string(device), std::string(model)}];
  if (h == nullptr) h = std::make_unique<Histogram>();
  h->Observe(seconds);
}

void ServerMetrics::RecordError(std::string_view model, std::string_view code) {
  std::lock_guard<std::mutex> lock(impl_->errors_mu);
  ++impl_->errors[{std::string(model), std::string(code)}];
}

void ServerMetrics::RecordForcedCallFallback(std::string_view model, std::string_view to) {
  ModelMetrics& m = impl_->For(model);
  (to == "any_arguments" ? m.fallbacks_any_arguments : m.fallbacks_no_value_bounds)
      .fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::ObserveTenantTimeToFirstToken(std::string_view tenant, double seconds) {
  impl_->Tenant(tenant)->ttft.Observe(seconds);
}

void ServerMetrics::RecordTenantFinish(std::string_view tenant, const runtime::FinishInfo& info) {
  TenantMetrics& t = *impl_->Tenant(tenant);
  t.requests.fetch_add(1, std::memory_order_relaxed);
  t.prompt_tokens.fetch_add(std::max(info.prompt_tokens, 0), std::memory_order_relaxed);
  t.generation_tokens.fetch_add(std::max(info.completion_tokens, 0), std::memory_order_relaxed);
}

void ServerMetrics::ReserveTenantLabels(const std::vector<std::string>& tenants) {
  std::unique_lock<std::shared_mutex> lock(impl_->tenants_mu);
  for (const std::string& t : tenants) {
    if (t.empty() || t == kNoTenantLabel || t == kOtherTenantsLabel) continue;
    auto [it, inserted] = impl_->tenants.try_emplace(t);
    if (inserted) it->second = std::make_unique<TenantMetrics>();
  }
}

void ServerMetrics::RecordTenantRefusal(std::string_view tenant, std::string_view code,
                                        std::string_view reason, bool admitted) {
  std::string label;
  impl_->Tenant(tenant, &label, /*may_take_label=*/admitted);
  std::lock_guard<std::mutex> lock(impl_->refusals_mu);
  ++impl_->refusals[{label, std::string(code), reason.empty() ? "other" : std::string(reason)}];
}

void ServerMetrics::SetConnections(Port port, int64_t open, int64_t limit) {
  Impl::PortConnections& c = impl_->port(port);
  c.open.store(open, std::memory_order_relaxed);
  c.max.store(limit, std::memory_order_relaxed);
  c.seen.store(true, std::memory_order_relaxed);
}

void ServerMetrics::RecordHttpConnectionPastItsShare() {
  impl_->http_dropped_per_client.fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::RecordAcceptPause(Port port, bool at_cap) {
  Impl::PortConnections& c = impl_->port(port);
  (at_cap ? c.pauses_full : c.pauses_error).fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::RecordGrpcConnectionDropped(std::string_view reason) {
  std::atomic<uint64_t>& counter = reason == "silent"        ? impl_->grpc_dropped_silent
                                   : reason == "per_client"  ? impl_->grpc_dropped_per_client
                                   : reason == "idle_at_cap" ? impl_->grpc_dropped_idle_at_cap
                                                             : impl_->grpc_dropped_not_http2;
  counter.fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::SetCpuInfo(std::string cpu, std::string features, std::string quant_kernels,
                               std::string half_kernels) {
  std::lock_guard<std::mutex> lock(impl_->info_mu);
  impl_->cpu_info = {std::move(cpu), std::move(features), std::move(quant_kernels),
                     std::move(half_kernels)};
}

std::string ServerMetrics::Render(const std::vector<ModelGauges>& gauges,
                                  const std::vector<DeviceGauges>& devices) const {
  // Every model seen by either side, in name order; models with gauges but no
  // observations yet render zeros so dashboards see them from the start.
  static const ModelMetrics kEmpty{};
  std::map<std::string, const ModelMetrics*> models;
  {
    std::shared_lock<std::shared_mutex> lock(impl_->mu);
    for (const auto& [name, m] : impl_->models) models[name] = m.get();
  }
  std::map<std::string, const ModelGauges*> by_model;
  for (const ModelGauges& g : gauges) {
    by_model[g.model] = &g;
    models.try_emplace(g.model, &kEmpty);
  }
  std::map<std::string, std::string> labels;  // model -> model="..."
  for (const auto& [name, m] : models) labels[name] = ModelLabel(name);

  std::string out;
  const auto histogram = [&](std::string_view name, std::string_view help,
                             const Histogram ModelMetrics::*field) {
    Header(&out, name, "histogram", help);
    for (const auto& [model, m] : models) HistogramSamples(&out, name, labels[model], m->*field);
  };
  const auto counter = [&](std::string_view name, std::string_view help,
                           const std::atomic<uint64_t> ModelMetrics::*field) {
    Header(&out, name, "counter", help);
    for (const auto& [model, m] : models) {
      Sample(&out, name, labels[model],
             std::to_string((m->*field).load(std::memory_order_relaxed)));
    }
  };
  const auto gauge = [&](std::string_view name, std::string_view type, std::string_view help,
                         const auto& value) {
    Header(&out, name, type, help);
    for (const auto& [model, g] : by_model) Sample(&out, name, labels[model], value(*g));
  };

  histogram("cohost_time_to_first_token_seconds",
            "Time from receiving a request to its first generated token, in seconds.",
            &ModelMetrics::ttft);
  histogram("cohost_inter_token_latency_seconds",
            "Time between consecutive generated tokens of a request, in seconds.",
            &ModelMetrics::inter_token);
  histogram("cohost_request_queue_time_seconds",
            "Time a request waited before it was first scheduled (or left the queue "
            "unscheduled), in seconds.",
            &ModelMetrics::queue);
  histogram("cohost_e2e_request_latency_seconds",
            "Time from receiving a request to its end, in seconds.", &ModelMetrics::e2e);

  Header(&out, "cohost_requests_total", "counter",
         "Requests (API calls: n choices are one) finished, by finish reason.");
  for (const auto& [model, m] : models) {
    for (runtime::FinishReason r : kReasons) {
      Sample(&out, "cohost_requests_total",
             Cat({labels[model], ",finish_reason=\"", runtime::FinishReasonName(r), "\""}),
             std::to_string(m->finished[static_cast<size_t>(r)].load(std::memory_order_relaxed)));
    }
  }
  Header(&out, "cohost_request_errors_total", "counter",
         "Requests refused or failed, by gRPC status code.");
  {
    std::lock_guard<std::mutex> lock(impl_->errors_mu);
    for (const auto& [key, n] : impl_->errors) {
      Sample(&out, "cohost_request_errors_total",
             Cat({ModelLabel(key.first), ",code=\"", EscapeLabel(key.second), "\""}),
             std::to_string(n));
    }
  }
  Header(&out, "cohost_forced_call_fallbacks_total", "counter",
         "Requests whose forced tool call (tool_choice) is held to less than its schema, the "
         "grammar's limits past: a non-strict function's value bounds all left to the model "
         "(no_value_bounds), or every call's arguments any object (any_arguments).");
  for (const auto& [model, m] : models) {
    for (const auto& [to, field] :
         {std::pair{"no_value_bounds", &ModelMetrics::fallbacks_no_value_bounds},
          std::pair{"any_arguments", &ModelMetrics::fallbacks_any_arguments}}) {
      Sample(&out, "cohost_forced_call_fallbacks_total", Cat({labels[model], ",to=\"", to, "\""}),
             std::to_string((m->*field).load(std::memory_order_relaxed)));
    }
  }
  counter("cohost_prompt_tokens_total",
          "Prompt tokens of finished requests (API calls: once for n choices).",
          &ModelMetrics::prompt_tokens);
  counter("cohost_cached_prompt_tokens_total",
          "Prompt tokens of finished requests served from the prefix cache.",
          &ModelMetrics::cached_prompt_tokens);
  counter("cohost_generation_tokens_total",
          "Tokens generated by finished requests, every choice's.",
          &ModelMetrics::generation_tokens);
  counter("cohost_request_cancellations_total",
          "Requests (API calls) cancelled (client gone, aborted, or shut down).",
          &ModelMetrics::cancellations);

  gauge("cohost_preemptions_total", "counter",
        "Sequences preempted by the engine (KV blocks ran out; recomputed later).",
        [](const ModelGauges& g) { return std::to_string(g.preemptions_total); });
  gauge("cohost_running_requests", "gauge",
        "Sequences in the engine's running batch (each of n choices is one).",
        [](const ModelGauges& g) { return std::to_string(g.running_requests); });
  gauge("cohost_waiting_requests", "gauge",
        "Sequences queued in the engine, not yet running (each of n choices is one).",
        [](const ModelGauges& g) { return std::to_string(g.waiting_requests); });
  gauge("cohost_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks in use (0 to 1).",
        [](const ModelGauges& g) {
          return FormatDouble(g.kv_blocks_total > 0 ? static_cast<double>(g.kv_blocks_used) /
                                                          static_cast<double>(g.kv_blocks_total)
                                                    : 0.0);
        });
  gauge("cohost_kv_cache_blocks_total", "gauge",
        "KV cache blocks the model holds now (its share of the device pool grows and shrinks).",
        [](const ModelGauges& g) { return std::to_string(g.kv_blocks_total); });
  gauge("cohost_kv_used_bytes", "gauge", "Bytes of the device's KV pool the model holds.",
        [](const ModelGauges& g) { return std::to_string(g.kv_used_bytes); });
  const auto device_gauge = [&](std::string_view name, std::string_view help,
                                int64_t DeviceGauges::*field) {
    Header(&out, name, "gauge", help);
    for (const DeviceGauges& d : devices) {
      Sample(&out, name, Cat({"device=\"", EscapeLabel(d.device), "\""}), std::to_string(d.*field));
    }
  };
  {
    std::lock_guard<std::mutex> lock(impl_->info_mu);
    if (impl_->cpu_info) {
      const auto& [cpu, features, kernels, half] = *impl_->cpu_info;
      Header(&out, "cohost_cpu_info", "gauge",
             "The CPU as cpuid reports it, and the kernels chosen for it: the quantized table "
             "and the 16-bit weights' products.");
      Sample(&out, "cohost_cpu_info",
             Cat({"cpu=\"", EscapeLabel(cpu), "\",features=\"", EscapeLabel(features),
                  "\",quant_kernels=\"", EscapeLabel(kernels), "\",half_kernels=\"",
                  EscapeLabel(half), "\""}),
             "1");
    }
  }
  for (const auto& [port, name, what] :
       {std::tuple{Port::kGrpc, "grpc", "the gRPC port (plaintext)"},
        std::tuple{Port::kHttp, "http", "the OpenAI HTTP port"}}) {
    const Impl::PortConnections& c = impl_->port(port);
    if (!c.seen.load(std::memory_order_relaxed)) continue;
    const std::string prefix = Cat({"cohost_", name, "_"});
    Header(&out, prefix + "connections", "gauge", Cat({"Connections open on ", what, "."}));
    Sample(&out, prefix + "connections", "",
           std::to_string(c.open.load(std::memory_order_relaxed)));
    Header(&out, prefix + "max_connections", "gauge",
           "The cap on them: at it, new connections wait in the kernel's backlog.");
    Sample(&out, prefix + "max_connections", "",
           std::to_string(c.max.load(std::memory_order_relaxed)));
    Header(&out, prefix + "accept_pauses_total", "counter",
           Cat({"Times ", what,
                " stopped accepting: at the cap (full), or after accept failed (error)."}));
    Sample(&out, prefix + "accept_pauses_total", "reason=\"full\"",
           std::to_string(c.pauses_full.load(std::memory_order_relaxed)));
    Sample(&out, prefix + "accept_pauses_total", "reason=\"error\"",
           std::to_string(c.pauses_error.load(std::memory_order_relaxed)));
    if (port == Port::kHttp) {
      Header(&out, "cohost_http_connections_dropped_total", "counter",
             "OpenAI HTTP connections closed as they came: past their address's share "
             "(per_client).");
      Sample(&out, "cohost_http_connections_dropped_total", "reason=\"per_client\"",
             std::to_string(impl_->http_dropped_per_client.load(std::memory_order_relaxed)));
      continue;
    }
    Header(&out, "cohost_grpc_connections_dropped_total", "counter",
           "gRPC connections closed by the listener: before gRPC had them, silent past the "
           "timeout (silent), not speaking HTTP/2 (not_http2), or past their address's share "
           "(per_client); after, shut down at the cap with no call, to make room (idle_at_cap).");
    Sample(&out, "cohost_grpc_connections_dropped_total", "reason=\"silent\"",
           std::to_string(impl_->grpc_dropped_silent.load(std::memory_order_relaxed)));
    Sample(&out, "cohost_grpc_connections_dropped_total", "reason=\"not_http2\"",
           std::to_string(impl_->grpc_dropped_not_http2.load(std::memory_order_relaxed)));
    Sample(&out, "cohost_grpc_connections_dropped_total", "reason=\"per_client\"",
           std::to_string(impl_->grpc_dropped_per_client.load(std::memory_order_relaxed)));
    Sample(&out, "cohost_grpc_connections_dropped_total", "reason=\"idle_at_cap\"",
           std::to_string(impl_->grpc_dropped_idle_at_cap.load(std::memory_order_relaxed)));
  }
  device_gauge("cohost_kv_pool_bytes", "The device's KV pool, shared by its models.",
               &DeviceGauges::kv_pool_bytes);
  device_gauge("cohost_kv_pool_used_bytes", "Bytes of the device's KV pool held by its models.",
               &DeviceGauges::kv_pool_used_bytes);

  // Tenants.
  {
    std::map<std::string, const TenantMetrics*> tenants;
    {
      std::shared_lock<std::shared_mutex> lock(impl_->tenants_mu);
      for (const auto& [name, t] : impl_->tenants) tenants[name] = t.get();
    }
    const auto tenant_label = [](std::string_view t) {
      return Cat({"tenant=\"", EscapeLabel(t), "\""});
    };
    const auto tenant_counter = [&](std::string_view name, std::string_view help,
                                    const std::atomic<uint64_t> TenantMetrics::*field) {
      Header(&out, name, "counter", help);
      for (const auto& [tenant, t] : tenants) {
        Sample(&out, name, tenant_label(tenant),
               std::to_string((t->*field).load(std::memory_order_relaxed)));
      }
    };
    tenant_counter("cohost_tenant_requests_total", "Requests finished, per tenant.",
                   &TenantMetrics::requests);
    tenant_counter("cohost_tenant_prompt_tokens_total", "Prompt tokens of finished requests.",
                   &TenantMetrics::prompt_tokens);
    tenant_counter("cohost_tenant_generation_tokens_total",
                   "Tokens generated by finished requests.", &TenantMetrics::generation_tokens);
    Header(&out, "cohost_tenant_time_to_first_token_seconds", "histogram",
           "Time from receiving a request to its first generated token, per tenant.");
    for (const auto& [tenant, t] : tenants) {
      HistogramSamples(&out, "cohost_tenant_time_to_first_token_seconds", tenant_label(tenant),
                       t->ttft);
    }
    Header(&out, "cohost_tenant_refusals_total", "counter",
           "Requests refused or failed once their tenant was known, by gRPC status code and "
           "reason (admission's, slow_reader, or other).");
    std::lock_guard<std::mutex> lock(impl_->refusals_mu);
    for (const auto& [key, n] : impl_->refusals) {
      const auto& [tenant, code, reason] = key;
      Sample(&out, "cohost_tenant_refusals_total",
             Cat({tenant_label(tenant), ",code=\"", EscapeLabel(code), "\",reason=\"",
                  EscapeLabel(reason), "\""}),
             std::to_string(n));
    }
  }

  // The model lifecycle.
  Header(&out, "cohost_model_state", "gauge",
         "1 for the state the model is in (loading, ready, evicted, failed), 0 for the others.");
  for (const auto& [model, g] : by_model) {
    for (const auto& [state, now] : g->states) {
      Sample(&out, "cohost_model_state",
             Cat({labels[model], ",state=\"", EscapeLabel(state), "\""}), now ? "1" : "0");
    }
  }
  Header(&out, "cohost_model_weights_bytes", "gauge",
         "Bytes the model's resident weights take on its device (0 while not resident).");
  for (const auto& [model, g] : by_model) {
    Sample(&out, "cohost_model_weights_bytes",
           Cat({labels[model], ",device=\"", EscapeLabel(g->device), "\""}),
           std::to_string(g->weights_bytes));
  }
  gauge("cohost_model_offloaded_bytes", "gauge",
        "Bytes of the model's weights kept in host memory while it is evicted (a GPU's).",
        [](const ModelGauges& g) { return std::to_string(g.offloaded_bytes); });
  gauge("cohost_model_evictions_total", "counter",
        "Times the model was evicted to make room for another.",
        [](const ModelGauges& g) { return std::to_string(g.evictions_total); });
  gauge("cohost_ttft_predictions_total", "counter",
        "Requests whose TTFT admission predicted and that produced a first token.",
        [](const ModelGauges& g) { return std::to_string(g.ttft_predictions_total); });
  gauge("cohost_ttft_predicted_seconds_total", "counter",
        "Sum of the predicted TTFTs of those requests, in seconds.",
        [](const ModelGauges& g) { return FormatDouble(g.ttft_predicted_seconds_total); });
  gauge("cohost_ttft_actual_seconds_total", "counter",
        "Sum of the actual TTFTs of those requests, in seconds.",
        [](const ModelGauges& g) { return FormatDouble(g.ttft_actual_seconds_total); });
  gauge(
      "cohost_ttft_prediction_abs_error_seconds_total", "counter",
      "Sum of |actual - predicted| TTFT over those requests, in seconds.",
      [](const ModelGauges& g) { return FormatDouble(g.ttft_prediction_abs_error_seconds_total); });
  Header(&out, "cohost_model_loads_total", "counter", "Loads of the model's weights, by result.");
  for (const auto& [model, m] : models) {
    Sample(&out, "cohost_model_loads_total", Cat({labels[model], ",result=\"ok\""}),
           std::to_string(m->loads_ok.load(std::memory_order_relaxed)));
    Sample(&out, "cohost_model_loads_total", Cat({labels[model], ",result=\"failed\""}),
           std::to_string(m->loads_failed.load(std::memory_order_relaxed)));
  }
  histogram("cohost_model_load_seconds",
            "Time from the start of a successful load to the model being ready, in seconds.",
            &ModelMetrics::load);
  Header(&out, "cohost_executor_step_seconds", "histogram",
         "Time of one engine step on a device's executor, in seconds.");
  {
    std::shared_lock<std::shared_mutex> lock(impl_->steps_mu);
    for (const auto& [key, h] : impl_->steps) {
      HistogramSamples(&out, "cohost_executor_step_seconds",
                       Cat({"device=\"", EscapeLabel(key.first), "\",", ModelLabel(key.second)}),
                       *h);
    }
  }
  return out;
}

}  // namespace cohost::server
