// `cohost serve`: loads models, serves them over gRPC (with health and
// reflection) and /metrics over HTTP, and drains on SIGTERM/SIGINT. Signals
// are taken by one thread with sigwait, so no work happens in a signal
// handler.

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/cpu_info.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "scheduler/device_budget.h"
#include "scheduler/footprint_record.h"
#include "scheduler/memory_plan.h"
#include "scheduler/model_config_file.h"
#include "scheduler/router.h"
#include "server/http/http_front_door.h"
#include "server/library_logs.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server.h"
#include "tools/common/arg_parser.h"
#include "tools/common/progress.h"
#include "tools/serving/engine_flags.h"
#include "tools/serving/serving_commands.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> ServeFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"model", "NAME=PATH", "serve the model at PATH (.gguf or HF directory) as NAME",
       /*repeated=*/true},
      {"config", "FILE",
       "models to serve and how (YAML or JSON; docs/architecture.md); with or instead of --model"},
      {"model-root", "DIR",
       "let LoadModel load models under DIR (paths relative to it); without it LoadModel only "
       "reloads the configured models by name"},
      {"cpu-memory-mb", "MB",
       "memory cohost may use on the CPU: KV pool plus weights (default 80% of what is available)"},
      {"gpu-memory-fraction", "F", "of a CUDA device's free memory cohost may use (default 0.9)"},
      {"offload-memory-mb", "MB",
       "host memory an evicted GPU model's weights may wait in, so that it reloads with one "
       "copy (default half of what is available; 0: drop them)"},
      {"footprint-file", "FILE",
       "where each load's measured memory is kept for placing it next time (default "
       "~/.cache/cohost/footprints.json; none: do not keep)"},
      {"host", "H",
       "address to listen on (default 127.0.0.1; another without API keys gets a warning)"},
      {"api-key-file", "FILE",
       "API keys, one per line: KEY [tenant=NAME] [role=user|admin]; COHOST_API_KEY adds an "
       "admin key. With keys, every call but health and metrics needs one"},
      {"port", "P", "gRPC port; 0 picks a free one (default 50051)"},
      {"tls-cert", "FILE", "serve gRPC and HTTP over TLS with this PEM certificate (chain)"},
      {"tls-key", "FILE", "the PEM private key of --tls-cert"},
      {"tls-client-ca", "FILE",
       "require client certificates that chain to this PEM CA (mutual TLS)"},
      {"http-port", "P",
       "also serve the OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, "
       "/v1/models, /health) on this port; 0 picks a free one (default: off)"},
      {"http-cors-origin", "ORIGIN",
       "let browser pages from ORIGIN (\"*\" for any, or like https://app.example) call the "
       "HTTP API: CORS headers on every reply, preflights answered (default: none)"},
      {"http-max-connections", "N",
       "connections the HTTP API keeps open at once; past it new ones wait to be accepted "
       "(default half the open-files limit, at most 4096)"},
      {"http-max-connections-per-client", "N",
       "of them, at most this many from one client address (loopback aside); more are closed "
       "at once; 0: no such cap (default half of --http-max-connections)"},
      {"reasoning-parser", "auto|none",
       "auto: the HTTP API's chats with a model whose template writes think blocks (Qwen3) give "
       "the block as the message's reasoning (and reasoning_content), apart from its content, "
       "as vLLM's qwen3 parser; none: all of it is content (default auto)"},
      {"grpc-max-connections", "N",
       "plaintext gRPC connections kept open at once; past it new ones wait to be accepted "
       "(default an eighth of the open-files limit, at most 4096)"},
      {"grpc-max-connections-per-client", "N",
       "of them, at most this many from one client address (loopback aside); more are closed "
       "at once; 0: no such cap (default half of --grpc-max-connections)"},
      {"metrics-port", "M", "HTTP port for /metrics; 0 picks a free one (default 9090)"},
      {"metrics-host", "HOST",
       "address /metrics and /healthz listen on; they take no API key and name every model "
       "and tenant (default --host's)"},
      {"max-queued-requests", "N", "per model, requests waiting to be scheduled (default 256)"},
      {"max-queued-tokens", "N", "per model, prompt tokens waiting to be scheduled (default 1M)"},
      {"failed-load-retry-ms", "MS",
       "after a model's file fails to load, refuse its requests this long (doubling per failure "
       "in a row, up to 64x) before one retries the load (default 5000; 0: retry at once)"},
      {"drain-seconds", "S", "on SIGTERM, how long in-flight requests may finish (default 30)"},
      {"stream-stall-seconds", "S",
       "a gRPC stream whose client has read nothing for this long once its output is complete "
       "(or its buffer full), or has not read 1 MiB of what was left in each such span, is "
       "cancelled, letting go of what it holds (default 30)"},
      {"step-slice-ms", "MS",
       "while models share a device, size each step to last about this long (default 250; "
       "0: no cap)"},
      {"help", "", "show this help"},
  };
  for (FlagSpec& s : EngineFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "cohost serve: %s\n", std::string(status.message()).c_str());
  return 1;
}

