// A discrete-event simulation of a cluster of devices serving several models,
// driven by the server's own scheduling code: each engine is a real
// runtime::StepScheduler over a real KvCacheManager, each device's executor
// picks engines with the real PickNextEngine and caps their steps with
// StepTokenCap (scheduler/executor_policy.h), each device's engines share its
// tenants' FairShare counters, and the dynamic policy places models with
// the real PlaceModel (scheduler/placement.h). Only time is simulated: a
// step lasts what the cost model says (SimCost), nothing is computed.
//
// Four policies:
//   dedicated: one model per device (replicas as its load needs), the
//              Kubernetes whole-GPU default;
//   static:    models packed onto devices by memory only (popularity order,
//              round robin), a fixed equal KV share each, engines stepped in
//              turn without time slices;
//   dynamic:   cohost: every model placed once by memory and expected load
//              (PlaceModel, busiest first), then replicas to the models with
//              the most load per replica while memory lasts (never two of one
//              model on a device), one KV pool per device, engines picked by
//              TTFT and TPOT deadlines with sliced steps.
//   lazy:      dynamic, plus cohost's lazy loading: a model that fits no
//              device's memory is still given one (the least loaded), and
//              waits there evicted; a request for an evicted model loads it
//              (cost.load_seconds, inside that request's TTFT) after evicting
//              idle models by the server's own rule (PickEvictions, least
//              recently used first, never one with work). Engines step while
//              another model loads.
// Every engine caches prefixes as the server does (on by default): a Mooncake
// request's hash_ids become prompt tokens that equal ids share, so a replica
// computes only what its cache lacks, and the router in front of a model's
// replicas counts what each replica's cache lacks; placement's expected
// loads still count whole prompts. Admission by predicted TTFT is the
// server's own too, when asked for (SimConfig::admit_margin_pct). What it
// leaves out: moving a model to another device (placement is fixed for the
// whole trace; lazy only changes which of a device's models are resident),
// network and tokenization time, KV pressure under the dynamic policy (each
// engine may use its device's whole pool; the peak use across them is
// reported, and is the over-commit check), and tenants' budgets (TenantBook:
// tokens per minute, streams; their weights are in, SimConfig::tenant_weights).
// A step costs SimCost's line over its new tokens plus its sequences' context
// (StepSeconds).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "bench/sim/cost_model.h"
#include "bench/sim/workload.h"

namespace cohost::sim {

enum class Policy { kDedicated, kStatic, kDynamic, kLazy };
std::string_view PolicyName(Policy p);

struct SimConfig {
  SimCost cost;
  double ttft_target_s = 1.0;
  double tpot_target_s = 0.2;
  int32_t max_tokens_per_step = 2048;
  int32_t max_num_seqs = 128;
  double slice_s = 0.05;  // dynamic: a step's length while engines share a device
  bool prefix_caching = true;
  // Set: a request is refused on arrival when the server's predictor
  // (scheduler::PredictTtft on its replica's device, JudgeTtft) puts its
  // first token over the TTFT target by more than this percent, as
  // `ttft_admit_margin_pct` does in the server. A refusal counts as a miss;
  // the refused request takes no device time. Unset: every request is served.
  std::optional<int32_t> admit_margin_pct;
  // Each tenant's weight (index: SimRequest::tenant; missing: 1) in its
  // device's fair share, the server's FairShare counters shared by the
  // device's engines. false: the schedulers see one tenant (FIFO within a
  // priority, as before tenants), and the results are still by tenant.
  std::vector<double> tenant_weights;
  bool fair_share = true;
  // Lazy: a model idle this long may be evicted for another's load (the
  // server's keep_alive_s; its default). A load that finds no such model
  // fails, with the requests waiting for it, as the server's does.
  int64_t keep_alive_s = 300;
  // By model index, where the fleet's configuration sets one (nullopt: kept
  // forever); the models beyond it take keep_alive_s.
  std::vector<std::optional<int64_t>> model_keep_alive_s;
};

// One tenant's requests (SimResult::tenants).
struct TenantResult {
  int64_t requests = 0;
  int64_t met = 0;
  double attainment = 0;
  double ttft_p50_s = 0, ttft_p99_s = 0;  // of its requests not refused
};

// Which models each device holds (a model on several devices is replicated;
// a request goes to the replica whose device has the least prefill queued,
// then the fewest live requests: the router in front of the replicas).
using Assignment = std::vector<std::vector<int32_t>>;

struct SimResult {
  int32_t devices = 0;
  int64_t requests = 0;
  int64_t met = 0;  // first token within the TTFT target
  // By admission (SimConfig::admit_margin_pct), because the request can
  // never fit its replica's KV cache (as the engine refuses it), or because
  // its model's load found no room (lazy: SimConfig::keep_alive_s).
  int64_t refused = 0;
  double attainment = 0;
  double ttft_p50_s = 0, ttft_p99_s = 0;  // of the requests not refused
  double busy_fraction = 0;               // device busy time over devices x makespan
  double goodput_rps = 0;                 // requests that met the target, per second of trace
  double peak_kv_fraction = 0;     // the most KV any device's engines held at once, over its pool
  double prefix_hit_fraction = 0;  // prompt tokens found in the prefix cache, over all
  int64_t loads = 0;               // lazy: models loaded during the run
  std::vector<TenantResult> tenants;  // by SimRequest::tenant
};

// `requests` in any order (they run by arrival time).
SimResult Simulate(const std::vector<SimRequest>& requests, const Assignment& assignment,
                   Policy policy, const SimConfig& config);

// Each model's expected busy fraction of one device over the trace.
std::vector<double> ExpectedLoads(const std::vector<SimRequest>& requests, int32_t num_models,
                                  const SimConfig& config);

// The assignment a policy makes on `devices` devices; nullopt when the
// models do not fit (every model must be placed once at least).
std::optional<Assignment> Place(Policy policy, int32_t devices, const std::vector<double>& loads,
                                const SimConfig& config);

// The fewest devices with which the policy meets the TTFT target for at
// least `attainment` of the requests, and the run that did, by bisection over
// [1, max_devices]: attainment is taken to grow with the devices, which a
// placement change can break by a device or so (RESULTS reads "8-9" once).
// The devices are placed by Place (dedicated: one model each, the extra ones
// to the models with the most expected load per replica). nullopt when even
// `max_devices` misses.
std::optional<SimResult> MinDevices(Policy policy, const std::vector<SimRequest>& requests,
                                    int32_t num_models, const SimConfig& config, double attainment,
                                    int32_t max_devices);

}  // namespace cohost::sim
