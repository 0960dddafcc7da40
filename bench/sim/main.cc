// cohost_sim: how many devices a mix of models needs at a TTFT target, under
// four policies (bench/sim/cluster.h), on a public trace or a synthetic
// workload. Prints a markdown table (bench/RESULTS.md keeps them), optionally
// CSV rows for bench/sim/plot.py, and with --plan the dynamic policy's
// assignment: the models each `cohost serve` replica should hold, written as
// one configuration file per replica with --plan-config and --plan-dir.
//
//   cohost_sim --workload azure-conv --models 20 --alpha 1.5 --ttft-ms 1000
//   cohost_sim --workload azure-conv --alpha 1.5 --plan-config fleet.yaml --plan-dir replicas
//   cohost_sim --workload azure-conv --tenants 8 --devices 3 --fair-share off

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/sim/cluster.h"
#include "bench/sim/measure_cost.h"
#include "bench/sim/plan.h"
#include "scheduler/model_config_file.h"
#include "tools/common/arg_parser.h"

namespace {

using cohost::sim::Policy;

constexpr int32_t kMaxCount = 1 << 30;
using cohost::tools::FlagSpec;

std::vector<FlagSpec> SimFlags() {
  return {
      {"workload", "NAME",
       "poisson or gamma (synthetic), azure-code, azure-conv, mooncake-conv, mooncake-synth "
       "(default poisson)"},
      {"models", "N", "models sharing the workload (default 20)"},
      {"alpha", "A", "power-law exponent of their popularity (default 1.5)"},
      {"seed", "S", "random seed (default 1)"},
      {"max-tokens", "N", "a request's prompt and output are each clamped to this (default 16384)"},
      {"trace-dir", "DIR", "where the traces are (default ../shared/traces)"},
      {"rate", "R", "synthetic: requests per second, all models (default 20)"},
      {"duration", "S", "synthetic: seconds of arrivals (default 120)"},
      {"cv", "C", "synthetic: arrivals' coefficient of variation (default 1, gamma 4)"},
      {"prompt", "N", "synthetic: prompt tokens (default 512)"},
      {"output", "N", "synthetic: output tokens (default 128)"},
      {"max-requests", "N", "traces: the first N requests (default 3000)"},
      {"tenants", "N",
       "requests come from N tenants of power-law popularity (default 1); each policy's "
       "results are then also printed by tenant"},
      {"tenant-alpha", "A", "power-law exponent of the tenants' popularity (default 1.5)"},
      {"tenant-weights", "W,W,...",
       "the tenants' fair-share weights, the most active first "
       "(default: 1 each)"},
      {"fair-share", "on|off",
       "the devices share tokens between tenants by their weights, as the server does "
       "(default on); off: first come, first served"},
      {"cost", "NAME", "h200-8b (GPU floors, default) or cpu (fitted on this machine)"},
      {"cost-model", "PATH", "--cost cpu: the model to measure (default: the default model)"},
      {"device-gb", "GB", "--cost cpu: memory of a device (default 16)"},
      {"ttft-ms", "MS", "the TTFT target (default 1000)"},
      {"attainment", "F", "the fraction of requests that must meet it (default 0.99)"},
      {"keep-alive-s", "S",
       "lazy: a model idle S seconds may be evicted for another's load, which fails (with its "
       "requests) when none may (default: each --plan-config model's keep_alive_s, else 300, "
       "the server's default)"},
      {"max-devices", "N", "the most devices tried (default 64)"},
      {"devices", "N", "run each policy on N devices instead of searching for the fewest"},
      {"admit-margin-pct", "P",
       "refuse a request whose predicted TTFT is over the target by more than P percent, as "
       "the server's ttft_admit_margin_pct (default: serve every request)"},
      {"prefix-cache", "on|off",
       "engines cache prompt prefixes, as the server does (default on; only Mooncake traces "
       "share prefixes)"},
      {"csv", "PATH", "append CSV rows for bench/sim/plot.py"},
      {"plan", "", "print the dynamic policy's models per replica"},
      {"plan-config", "PATH",
       "the fleet's `cohost serve --config` file: its models are the workload's, the most "
       "requested first (sets --models); --plan names them and --plan-dir copies them"},
      {"plan-dir", "DIR",
       "with --plan-config: write DIR/replica-<d>.yaml, each replica's `cohost serve --config` "
       "file (its models, the fleet's tenants)"},
      {"help", "", "this text"},
  };
}

// The flags as read, with defaults; exits 2 with the parser's message on a
// bad one (unknown, missing value, not a number).
class Flags {
 public:
  explicit Flags(cohost::tools::ParsedArgs args) : args_(std::move(args)) {}
  std::string Get(const std::string& name, const std::string& fallback) const {
    return args_.Get(name).value_or(fallback);
  }
  bool Has(const std::string& name) const { return args_.Has(name); }
  double Number(const std::string& name, double fallback) const {
    absl::StatusOr<std::optional<double>> v = args_.GetDouble(name);
    if (!v.ok()) Fail(v.status());
    return v->value_or(fallback);
  }
  // A whole number in [lo, hi]; exits 2 naming the flag otherwise (0 models
  // crashed the placement, a negative prompt the workload).
  int32_t Count(const std::string& name, int32_t fallback, int32_t lo, int32_t hi) const {
    absl::StatusOr<std::optional<int64_t>> v = args_.GetInt(name, lo, hi);
    if (!v.ok()) Fail(v.status());
    return static_cast<int32_t>(v->value_or(fallback));
  }
  [[noreturn]] static void Fail(const absl::Status& s) {
    std::fprintf(stderr, "cohost_sim: %s\n", std::string(s.message()).c_str());
    std::exit(2);
  }