struct ServeConfig {
  std::vector<scheduler::ModelSpec> models;  // --config's, then --model's
  runtime::EngineConfig engine;
  scheduler::RouterOptions router;
  std::optional<int64_t> cpu_memory_bytes;
  double gpu_fraction = 0.9;
  std::optional<int64_t> kv_pool_bytes;  // --kv-cache-mb
  server::ServerOptions server;
  int metrics_port = 9090;
  std::string metrics_host;      // --metrics-host, else --host
  std::optional<int> http_port;  // the OpenAI API; off when unset
  std::string http_cors_origin;  // --http-cors-origin; empty: no CORS
  std::optional<int64_t> http_max_connections;
  std::optional<int64_t> http_max_connections_per_client;
  bool split_reasoning = true;  // --reasoning-parser auto
  std::optional<int64_t> grpc_max_connections;
  std::optional<int64_t> grpc_max_connections_per_client;
  int64_t drain_seconds = 30;
};

// Reads an optional integer flag into `out` (unchanged when absent).
template <typename T>
absl::Status ReadInt(const ParsedArgs& args, const std::string& name, int64_t lo, int64_t hi,
                     T& out) {
  absl::StatusOr<std::optional<int64_t>> v = args.GetInt(name, lo, hi);
  if (!v.ok()) return v.status();
  if (v->has_value()) out = static_cast<T>(**v);
  return absl::OkStatus();
}

