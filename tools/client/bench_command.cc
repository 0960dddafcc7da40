// `cohost bench`: the load generator. Reads flags into a LoadPlan and a
// RequestSource, runs the load (load_runner), then prints the table and writes
// the JSON report (bench_report).

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/client/bench_report.h"
#include "tools/client/client_commands.h"
#include "tools/client/client_common.h"
#include "tools/client/load_gen.h"
#include "tools/client/load_runner.h"
#include "tools/common/arg_parser.h"
#include "tools/common/progress.h"
#include "tools/common/sampling_flags.h"

namespace cohost::tools {
namespace {

constexpr int64_t kDefaultNumRequests = 100;
constexpr int64_t kDefaultPromptTokens = 128;
// The most a generated prompt may have: every request holds its ids.
constexpr int64_t kMaxPromptTokens = int64_t{1} << 24;

std::vector<FlagSpec> BenchFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"server", "ADDR", "the server, HOST:PORT (required)"},
      {"model", "NAME", "the served model's name (required)"},
      {"rate", "R", "open loop: Poisson arrivals at R requests/s"},
      {"burstiness", "B",
       "with --rate: gamma-distributed gaps of shape B (1: Poisson, the default; below 1: "
       "bursts and lulls)"},
      {"concurrency", "C", "closed loop: keep C requests in flight (with --rate: at most C)"},
      {"prompt", "TEXT", "a prompt, used in turn", /*repeated=*/true},
      {"prompt-tokens", "N", "generated prompts of N random token ids (default 128)"},
      {"prompts-file", "F.jsonl",
       "{\"prompt\": ...} or {\"prompt_ids\": [...]} per line, "
       "optional \"max_tokens\""},
      {"max-tokens-range", "LO:HI", "output lengths uniform in [LO, HI]"},
      {"trace", "F.csv",
       "replay an Azure trace (TIMESTAMP,ContextTokens,GeneratedTokens); implies --ignore-eos"},
      {"time-scale", "S", "multiply trace times by S (0.5 = twice the rate; default 1)"},
      {"max-prompt-tokens", "N", "cap trace prompt lengths (default: the model's context)"},
      {"num-requests", "N", "stop issuing after N requests (default 100, or the trace's rows)"},
      {"duration", "S", "stop issuing after S seconds"},
      {"drain-timeout", "S", "then wait at most S seconds for in-flight requests (default 60)"},
      {"seed", "S", "seed of the workload (arrivals, prompts, lengths; default 0)"},
      {"goodput-ttft-ms", "X", "goodput target: time to first token <= X ms"},
      {"goodput-tpot-ms", "Y", "goodput target: time per output token <= Y ms"},
      {"timeout-ms", "N", "each request's deadline"},
      {"tenant", "T", "tenant name (call metadata x-cohost-tenant)"},
      {"output", "F.json", "where to write the JSON report (default bench-result.json)"},
      {"help", "", "show this help"},
  };
  // The workload --seed above replaces the sampling seed; requests sample with the
  // server's random seeds. --ignore-eos makes output lengths exactly --max-tokens.
  for (FlagSpec& s : SamplingFlagSpecs()) {
    if (s.name != "seed") specs.push_back(std::move(s));
  }
  for (FlagSpec& s : TlsFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

int Fail(std::string_view message) {
  std::fprintf(stderr, "cohost bench: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

int Fail(const absl::Status& status) { return Fail(std::string(status.message())); }

// A positive double flag up to 1e9 (seconds become int64 nanoseconds), or
// nullopt when not given.
absl::StatusOr<std::optional<double>> PositiveDouble(const ParsedArgs& args, const char* name) {
  constexpr double kMost = 1e9;
  absl::StatusOr<std::optional<double>> v = args.GetDouble(name);
  if (!v.ok()) return v.status();
  if (v->has_value() && !(**v > 0 && **v <= kMost)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": must be > 0 and at most 1e9"));
  }
  return *v;
}

// Everything the flags decide, checked before any request is sent.
struct BenchSetup {
  LoadPlan plan;
  std::optional<RequestSource> source;
  std::optional<RateArrivals> arrivals;
  std::vector<double> trace_arrivals;
  size_t next_trace = 0;
  GoodputTargets targets;
  nlohmann::json config;
  std::string output = "bench-result.json";
};

absl::Status Setup(const ParsedArgs& args, const v1::ModelInfo& model, BenchSetup* s) {
  nlohmann::json& c = s->config;
  c["server"] = *args.Get("server");
  c["model"] = model.name();
  absl::StatusOr<std::optional<int64_t>> seed =
      args.GetInt("seed", 0, std::numeric_limits<int64_t>::max());
  if (!seed.ok()) return seed.status();
  const uint64_t workload_seed = static_cast<uint64_t>(seed->value_or(0));
  c["seed"] = workload_seed;

  // Sampling and stops, shared by every request.
  std::string json_schema;
  absl::StatusOr<runtime::SamplingParams> params = SamplingParamsFromArgs(args, &json_schema);
  if (!params.ok()) return params.status();
  params->seed.reset();
  s->plan.base.set_model(model.name());
  FillSampling(*params, json_schema, &s->plan.base);
  c["sampling"] = {{"temperature", params->temperature},
                   {"top_k", params->top_k},
                   {"top_p", params->top_p},
                   {"min_p", params->min_p},
                   {"ignore_eos", params->ignore_eos},
                   {"stop", params->stop_strings}};

  // Output lengths.
  if (args.Has("max-tokens") && args.Has("max-tokens-range")) {
    return absl::InvalidArgumentError("give --max-tokens or --max-tokens-range, not both");
  }
  absl::StatusOr<MaxTokensDist> max_tokens =
      args.Has("max-tokens-range") ? MaxTokensDist::ParseRange(*args.Get("max-tokens-range"))
                                   : MaxTokensDist::Fixed(params->max_tokens);
  if (!max_tokens.ok()) return max_tokens.status();

  // Prompts (and, for a trace, arrivals and lengths).
  const int sources =
      args.Has("prompt") + args.Has("prompt-tokens") + args.Has("prompts-file") + args.Has("trace");
  if (sources > 1) {
    return absl::InvalidArgumentError(
        "give one of --prompt, --prompt-tokens, --prompts-file and --trace");
  }
  const int32_t vocab = static_cast<int32_t>(model.vocab_size());
  const int32_t context = static_cast<int32_t>(model.context_length());
  if (args.Has("trace")) {
    if (args.Has("rate") || args.Has("max-tokens") || args.Has("max-tokens-range")) {
      return absl::InvalidArgumentError(
          "--trace sets arrivals and lengths; drop --rate, --max-tokens and --max-tokens-range");
    }
    absl::StatusOr<std::string> text = ReadFile(*args.Get("trace"));
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<TraceRow>> rows = ParseAzureTraceCsv(*text);
    if (!rows.ok()) return rows.status();
    absl::StatusOr<std::optional<double>> scale = PositiveDouble(args, "time-scale");
    if (!scale.ok()) return scale.status();
    absl::StatusOr<std::optional<int64_t>> cap =
        args.GetInt("max-prompt-tokens", 1, std::numeric_limits<int32_t>::max());
    if (!cap.ok()) return cap.status();
    for (const TraceRow& r : *rows) s->trace_arrivals.push_back(r.arrival_s * scale->value_or(1));
    const int32_t max_prompt = static_cast<int32_t>(cap->value_or(context > 0 ? context : 4096));
    // The trace's output lengths are the point of replaying it.
    s->plan.base.set_ignore_eos(true);
    c["sampling"]["ignore_eos"] = true;
    c["trace"] = {{"file", *args.Get("trace")},
                  {"rows", rows->size()},
                  {"time_scale", scale->value_or(1)},
                  {"max_prompt_tokens", max_prompt}};
    s->source =
        RequestSource::FromTrace(*std::move(rows), max_prompt, vocab, context, workload_seed);
  } else {
    if (args.Has("time-scale") || args.Has("max-prompt-tokens")) {
      return absl::InvalidArgumentError("--time-scale and --max-prompt-tokens need --trace");
    }
    c["max_tokens"] = {{"lo", max_tokens->lo()}, {"hi", max_tokens->hi()}};
    if (args.Has("prompt")) {
      c["prompts"] = args.All("prompt");
      s->source = RequestSource::FromTexts(args.All("prompt"), *max_tokens, workload_seed);
    } else if (args.Has("prompts-file")) {
      absl::StatusOr<std::string> text = ReadFile(*args.Get("prompts-file"));
      if (!text.ok()) return text.status();
      absl::StatusOr<std::vector<PromptEntry>> entries = ParsePromptsJsonl(*text);
      if (!entries.ok()) return entries.status();
      c["prompts_file"] = {{"file", *args.Get("prompts-file")}, {"entries", entries->size()}};
      s->source = RequestSource::FromEntries(*std::move(entries), *max_tokens, workload_seed);
    } else {
      absl::StatusOr<std::optional<int64_t>> n = args.GetInt("prompt-tokens", 1, kMaxPromptTokens);
      if (!n.ok()) return n.status();
      const int32_t prompt_tokens = static_cast<int32_t>(n->value_or(kDefaultPromptTokens));
      if (vocab <= 0) return absl::FailedPreconditionError("the server reports a vocab of 0");
      if (context > 0 && int64_t{prompt_tokens} + max_tokens->hi() > context) {
        return absl::InvalidArgumentError(absl::StrCat("--prompt-tokens ", prompt_tokens,
                                                       " + max tokens ", max_tokens->hi(),
                                                       " exceed the model's context of ", context));
      }
      c["prompt_tokens"] = prompt_tokens;
      s->source = RequestSource::Generated(prompt_tokens, vocab, *max_tokens, workload_seed);
    }
  }

  // Arrivals and bounds.
  absl::StatusOr<std::optional<double>> rate = PositiveDouble(args, "rate");
  if (!rate.ok()) return rate.status();
  absl::StatusOr<std::optional<int64_t>> concurrency = args.GetInt("concurrency", 1, 100000);
  if (!concurrency.ok()) return concurrency.status();
  absl::StatusOr<std::optional<double>> burstiness = PositiveDouble(args, "burstiness");
  if (!burstiness.ok()) return burstiness.status();
  if (*burstiness && !*rate) return absl::InvalidArgumentError("--burstiness needs --rate");
  const double bursts = burstiness->value_or(1.0);
  if (*rate) {
    s->arrivals.emplace(**rate, workload_seed, bursts);
    s->plan.next_arrival = [s] { return std::optional<double>(s->arrivals->Next()); };
    c["rate"] = **rate;
    c["burstiness"] = bursts;
  } else if (!s->trace_arrivals.empty()) {
    s->plan.next_arrival = [s]() -> std::optional<double> {
      if (s->next_trace >= s->trace_arrivals.size()) return std::nullopt;
      return s->trace_arrivals[s->next_trace++];
    };
  }
  s->plan.max_concurrency =
      static_cast<int32_t>(concurrency->value_or(*rate || !s->trace_arrivals.empty() ? 0 : 1));
  c["concurrency"] = s->plan.max_concurrency;
  c["mode"] = !s->trace_arrivals.empty() ? "trace"
              : !*rate                   ? "closed_loop"
              : bursts == 1              ? "poisson"
                                         : "gamma";

  absl::StatusOr<std::optional<int64_t>> num = args.GetInt("num-requests", 1, int64_t{1} << 40);
  if (!num.ok()) return num.status();
  absl::StatusOr<std::optional<double>> duration = PositiveDouble(args, "duration");
  if (!duration.ok()) return duration.status();
  if (num->has_value()) {
    s->plan.num_requests = static_cast<size_t>(**num);
  } else if (!duration->has_value()) {
    s->plan.num_requests =
        s->trace_arrivals.empty() ? kDefaultNumRequests : s->trace_arrivals.size();
  }
  s->plan.duration_s = duration->value_or(0);
  // null: unbounded.
  c["num_requests"] = s->plan.num_requests > 0 ? nlohmann::json(s->plan.num_requests) : nullptr;
  c["duration_s"] = s->plan.duration_s > 0 ? nlohmann::json(s->plan.duration_s) : nullptr;
  absl::StatusOr<std::optional<double>> drain = PositiveDouble(args, "drain-timeout");
  if (!drain.ok()) return drain.status();
  s->plan.drain_timeout_s = drain->value_or(60);

  absl::StatusOr<std::optional<double>> ttft = PositiveDouble(args, "goodput-ttft-ms");
  if (!ttft.ok()) return ttft.status();
  absl::StatusOr<std::optional<double>> tpot = PositiveDouble(args, "goodput-tpot-ms");
  if (!tpot.ok()) return tpot.status();
  s->targets = {*ttft, *tpot};

  absl::StatusOr<std::optional<int64_t>> timeout_ms =
      args.GetInt("timeout-ms", 1, int64_t{1} << 40);
  if (!timeout_ms.ok()) return timeout_ms.status();
  s->plan.request_timeout_ms = *timeout_ms;
  s->plan.tenant = args.Get("tenant").value_or("");
  if (std::optional<std::string> out = args.Get("output")) s->output = *out;
  // A path that cannot be written is found now, not after the whole run
  // (appending: the file is not emptied before the run has a report).
  if (!std::ofstream(s->output, std::ios::app)) {
    return absl::InvalidArgumentError(absl::StrCat("--output: cannot write ", s->output));
  }
  c["started_at"] = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  return absl::OkStatus();
}

// Ctrl-C: stop issuing, cancel what is in flight, and still report what was
// seen (marked interrupted); a second Ctrl-C ends the process.
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void OnBenchInterrupt(int) {
  g_interrupted.store(true, std::memory_order_relaxed);
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  const std::vector<FlagSpec> specs = BenchFlagSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(specs, argc, argv);
  if (!args.ok() || args->Has("help") || !args->Has("server") || !args->Has("model")) {
    if (!args.ok()) std::fprintf(stderr, "cohost bench: %s\n", args.status().message().data());
    std::fprintf(stderr, "usage: cohost bench --server ADDR --model NAME [flags]\n\n%s",
                 FlagsHelp(specs).c_str());
    return args.ok() && args->Has("help") ? 0 : 2;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannelFromArgs(*args);
  if (!channel.ok()) return Fail(channel.status());
  std::unique_ptr<v1::Inference::Stub> stub = v1::Inference::NewStub(*channel);
  absl::StatusOr<v1::ModelInfo> model = FindModel(*stub, *args->Get("model"), 10000);
  if (!model.ok()) return Fail(model.status());

  auto setup = std::make_shared<BenchSetup>();
  if (absl::Status s = Setup(*args, *model, setup.get()); !s.ok()) return Fail(s);

  ProgressBar bar("bench");
  setup->plan.interrupt = &g_interrupted;
  std::signal(SIGINT, &OnBenchInterrupt);
  const LoadPlan& plan = setup->plan;
  LoadRun run = RunLoad(*stub, plan, *setup->source, [&](size_t done, size_t issued, double t) {
    if (plan.num_requests > 0) {
      bar.UpdateCount(done, plan.num_requests, "requests");
    } else {
      bar.UpdateCount(static_cast<uint64_t>(t), static_cast<uint64_t>(plan.duration_s), "s");
    }
  });
  bar.Finish();
  std::signal(SIGINT, SIG_DFL);
  if (run.interrupted) {
    std::fprintf(stderr, "cohost bench: interrupted; %zu requests in flight were cancelled\n",
                 run.cancelled_at_drain);
  } else if (run.cancelled_at_drain > 0) {
    std::fprintf(stderr, "cohost bench: cancelled %zu requests still running after %.0f s\n",
                 run.cancelled_at_drain, plan.drain_timeout_s);
  }

  BenchStats stats = ComputeStats(run.results, run.duration_s, setup->targets);
  std::fputs(ReportTable(stats, setup->targets).c_str(), stdout);
  nlohmann::json report = ReportJson(setup->config, stats, setup->targets);
  report["interrupted"] = run.interrupted;
  std::ofstream out(setup->output);
  out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.close();  // a full disk shows at the flush, which the destructor would hide
  if (!out) return Fail(absl::StrCat("cannot write ", setup->output));
  std::fprintf(stderr, "cohost bench: wrote %s\n", setup->output.c_str());
  if (run.interrupted) return 128 + SIGINT;
  return stats.completed > 0 ? 0 : 1;
}

}  // namespace cohost::tools