 private:
  cohost::tools::ParsedArgs args_;
};

// Each policy's run by tenant, as a markdown table.
void PrintTenants(const std::map<Policy, cohost::sim::SimResult>& results,
                  const cohost::sim::SimConfig& config) {
  std::printf(
      "\n| policy | devices | tenant | weight | requests | attainment | TTFT p50 | TTFT p99 "
      "|\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& [policy, r] : results) {
    for (size_t t = 0; t < r.tenants.size(); ++t) {
      const cohost::sim::TenantResult& tr = r.tenants[t];
      const double weight = t < config.tenant_weights.size() ? config.tenant_weights[t] : 1.0;
      if (tr.requests == 0) {  // a tenant index no request drew
        std::printf("| %s | %d | %zu | %g | 0 | n/a | n/a | n/a |\n",
                    std::string(PolicyName(policy)).c_str(), r.devices, t, weight);
        continue;
      }
      std::printf("| %s | %d | %zu | %g | %lld | %.2f%% | %.0f ms | %.0f ms |\n",
                  std::string(PolicyName(policy)).c_str(), r.devices, t, weight,
                  static_cast<long long>(tr.requests), tr.attainment * 100, tr.ttft_p50_s * 1e3,
                  tr.ttft_p99_s * 1e3);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<cohost::tools::ParsedArgs> parsed =
      cohost::tools::ParseArgs(SimFlags(), argc - 1, argv + 1);
  if (!parsed.ok()) Flags::Fail(parsed.status());
  const Flags flags(*std::move(parsed));
  if (flags.Has("help")) {
    std::printf("usage: cohost_sim [flags]\n%s", cohost::tools::FlagsHelp(SimFlags()).c_str());
    return 0;
  }
  const std::string workload = flags.Get("workload", "poisson");
  std::optional<cohost::scheduler::ServeConfig> fleet;
  if (flags.Has("plan-config")) {
    absl::StatusOr<cohost::scheduler::ServeConfig> read =
        cohost::scheduler::LoadServeConfigFile(flags.Get("plan-config", ""));
    if (!read.ok()) Flags::Fail(read.status());
    fleet = *std::move(read);
    if (flags.Has("models") &&
        flags.Number("models", 0) != static_cast<double>(fleet->models.size())) {
      Flags::Fail(absl::InvalidArgumentError(absl::StrCat("--models ", flags.Get("models", ""),
                                                          " but --plan-config lists ",
                                                          fleet->models.size())));
    }
  } else if (flags.Has("plan-dir")) {
    Flags::Fail(absl::InvalidArgumentError("--plan-dir needs --plan-config (the models' paths)"));
  }
  const auto models =
      fleet ? static_cast<int32_t>(fleet->models.size()) : flags.Count("models", 20, 1, 100000);
  const double alpha = flags.Number("alpha", 1.5);
  const auto seed = static_cast<uint64_t>(flags.Number("seed", 1));
  const int32_t max_tokens = flags.Count("max-tokens", 16384, 1, kMaxCount);
  const std::string dir = flags.Get("trace-dir", "../shared/traces");
  const std::vector<double> shares = cohost::sim::PowerLawShares(models, alpha);

  std::vector<cohost::sim::SimRequest> requests;
  const std::map<std::string, std::string> traces = {
      {"azure-code", "AzureLLMInferenceTrace_code.csv"},
      {"azure-conv", "AzureLLMInferenceTrace_conv.csv"},
      {"mooncake-conv", "mooncake_conversation_trace.jsonl"},
      {"mooncake-synth", "mooncake_synthetic_trace.jsonl"}};
  if (workload == "poisson" || workload == "gamma") {
    requests = cohost::sim::SyntheticWorkload(
        shares, flags.Number("rate", 20), flags.Number("duration", 120),
        flags.Number("cv", workload == "gamma" ? 4 : 1),
        std::min(flags.Count("prompt", 512, 1, kMaxCount), max_tokens),
        std::min(flags.Count("output", 128, 1, kMaxCount), max_tokens), seed);
  } else if (auto it = traces.find(workload); it != traces.end()) {
    const std::string path = dir + "/" + it->second;
    const auto max_requests = static_cast<size_t>(flags.Count("max-requests", 3000, 1, kMaxCount));
    absl::StatusOr<std::vector<cohost::sim::SimRequest>> loaded =
        workload.rfind("azure", 0) == 0
            ? cohost::sim::LoadAzureCsv(path, max_requests, max_tokens)
            : cohost::sim::LoadMooncakeJsonl(path, max_requests, max_tokens);
    if (!loaded.ok()) {
      std::fprintf(stderr, "cohost_sim: %s\n", std::string(loaded.status().message()).c_str());
      return 1;
    }
    requests = *std::move(loaded);
    cohost::sim::AssignModels(requests, shares, seed);
  } else {
    std::fprintf(stderr, "cohost_sim: unknown --workload %s\n", workload.c_str());
    return 2;
  }

  const int32_t tenants = flags.Count("tenants", 1, 1, 100000);
  if (tenants > 1) {
    // Drawn apart from the models' (another seed), so that a tenant is not
    // tied to a model.
    cohost::sim::AssignTenants(
        requests, cohost::sim::PowerLawShares(tenants, flags.Number("tenant-alpha", 1.5)),
        seed + 0x7e4a47);
  }

  cohost::sim::SimConfig config;
  for (absl::string_view w :
       absl::StrSplit(flags.Get("tenant-weights", ""), ',', absl::SkipEmpty())) {
    double weight = 0;
    if (!absl::SimpleAtod(w, &weight) || !(weight > 0)) {
      Flags::Fail(absl::InvalidArgumentError(
          absl::StrCat("--tenant-weights: expected positive numbers, got '", w, "'")));
    }
    config.tenant_weights.push_back(weight);
  }
  const std::string fair_share = flags.Get("fair-share", "on");
  if (fair_share != "on" && fair_share != "off") {
    Flags::Fail(
        absl::InvalidArgumentError(absl::StrCat("--fair-share takes on or off, not ", fair_share)));
  }
  config.fair_share = fair_share == "on";
  // --cost h200-8b (the floor model) or cpu: fitted from the engine running
  // --cost-model on this machine's CPU, each device --device-gb of memory.
  const std::string cost = flags.Get("cost", "h200-8b");
  if (cost == "cpu") {
    absl::StatusOr<cohost::sim::SimCost> measured = cohost::sim::MeasureCpuCost(
        flags.Get("cost-model", COHOST_DEFAULT_MODEL), flags.Number("device-gb", 16) * 1e9);
    if (!measured.ok()) {
      std::fprintf(stderr, "cohost_sim: %s\n", std::string(measured.status().message()).c_str());
      return 1;
    }
    config.cost = *std::move(measured);
  } else if (cost == "h200-8b") {
    config.cost = cohost::sim::H200Llama3_8B();
  } else {
    std::fprintf(stderr, "cohost_sim: unknown --cost %s (h200-8b or cpu)\n", cost.c_str());
    return 2;
  }
  config.ttft_target_s = flags.Number("ttft-ms", 1000) / 1000.0;
  config.keep_alive_s = flags.Count("keep-alive-s", 300, 0, 1000000);
  if (fleet && !flags.Has("keep-alive-s")) {
    // Each model's own, as the fleet's servers would keep it.
    for (const cohost::scheduler::ModelSpec& m : fleet->models) {
      config.model_keep_alive_s.push_back(
          m.keep_alive ? std::optional<int64_t>(m.keep_alive->count()) : std::nullopt);
    }
  }
  const std::string prefix_cache = flags.Get("prefix-cache", "on");
  if (prefix_cache != "on" && prefix_cache != "off") {
    std::fprintf(stderr, "cohost_sim: --prefix-cache takes on or off, not %s\n",
                 prefix_cache.c_str());
    return 2;
  }
  config.prefix_caching = prefix_cache == "on";
  if (flags.Has("admit-margin-pct")) {
    config.admit_margin_pct = static_cast<int32_t>(flags.Number("admit-margin-pct", 0));
  }
  const std::string admission =
      config.admit_margin_pct
          ? absl::StrCat("refuses past the target + ", *config.admit_margin_pct, "%")
          : std::string("admits every request");
  const double attainment = flags.Number("attainment", 0.99);
  const int32_t max_devices = flags.Count("max-devices", 64, 1, 100000);

  std::printf("workload %s: %zu requests over %.0f s, %d models, power-law alpha %.2f, seed %llu\n",
              workload.c_str(), requests.size(), requests.empty() ? 0 : requests.back().arrival_s,
              models, alpha, static_cast<unsigned long long>(seed));
  std::printf("cost %s: %s\n", config.cost.name.c_str(), config.cost.source.c_str());
  std::printf("target: TTFT <= %.0f ms for %.1f%% of requests; prefix cache %s; admission %s\n",
              config.ttft_target_s * 1e3, attainment * 100, prefix_cache.c_str(),
              admission.c_str());
  if (tenants > 1) {
    std::printf("tenants: %d, power-law alpha %.2f, fair share %s\n", tenants,
                flags.Number("tenant-alpha", 1.5), fair_share.c_str());
  }
  std::printf("\n");
  std::printf(
      "| policy | devices | attainment | TTFT p50 | TTFT p99 | busy | goodput (req/s) | peak KV "
      "| prefix hits | refused | loads |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::ofstream csv;
  if (std::string path = flags.Get("csv", ""); !path.empty()) csv.open(path, std::ios::app);
  std::map<Policy, int32_t> needed;
  std::map<Policy, cohost::sim::SimResult> results;
  // --devices N: each policy on N devices, instead of the fewest that meet the target.
  const int32_t fixed_devices = flags.Count("devices", 0, 0, 100000);
  const std::vector<double> loads = cohost::sim::ExpectedLoads(requests, models, config);
  for (Policy p : {Policy::kDedicated, Policy::kStatic, Policy::kDynamic, Policy::kLazy}) {
    std::optional<cohost::sim::SimResult> r;
    if (fixed_devices > 0) {
      if (std::optional<cohost::sim::Assignment> a =
              cohost::sim::Place(p, fixed_devices, loads, config)) {
        r = cohost::sim::Simulate(requests, *a, p, config);
      }
    } else {
      r = cohost::sim::MinDevices(p, requests, models, config, attainment, max_devices);
    }
    if (!r) {
      if (fixed_devices > 0) {
        std::printf("| %s | cannot place on %d | | | | | | | | | |\n",
                    std::string(PolicyName(p)).c_str(), fixed_devices);
      } else {
        std::printf("| %s | > %d | | | | | | | | | |\n", std::string(PolicyName(p)).c_str(),
                    max_devices);
      }
      continue;
    }
    needed[p] = r->devices;
    results[p] = *r;
    std::printf(
        "| %s | %d | %.2f%% | %.0f ms | %.0f ms | %.0f%% | %.2f | %.0f%% | %.1f%% | %lld | %lld "
        "|\n",
        std::string(PolicyName(p)).c_str(), r->devices, r->attainment * 100, r->ttft_p50_s * 1e3,
        r->ttft_p99_s * 1e3, r->busy_fraction * 100, r->goodput_rps, r->peak_kv_fraction * 100,
        r->prefix_hit_fraction * 100, static_cast<long long>(r->refused),
        static_cast<long long>(r->loads));
    if (csv.is_open()) {
      // plot.py groups rows by the first column: a run without the cache is its own group.
      csv << workload << (config.prefix_caching ? "" : "-nocache") << "," << models << "," << alpha
          << "," << PolicyName(p) << "," << r->devices << "," << r->attainment << ","
          << r->ttft_p50_s << "," << r->ttft_p99_s << "," << r->busy_fraction << ","
          << r->goodput_rps << "," << r->prefix_hit_fraction << "\n";
    }
  }
  for (Policy p : {Policy::kDynamic, Policy::kLazy}) {
    if (needed.count(Policy::kDedicated) && needed.count(p)) {
      std::printf("\ndedicated / %s: %.2fx", std::string(PolicyName(p)).c_str(),
                  static_cast<double>(needed[Policy::kDedicated]) / needed[p]);
    }
  }
  std::printf("\n");
  if (tenants > 1) PrintTenants(results, config);
  if ((flags.Has("plan") || flags.Has("plan-dir")) && needed.count(Policy::kDynamic)) {
    const std::optional<cohost::sim::Assignment> plan =
        cohost::sim::Place(Policy::kDynamic, needed[Policy::kDynamic], loads, config);
    std::printf("\nplan (dynamic, %d replicas): the models each replica serves\n",
                needed[Policy::kDynamic]);
    for (size_t d = 0; plan && d < plan->size(); ++d) {
      std::vector<std::string> names;
      for (int32_t m : (*plan)[d]) {
        names.push_back(fleet ? fleet->models[m].name : absl::StrCat("m", m));
      }
      std::printf("replica %zu: %s\n", d, absl::StrJoin(names, " ").c_str());
    }
    if (plan && flags.Has("plan-dir")) {
      absl::StatusOr<std::vector<cohost::scheduler::ServeConfig>> replicas =
          cohost::sim::ReplicaConfigs(*plan, *fleet);
      absl::StatusOr<std::vector<std::string>> written =
          replicas.ok() ? cohost::sim::WriteReplicaConfigs(*replicas, flags.Get("plan-dir", ""))
                        : replicas.status();
      if (!written.ok()) {
        std::fprintf(stderr, "cohost_sim: %s\n", std::string(written.status().message()).c_str());
        return 1;
      }
      std::printf("wrote %s\n", absl::StrJoin(*written, " ").c_str());
    }
  }
  return 0;
}