absl::StatusOr<ServeConfig> ConfigFromArgs(const ParsedArgs& args) {
  ServeConfig c;
  int64_t slice_ms = 250;
  int64_t stall_seconds = 30;
  if (std::optional<std::string> file = args.Get("config")) {
    ASSIGN_OR_RETURN(scheduler::ServeConfig file_config, scheduler::LoadServeConfigFile(*file));
    c.models = std::move(file_config.models);
    c.router.tenants = std::move(file_config.tenants);
  }
  const size_t from_file = c.models.size();
  for (const std::string& flag : args.All("model")) {
    ASSIGN_OR_RETURN(scheduler::ModelSpec spec, scheduler::ModelSpecFromFlag(flag));
    // One name, one model: a second would be refused at its load while the
    // memory plan counted both, and the operator's intent lost.
    for (size_t i = 0; i < c.models.size(); ++i) {
      if (c.models[i].name != spec.name) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "--model ", Quote(flag), ": the name ", Quote(spec.name), " is already given ",
          i < from_file ? "in --config's file" : "by an earlier --model"));
    }
    c.models.push_back(std::move(spec));
  }
  if (c.models.empty()) return absl::InvalidArgumentError("no models: give --model or --config");
  int64_t cpu_mb = 0;
  c.server.host = args.Get("host").value_or("127.0.0.1");
  c.metrics_host = args.Get("metrics-host").value_or(c.server.host);
  ASSIGN_OR_RETURN(c.server.tls,
                   server::auth::LoadTlsConfig(args.Get("tls-cert"), args.Get("tls-key"),
                                               args.Get("tls-client-ca")));
  ASSIGN_OR_RETURN(c.server.api_keys, server::auth::ApiKeys::Load(args.Get("api-key-file"),
                                                                  std::getenv("COHOST_API_KEY")));
  if (std::optional<std::string> root = args.Get("model-root")) {
    std::error_code ec;
    if (!std::filesystem::is_directory(*root, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("--model-root ", *root, ": not a directory"));
    }
    c.server.model_root = *root;
  }
  c.server.port = 50051;
  if (args.Has("http-port")) {
    c.http_port = 0;
    RETURN_IF_ERROR(ReadInt(args, "http-port", 0, 65535, *c.http_port));
  }
  if (std::optional<std::string> origin = args.Get("http-cors-origin")) {
    RETURN_IF_ERROR(server::http::ValidCorsOrigin(*origin));
    c.http_cors_origin = *origin;
  }
  if (args.Has("http-max-connections")) {
    c.http_max_connections = 0;
    RETURN_IF_ERROR(ReadInt(args, "http-max-connections", 1, 1 << 20, *c.http_max_connections));
  }
  if (args.Has("http-max-connections-per-client")) {
    c.http_max_connections_per_client = 0;
    RETURN_IF_ERROR(ReadInt(args, "http-max-connections-per-client", 0, 1 << 20,
                            *c.http_max_connections_per_client));
  }
  if (std::optional<std::string> parser = args.Get("reasoning-parser")) {
    if (*parser != "auto" && *parser != "none") {
      return absl::InvalidArgumentError(
          absl::StrCat("--reasoning-parser: expected auto or none, got ", Quote(*parser)));
    }
    c.split_reasoning = *parser == "auto";
  }
  if (args.Has("grpc-max-connections")) {
    c.grpc_max_connections = 0;
    RETURN_IF_ERROR(ReadInt(args, "grpc-max-connections", 1, 1 << 20, *c.grpc_max_connections));
  }
  if (args.Has("grpc-max-connections-per-client")) {
    c.grpc_max_connections_per_client = 0;
    RETURN_IF_ERROR(ReadInt(args, "grpc-max-connections-per-client", 0, 1 << 20,
                            *c.grpc_max_connections_per_client));
  }
  for (const absl::Status& s : {
           ReadInt(args, "port", 0, 65535, c.server.port),
           ReadInt(args, "metrics-port", 0, 65535, c.metrics_port),
           ReadInt(args, "max-queued-requests", 1, 1 << 20, c.router.admission.max_queued_requests),
           ReadInt(args, "max-queued-tokens", 1, int64_t{1} << 40,
                   c.router.admission.max_queued_prompt_tokens),
           ReadInt(args, "failed-load-retry-ms", 0, 3'600'000,
                   c.router.admission.failed_load_retry_ms),
           ReadInt(args, "cpu-memory-mb", 1, int64_t{1} << 30, cpu_mb),
           ReadInt(args, "drain-seconds", 0, int64_t{24} * 3600, c.drain_seconds),
           ReadInt(args, "step-slice-ms", 0, 60000, slice_ms),
           ReadInt(args, "stream-stall-seconds", 1, int64_t{24} * 3600, stall_seconds),
       }) {
    if (!s.ok()) return s;
  }
  c.server.stream.write_stall_timeout = std::chrono::seconds(stall_seconds);
  // Tests (serve_test) hold every load until a byte is written to this FIFO.
  if (const char* gate = std::getenv("COHOST_TEST_LOAD_GATE"); gate != nullptr && *gate != '\0') {
    c.router.before_load = [gate = std::string(gate)] { std::ifstream(gate).get(); };
  }
  c.router.executor.step_slice = std::chrono::milliseconds(slice_ms);
  ASSIGN_OR_RETURN(c.router.weights, WeightsPolicyFromArgs(args));
  const std::optional<std::string> footprint_flag = args.Get("footprint-file");
  if (footprint_flag && footprint_flag->empty()) {
    // Read as "none" before; a path left out of a script is more likely.
    return absl::InvalidArgumentError(
        "--footprint-file is empty (give none to keep no record of footprints)");
  }
  const std::string footprints = footprint_flag.value_or(scheduler::DefaultFootprintFile());
  if (!footprints.empty() && footprints != "none") {
    c.router.footprints = std::make_shared<scheduler::FootprintRecord>(footprints);
  }
  if (cpu_mb > 0) c.cpu_memory_bytes = cpu_mb << 20;
  int64_t offload_mb = -1;
  RETURN_IF_ERROR(ReadInt(args, "offload-memory-mb", 0, int64_t{1} << 30, offload_mb));
  c.router.offload_budget_bytes =
      offload_mb >= 0 ? offload_mb << 20 : scheduler::DefaultOffloadBudget();
  ASSIGN_OR_RETURN(std::optional<double> fraction, args.GetDouble("gpu-memory-fraction"));
  if (fraction) c.gpu_fraction = *fraction;
  absl::StatusOr<runtime::EngineConfig> engine = EngineConfigFromArgs(args);
  if (!engine.ok()) return engine.status();
  c.engine = *engine;
  if (args.Has("kv-cache-mb")) c.kv_pool_bytes = c.engine.kv_cache_bytes;
  return c;
}

// The live per-model values /metrics shows, read from the engines at scrape time.
std::vector<server::ModelGauges> CollectGauges(const scheduler::Router& router) {
  std::vector<server::ModelGauges> out;
  for (const scheduler::ModelSummary& m : router.ListModels()) {
    absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> model = router.Find(m.name);
    if (!model.ok()) continue;
    const runtime::EngineStats s = (*model)->Stats();
    server::ModelGauges g;
    g.device = m.device;
    for (scheduler::ModelState state : scheduler::kModelStates) {
      g.states.emplace_back(scheduler::ModelStateName(state), state == m.state);
    }
    g.weights_bytes = m.weights_bytes;
    g.offloaded_bytes = m.offloaded_bytes;
    g.evictions_total = m.evictions;
    g.model = m.name;
    g.running_requests = s.num_running;
    g.waiting_requests = s.num_waiting;
    g.kv_blocks_total = s.kv_blocks_total;
    g.kv_blocks_used = s.kv_blocks_total - s.kv_blocks_free;
    g.preemptions_total = s.num_preemptions;
    g.kv_used_bytes = m.kv_bytes_held;
    const scheduler::TtftPredictionTotals p = (*model)->ttft_predictions().totals();
    g.ttft_predictions_total = p.count;
    g.ttft_predicted_seconds_total = p.predicted_seconds;
    g.ttft_actual_seconds_total = p.actual_seconds;
    g.ttft_prediction_abs_error_seconds_total = p.abs_error_seconds;
    out.push_back(std::move(g));
  }
  return out;
}

// The thread that takes SIGINT/SIGTERM (sigwait). Threads that libraries
// start before main (OpenBLAS's pool) do not block the signals; if one of them
// is picked, a handler that only forwards the signal to the waiter (with
// pthread_kill, async-signal-safe) stands in for the default "terminate".
pthread_t g_signal_waiter;

extern "C" void ForwardSignalToWaiter(int sig) { pthread_kill(g_signal_waiter, sig); }

class SignalWaiter {
 public:
  static sigset_t Signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
  }
  // In the calling thread, inherited by every thread it starts afterwards.
  static void BlockSignals() {
    const sigset_t set = Signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

  // Call after BlockSignals. on_repeat runs (on the waiter's thread) for
  // every signal after the first.
  explicit SignalWaiter(std::function<void()> on_repeat) : on_repeat_(std::move(on_repeat)) {
    thread_ = std::thread([this] { Loop(); });
    g_signal_waiter = thread_.native_handle();
    SetDisposition(ForwardSignalToWaiter);
  }
  ~SignalWaiter() {
    SetDisposition(SIG_IGN);  // shutting down anyway; nothing left to forward to
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    // Not a kill: SIGTERM is blocked in every thread, so it only wakes sigwait.
    pthread_kill(thread_.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
    thread_.join();
  }

  // From now on the first signal drains. Before (while models load, before
  // any port opens) it ends the process at once, with 128 + its number:
  // nothing is served yet, and a load cannot be interrupted, so waiting for
  // it to finish only to drain nothing would hold Ctrl-C for as long as the
  // load takes.
  void MarkServing() {
    std::lock_guard<std::mutex> lock(mu_);
    serving_ = true;
  }

  // Blocks until the first signal; returns its number.
  int Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return first_signal_ != 0; });
    return first_signal_;
  }

 private:
  static void SetDisposition(void (*handler)(int)) {
    struct sigaction sa = {};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  }

  void Loop() {
    const sigset_t set = Signals();
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      if (!serving_) {
        std::fprintf(stderr, "cohost serve: %s before serving began, exiting\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        std::fflush(stderr);
        _exit(128 + sig);
      }
      if (first_signal_ == 0) {
        first_signal_ = sig;
        cv_.notify_all();
      } else if (on_repeat_) {
        lock.unlock();
        on_repeat_();
      }
    }
  }

  std::function<void()> on_repeat_;
  std::mutex mu_;
  std::condition_variable cv_;
  int first_signal_ = 0;
  bool serving_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

// Every connection (gRPC, HTTP, metrics) and every open model file holds a
// descriptor. The soft limit many systems start a process with, 1024, would
// refuse connections long before memory or compute runs out; raise it toward
// the hard limit (as vLLM does), to at most 65536.
void RaiseOpenFileLimit() {
  constexpr rlim_t kWant = 65536;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want = limit.rlim_max == RLIM_INFINITY ? kWant : std::min(limit.rlim_max, kWant);
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= want) return;
  const rlim_t was = limit.rlim_cur;
  limit.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  std::fprintf(stderr, "cohost serve: open files limit raised from %llu to %llu\n",
               static_cast<unsigned long long>(was), static_cast<unsigned long long>(want));
}

// A port's connection cap by default: a share of the open-files limit
// (HTTP/1 a half; gRPC, which multiplexes, an eighth, each of its connections
// taking two descriptors (GrpcListener keeps a duplicate); the rest is for
// metrics and model files), at most 4096.
size_t DefaultConnectionCap(rlim_t share) {
  constexpr rlim_t kMost = 4096;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kMost;
  return static_cast<size_t>(std::clamp<rlim_t>(limit.rlim_cur / share, 1, kMost));
}

}  // namespace

int ServeCommand(int argc, char** argv) {
  const std::vector<FlagSpec> specs = ServeFlagSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(specs, argc, argv);
  if (!args.ok() || args->Has("help") || (!args->Has("model") && !args->Has("config"))) {
    if (!args.ok()) std::fprintf(stderr, "cohost serve: %s\n", args.status().message().data());
    std::fprintf(
        stderr,
        "usage: cohost serve (--model NAME=PATH [--model ...] | --config FILE) [flags]\n\n%s",
        FlagsHelp(specs).c_str());
    return args.ok() && args->Has("help") ? 0 : 2;
  }
  absl::StatusOr<ServeConfig> config = ConfigFromArgs(*args);
  if (!config.ok()) return Fail(config.status());

  // Before the threads we start, so that they all inherit the mask.
  SignalWaiter::BlockSignals();
  // Before any server or channel: a client's malformed requests must not fill
  // the log through protobuf's or gRPC's own lines.
  server::LimitLibraryLogs();
  RaiseOpenFileLimit();

  absl::StatusOr<std::vector<DeviceBackend>> backends = BackendsFromArgs(*args);
  if (!backends.ok()) return Fail(backends.status());
  // Each budget flag sizes one kind of device: the other kind's is unused.
  const bool on_cpu = backends->front().backend->kind() == kernels::BackendKind::kCpu;
  if (const char* unused = on_cpu ? "gpu-memory-fraction" : "cpu-memory-mb"; args->Has(unused)) {
    std::fprintf(stderr, "cohost serve: WARNING: --%s is unused on %s devices (%s)\n", unused,
                 on_cpu ? "CPU" : "CUDA",
                 on_cpu ? "--cpu-memory-mb sizes the CPU's budget"
                        : "--gpu-memory-fraction sizes each GPU's budget; --offload-memory-mb the "
                          "host memory evicted weights wait in");
  }

  // Destroyed in reverse order: servers, then the router (stopping engines,
  // whose sinks still report to metrics), then metrics.
  server::ServerMetrics metrics;
  {
    // The tenants the operator named keep their own metric labels whatever
    // other names clients claim.
    std::vector<std::string> named = config->server.api_keys.Tenants();
    for (const auto& tenant : config->router.tenants.named) named.push_back(tenant.first);
    metrics.ReserveTenantLabels(named);
  }
  std::vector<scheduler::DeviceHandle> handles;
  for (const DeviceBackend& d : *backends) handles.push_back({d.id, d.backend.get()});
  absl::StatusOr<std::vector<scheduler::DeviceSetup>> devices = scheduler::SplitDeviceBudgets(
      handles, config->models,
      {config->cpu_memory_bytes, config->gpu_fraction, config->kv_pool_bytes, config->engine,
       config->router.footprints.get(), config->router.weights.keep_quantized},
      &config->router.planned_devices);
  if (!devices.ok()) return Fail(devices.status());
  config->server.configured_models = config->models;
  config->router.on_load = [&metrics](const std::string& model, bool ok, double seconds) {
    metrics.RecordModelLoad(model, ok, seconds);
  };
  config->router.executor.on_step = [&metrics](const std::string& device, const std::string& model,
                                               double seconds) {
    metrics.ObserveExecutorStep(device, model, seconds);
  };
  scheduler::Router router(*devices, config->engine, config->router);
  SignalWaiter signals([&router] {
    std::fputs("cohost serve: second signal, cancelling all requests\n", stderr);
    router.AbortAll();
  });

  // The CPU and the kernel table cpuid chose, here and in /metrics.
  const kernels::CpuInfo cpu = kernels::HostCpuInfo();
  metrics.SetCpuInfo(cpu.brand, cpu.features, cpu.quant_kernels, cpu.half_kernels);
  std::fprintf(stderr, "cohost serve: cpu %s (%s); quantized kernels: %s; 16-bit weights: %s%s\n",
               cpu.brand.empty() ? "unnamed" : cpu.brand.c_str(), cpu.features.c_str(),
               cpu.quant_kernels.c_str(), cpu.half_kernels.c_str(),
               config->router.weights.keep_quantized
                   ? ""
                   : " (unused: --cpu-precision reference loads weights as fp32)");
  for (const std::shared_ptr<scheduler::Device>& d : router.devices()) {
    // Where the pool was planned: the models whose expected footprints it leaves room for.
    std::vector<std::string> planned;
    for (const auto& [model, id] : config->router.planned_devices) {
      if (id == d->id) planned.push_back(model);
    }
    const std::string sized =
        config->kv_pool_bytes || d->backend->kind() == kernels::BackendKind::kCpu
            ? ""
            : absl::StrCat(
                  "; the pool is what the budget leaves beside ",
                  planned.empty() ? "room for models loaded later" : absl::StrJoin(planned, ", "));
    std::fprintf(stderr, "cohost serve: %s: %lld MB for weights, %lld MB KV pool (%s)%s\n",
                 d->name.c_str(), static_cast<long long>(d->weights_budget_bytes >> 20),
                 static_cast<long long>(d->kv_pool->budget() >> 20),
                 std::string(kernels::DTypeName(d->backend->kv_dtype())).c_str(), sized.c_str());
  }
  for (const scheduler::ModelSpec& spec : config->models) {
    ProgressBar bar(spec.load == scheduler::LoadPolicy::kLazy
                        ? absl::StrCat("registering ", spec.name, " (lazy) from ", spec.path)
                        : absl::StrCat("loading ", spec.name, " from ", spec.path));
    absl::Status s =
        router.AddModel(spec, [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); });
    bar.Finish();
    if (s.ok()) continue;
    // A model that could not even be registered (a bad file, a taken name) is
    // a configuration error; one registered but failed to load is reported
    // and the others serve on.
    if (!router.Find(spec.name).ok()) return Fail(s);
    std::fprintf(stderr, "cohost serve: model \"%s\" failed to load, serving the others: %s\n",
                 spec.name.c_str(), std::string(s.message()).c_str());
  }

  // From the first port on, a signal drains (at once, if it came before the
  // wait below).
  signals.MarkServing();
  config->server.max_connections = config->grpc_max_connections
                                       ? static_cast<size_t>(*config->grpc_max_connections)
                                       : DefaultConnectionCap(8);
  config->server.max_connections_per_client =
      config->grpc_max_connections_per_client
          ? static_cast<size_t>(*config->grpc_max_connections_per_client)
          : std::max<size_t>(config->server.max_connections / 2, 1);
  if ((config->grpc_max_connections || config->grpc_max_connections_per_client) &&
      config->server.tls.enabled()) {
    std::fputs(
        "cohost serve: --grpc-max-connections(-per-client) cap plaintext gRPC only: with "
        "TLS, gRPC's own listener takes the connections, uncapped\n",
        stderr);
  }
  absl::StatusOr<std::unique_ptr<server::Server>> grpc_server =
      server::Server::Start(&router, &metrics, config->server);
  if (!grpc_server.ok()) return Fail(grpc_server.status());
  absl::StatusOr<std::unique_ptr<server::MetricsHttpServer>> http =
      server::MetricsHttpServer::Start(
          config->metrics_host, config->metrics_port,
          [&metrics, &router] {
            std::vector<server::DeviceGauges> pools;
            for (const std::shared_ptr<scheduler::Device>& d : router.devices()) {
              pools.push_back({d->kv_pool->device(), d->kv_pool->budget(), d->kv_pool->used()});
            }
            return metrics.Render(CollectGauges(router), pools);
          },
          [&router, &grpc_server] { return !router.draining() && (*grpc_server)->accepting(); });
  if (!http.ok()) return Fail(http.status());
  std::unique_ptr<server::http::HttpFrontDoor> openai;
  if (config->http_port) {
    server::http::HttpOptions options;
    options.host = config->server.host;
    options.port = *config->http_port;
    options.max_connections = config->http_max_connections
                                  ? static_cast<size_t>(*config->http_max_connections)
                                  : DefaultConnectionCap(2);
    options.max_connections_per_client =
        config->http_max_connections_per_client
            ? static_cast<size_t>(*config->http_max_connections_per_client)
            : std::max<size_t>(options.max_connections / 2, 1);
    options.tls = config->server.tls;
    options.call.split_reasoning = config->split_reasoning;
    options.cors_origin = config->http_cors_origin;
    options.grpc_accepting = [&grpc_server] { return (*grpc_server)->accepting(); };
    const server::StreamDeps deps{&router, &metrics, &config->server.api_keys,
                                  config->server.stream};
    absl::StatusOr<std::unique_ptr<server::http::HttpFrontDoor>> door =
        server::http::HttpFrontDoor::Start(deps, options);
    if (!door.ok()) return Fail(door.status());
    openai = *std::move(door);
  }

  const std::string metrics_address = server::HostPort(config->metrics_host, (*http)->port());
  std::fprintf(stderr, "cohost serve: listening on %s (metrics on %s)%s%s%s\n",
               (*grpc_server)->address().c_str(), metrics_address.c_str(),
               openai ? absl::StrCat(", OpenAI HTTP API on :", openai->port()).c_str() : "",
               config->server.api_keys.empty() ? "" : ", API keys required",
               !config->server.tls.enabled() ? ""
               : config->server.tls.mutual() ? ", mutual TLS"
                                             : ", TLS");
  if (config->server.api_keys.empty() && !server::auth::IsLoopbackHost(config->server.host)) {
    std::fprintf(stderr,
                 "cohost serve: WARNING: listening on %s without API keys: anyone who can reach "
                 "it may generate and manage models (give --api-key-file or COHOST_API_KEY)\n",
                 config->server.host.c_str());
  }
  if (!config->server.api_keys.empty() && !server::auth::IsLoopbackHost(config->metrics_host)) {
    // Keys guard the APIs, and even which models exist (health); the
    // metrics port takes none and names every model and tenant.
    std::fprintf(stderr,
                 "cohost serve: WARNING: /metrics on %s takes no API key and names every "
                 "model and tenant (give --metrics-host 127.0.0.1 to keep it local)\n",
                 metrics_address.c_str());
  }
  std::fflush(stderr);

  const int sig = signals.Wait();
  std::fprintf(stderr, "cohost serve: %s, draining (up to %llds)\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(config->drain_seconds));
  const int aborted = (*grpc_server)->Drain(std::chrono::seconds(config->drain_seconds));
  if (aborted > 0) {
    std::fprintf(stderr, "cohost serve: cancelled %d requests still running at the deadline\n",
                 aborted);
  }
  if (openai) openai->Stop(std::chrono::seconds(2));
  (*http)->Stop();
  grpc_server->reset();
  std::fputs("cohost serve: stopped\n", stderr);
  return 0;
}

}  // namespace cohost::tools
