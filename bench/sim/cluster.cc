#include "bench/sim/cluster.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/batching/fair_share.h"
#include "runtime/batching/kv_cache_manager.h"
#include "runtime/batching/step_scheduler.h"
#include "scheduler/eviction.h"
#include "scheduler/executor_policy.h"
#include "scheduler/placement.h"
#include "scheduler/ttft_predictor.h"

namespace cohost::sim {
namespace {

using runtime::Clock;
constexpr int32_t kBlockSize = 16;
constexpr double kInf = std::numeric_limits<double>::infinity();
// The executor's floor on a step sized to a time (ExecutorOptions::min_slice_tokens).
constexpr int32_t kMinStepTokens = 16;
// Expected loads assume decodes share a step with this many others.
constexpr double kAssumedDecodeBatch = 8;
// Both packing policies keep this much KV per model, as a fraction of its
// weights: weights take at most 1 / (1 + share) of a device. Static splits
// the rest evenly; dynamic shares it.
constexpr double kKvShare = 0.5;

// A prompt token: a function of the trace block it lies in (`key`, its id)
// and its offset, so that equal blocks hold equal tokens and the real prefix
// cache finds them; tokens past the trace's blocks are keyed by the request.
int32_t SyntheticToken(uint64_t key, int64_t offset) {
  uint64_t x = key * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(offset);  // splitmix64
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return static_cast<int32_t>((x ^ (x >> 31)) & 0x7fffffff);
}

std::vector<int32_t> PromptTokens(const SimRequest& r, size_t index) {
  std::vector<int32_t> tokens(static_cast<size_t>(r.prompt_tokens));
  const uint64_t own = (uint64_t{1} << 63) | index;  // never a trace id (those are < 2^63)
  for (size_t p = 0; p < tokens.size(); ++p) {
    const size_t block = p / kTraceBlockTokens;
    const bool shared = block < r.prefix_blocks.size();
    tokens[p] = SyntheticToken(
        shared ? static_cast<uint64_t>(r.prefix_blocks[block]) : own,
        shared ? static_cast<int64_t>(p % kTraceBlockTokens) : static_cast<int64_t>(p));
  }
  return tokens;
}

Clock::time_point At(double seconds) {
  return Clock::time_point{} +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Nearest rank: the smallest value with at least q of them at or below it;
// 0 for none.
double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  const size_t k = std::min(v.size() - 1, rank > 0 ? rank - 1 : 0);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double Fraction(int64_t part, int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 1;
}

struct SimSeq {
  runtime::Sequence seq;
  size_t request = 0;
  double arrival = 0;
  int32_t output = 1;
};

struct SimEngine {
  int32_t model = 0;
  int64_t kv_blocks = 0;  // its KvCacheManager's (made again after an eviction)
  std::unique_ptr<runtime::KvCacheManager> kv;
  std::unique_ptr<runtime::StepScheduler> sched;
  runtime::FairShare* fair = nullptr;  // its device's tenants' counters
  std::map<runtime::RequestId, std::unique_ptr<SimSeq>> live;
  std::optional<double> last_step_end;
  int64_t last_stepped = 0;
  // Lazy policy: whether its weights are on the device (loading counts: the
  // memory is taken), whether the load is still running, and its last use.
  bool resident = true;
  bool loading = false;
  double ready_at = 0;
  double last_used = 0;
  bool ready() const { return resident && !loading; }
};

// Prompt tokens still to compute for the engine's requests without a first
// token: its prefill backlog, as EngineStats counts it.
int64_t PrefillLeft(const SimEngine& e) {
  int64_t tokens = 0;
  for (const auto& [id, s] : e.live) {
    if (s->seq.num_generated() == 0) tokens += s->seq.num_uncomputed();
  }
  return tokens;
}

// Whether a stream of the engine has its first token and waits for its next:
// the executor then sizes its steps to the TPOT target.
bool Decoding(const SimEngine& e) {
  return std::any_of(e.live.begin(), e.live.end(),
                     [](const auto& kv) { return kv.second->seq.num_generated() > 0; });
}

struct SimDevice {
  std::vector<std::unique_ptr<SimEngine>> engines;
  double weights_budget = kInf;  // lazy: what resident weights may take
  double resident_bytes = 0;
  int64_t pool_blocks = 0;
  bool busy = false;
  double busy_until = 0;
  double step_seconds = 0;
  SimEngine* stepping = nullptr;
  runtime::StepPlan plan;
  double busy_seconds = 0;
  int64_t round = 0;
  bool after_promotion = false;  // its last pick was EnginePick::promoted
  // The tenants' virtual tokens, shared by its engines as a server's device's
  // (Device::fair_share).
  runtime::FairShare fair;
};

class Cluster {
 public:
  Cluster(const std::vector<SimRequest>& requests, const Assignment& assignment, Policy policy,
          const SimConfig& config)
      : requests_(requests),
        policy_(policy),
        config_(config),
        ttft_(requests.size(), kInf),
        refused_at_(requests.size(), false) {
    const double w = config.cost.weights_bytes;
    for (const std::vector<int32_t>& models : assignment) {
      auto d = std::make_unique<SimDevice>();
      double weights = w * static_cast<double>(models.size());
      if (policy == Policy::kLazy) {
        // Resident weights as the dynamic placement allows them; the KV pool
        // is the rest, whichever models are resident.
        d->weights_budget = config.cost.device_bytes / (1 + kKvShare);
        weights = std::min(weights, d->weights_budget);
      }
      const double kv_bytes = config.cost.device_bytes - weights;
      d->pool_blocks = std::max<int64_t>(
          2, static_cast<int64_t>(kv_bytes / (config.cost.kv_bytes_per_token * kBlockSize)));
      for (int32_t m : models) {
        auto e = std::make_unique<SimEngine>();
        e->model = m;
        e->fair = &d->fair;
        // Static: an equal fixed share each; otherwise each may use the pool.
        int64_t blocks = d->pool_blocks;
        if (policy == Policy::kStatic) blocks /= std::max<int64_t>(1, models.size());
        e->kv_blocks = std::clamp<int64_t>(blocks, 2, int64_t{1} << 20);
        ResetEngine(*e);
        // Lazy: the models listed first are resident at the start, while they fit.
        e->resident = d->resident_bytes + w <= d->weights_budget;
        if (e->resident) d->resident_bytes += w;
        replicas_[m].push_back({d.get(), e.get()});
        d->engines.push_back(std::move(e));
      }
      devices_.push_back(std::move(d));
    }
  }

  SimResult Run() {
    size_t next = 0;
    double now = 0;
    for (;;) {
      const double t_arrival = next < requests_.size() ? requests_[next].arrival_s : kInf;
      const double t_event = events_.empty() ? kInf : events_.top().at;
      if (t_arrival == kInf && t_event == kInf) break;
      // A step ending when a request arrives frees its engine first (within
      // rounding: times are sums of step lengths).
      if (t_arrival < t_event - 1e-9) {
        // An arrival within the window of an event handled first keeps
        // time from going back.
        now = std::max(now, t_arrival);
        SimDevice* d = Arrive(next++, now);
        if (d != nullptr && !d->busy) StartStepAndSchedule(*d, now);
      } else {
        now = t_event;
        const Event e = events_.top();
        events_.pop();
        if (e.loaded != nullptr) {
          e.loaded->loading = false;  // its requests can run now
        } else {
          FinishStep(*e.device, now);
        }
        if (!e.device->busy) StartStepAndSchedule(*e.device, now);
      }
    }
    return Summarize(now);
  }

 private:
  // A step ending (loaded null) or a model's load ending, at `at`.
  struct Event {
    double at = 0;
    SimDevice* device = nullptr;
    SimEngine* loaded = nullptr;
    bool operator>(const Event& o) const { return at > o.at; }
  };

  // A fresh KV cache and scheduler: at the start, and after an eviction
  // (which takes its cached prefixes with it).
  void ResetEngine(SimEngine& e) const {
    e.kv = std::make_unique<runtime::KvCacheManager>(static_cast<int32_t>(e.kv_blocks) + 1,
                                                     kBlockSize, config_.prefix_caching);
    runtime::StepSchedulerConfig sc;
    sc.max_num_seqs = config_.max_num_seqs;
    sc.max_tokens_per_step = config_.max_tokens_per_step;
    sc.max_prefill_chunk = config_.max_tokens_per_step;
    e.sched = std::make_unique<runtime::StepScheduler>(sc, e.kv.get(), e.fair);
  }

  // Dynamic and lazy share the device by deadlines, with sliced steps.
  bool Dynamic() const { return policy_ == Policy::kDynamic || policy_ == Policy::kLazy; }

  void StartStepAndSchedule(SimDevice& d, double now) {
    if (StartStep(d, now)) events_.push({d.busy_until, &d, nullptr});
  }

  // Lazy: starts loading `e` on `d` if its memory can be had, evicting idle
  // models by the server's rule (scheduler::PickEvictions, each idle past
  // its keep-alive); otherwise the load fails, and so does every request
  // waiting for it, as the server's Router::MakeRoom and ServedModel::Fail.
  void EnsureLoaded(SimDevice& d, SimEngine& e, double now) {
    if (e.resident) return;
    const double w = config_.cost.weights_bytes;
    std::vector<scheduler::EvictionCandidate> candidates;
    std::vector<SimEngine*> who;
    for (const auto& other : d.engines) {
      if (other.get() == &e || !other->ready()) continue;
      scheduler::EvictionCandidate c;
      c.bytes = static_cast<int64_t>(w);
      c.idle = other->live.empty();
      c.last_used = At(other->last_used);
      c.keep_alive = std::chrono::seconds(config_.keep_alive_s);
      if (static_cast<size_t>(other->model) < config_.model_keep_alive_s.size()) {
        const std::optional<int64_t>& own = config_.model_keep_alive_s[other->model];
        c.keep_alive = own ? std::optional(std::chrono::seconds(*own)) : std::nullopt;
      }
      candidates.push_back(c);
      who.push_back(other.get());
    }
    const std::optional<std::vector<size_t>> evict = scheduler::PickEvictions(
        candidates, static_cast<int64_t>(w),
        static_cast<int64_t>(d.weights_budget - d.resident_bytes), At(now));
    if (!evict) {
      for (const auto& [id, seq] : e.live) {
        e.sched->Remove(&seq->seq);  // and leaves the device's fair share
        Refuse(seq->request);
      }
      e.live.clear();
      ResetEngine(e);
      return;
    }
    for (size_t i : *evict) {
      who[i]->resident = false;
      d.resident_bytes -= w;
      ResetEngine(*who[i]);
    }
    e.resident = true;
    e.loading = true;
    e.ready_at = now + config_.cost.load_seconds;
    d.resident_bytes += w;
    ++loads_;
    events_.push({e.ready_at, &d, &e});
  }

  SimDevice* Arrive(size_t index, double now) {
    const SimRequest& r = requests_[index];
    auto it = replicas_.find(r.model);
    if (it == replicas_.end()) return nullptr;  // a model nowhere: never served
    // As the engine's Submit: an empty prompt is refused (scheduled, it would
    // hold the engine's queue for good).
    if (r.prompt_tokens < 1) return Refuse(index);
    auto s = std::make_unique<SimSeq>();
    s->request = index;
    s->arrival = r.arrival_s;
    s->output = r.output_tokens;
    s->seq.id = static_cast<runtime::RequestId>(index);
    s->seq.tokens = PromptTokens(r, index);
    s->seq.num_prompt_tokens = r.prompt_tokens;
    s->seq.max_tokens = r.output_tokens;
    s->seq.arrival_order = static_cast<int64_t>(index);
    // As the server's, prefixes are cached per tenant (its salt is a hash of
    // the name; any value per tenant does).
    s->seq.cache_salt = static_cast<uint64_t>(r.tenant) + 1;
    if (config_.fair_share) {
      s->seq.tenant_key = s->seq.cache_salt;
      s->seq.tenant_weight = TenantWeight(r.tenant);
    }
    // To the replica where its first token has the least prefill ahead of it:
    // what its device has queued (the admission predictor's backlog) plus the
    // part of its own prompt that replica's prefix cache lacks, as a
    // cache-aware router in front of replicas does; then the fewest live.
    const auto cached = [&](SimEngine& e) {
      return kBlockSize * static_cast<int64_t>(e.kv->FindCachedPrefix(s->seq).size());
    };
    const auto ahead = [&](const SimDevice& d, SimEngine& e) {
      int64_t tokens = r.prompt_tokens - cached(e);
      for (const auto& engine : d.engines) tokens += PrefillLeft(*engine);
      return tokens;
    };
    // Each replica's count once (a comparator would rescan both per pair).
    const auto& replicas = it->second;
    // A replica whose model is on its device goes before one that must load.
    const auto key = [&](size_t i) {
      return std::make_tuple(replicas[i].second->ready() ? 0 : 1,
                             ahead(*replicas[i].first, *replicas[i].second),
                             replicas[i].second->live.size());
    };
    size_t best = 0;
    auto best_key = key(0);
    for (size_t i = 1; i < replicas.size(); ++i) {
      auto k = key(i);
      if (k < best_key) {
        best = i;
        best_key = k;
      }
    }
    SimEngine& e = *replicas[best].second;
    SimDevice& d = *replicas[best].first;
    // As the engine's Submit: what can never fit its KV is refused (served,
    // it would stall the engine for good).
    if (static_cast<int64_t>(r.prompt_tokens) + r.output_tokens > e.kv_blocks * kBlockSize) {
      return Refuse(index);
    }
    const double to_ready = e.ready()   ? 0
                            : e.loading ? e.ready_at - now
                                        : config_.cost.load_seconds;
    // As Router::Submit: the prompt less what the replica's cache holds.
    if (config_.admit_margin_pct && !Admit(d, e, r.prompt_tokens - cached(e), to_ready)) {
      return Refuse(index);
    }
    e.sched->Add(&s->seq);
    e.live.emplace(s->seq.id, std::move(s));
    e.last_used = now;
    EnsureLoaded(d, e, now);
    return &d;
  }

  // Counts request `index` refused (a miss, no TTFT); nothing to step.
  SimDevice* Refuse(size_t index) {
    ++refused_;
    refused_at_[index] = true;
    return nullptr;
  }

  // The server's admission verdict for `prompt_tokens` to compute on `e`:
  // the same predictor over the same backlogs (each engine's prompt tokens
  // still to compute for requests without a first token; every request here
  // has priority 0, so its own engine's whole backlog is ahead of it).
  bool Admit(const SimDevice& d, const SimEngine& e, int64_t prompt_tokens,
             double to_ready_s) const {
    const auto backlog = [&](const SimEngine& engine) {
      scheduler::PrefillQueue q;
      q.cost = config_.cost.step;
      q.step_tokens = config_.max_tokens_per_step;
      q.tokens = PrefillLeft(engine);
      // As ServedModel::Backlog: steps sized to the TPOT target while streams decode.
      if (Decoding(engine)) {
        q.step_tokens = q.cost->TokensWithin(config_.tpot_target_s, kMinStepTokens, q.step_tokens);
      }
      return q;
    };
    std::vector<scheduler::PrefillQueue> others;
    for (const auto& engine : d.engines) {
      if (engine.get() != &e) others.push_back(backlog(*engine));
    }
    const std::optional<Clock::duration> predicted = scheduler::PredictTtft(
        backlog(e), others, prompt_tokens,
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(to_ready_s)));
    if (!predicted) return true;
    const auto target = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(config_.ttft_target_s));
    return scheduler::JudgeTtft(*predicted, target, *config_.admit_margin_pct).admit;
  }

  // Picks an engine and plans its step; false when nothing can run.
  bool StartStep(SimDevice& d, double now) {
    std::vector<scheduler::EngineCandidate> candidates(d.engines.size());
    for (size_t i = 0; i < d.engines.size(); ++i) {
      const SimEngine& e = *d.engines[i];
      scheduler::EngineCandidate& c = candidates[i];
      c.has_work = !e.live.empty() && e.ready();
      c.decoding = Decoding(e);
      for (const auto& [id, s] : e.live) {
        if (s->seq.num_generated() == 0 &&
            (!c.oldest_awaiting_first || At(s->arrival) < *c.oldest_awaiting_first)) {
          c.oldest_awaiting_first = At(s->arrival);
        }
      }
      c.ttft_target = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(config_.ttft_target_s));
      c.tpot_target = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(config_.tpot_target_s));
      if (e.last_step_end) c.last_step_end = At(*e.last_step_end);
      c.last_stepped = e.last_stepped;
    }
    // An engine whose plan comes back empty (no KV memory) sits this round out.
    for (size_t tries = 0; tries < d.engines.size(); ++tries) {
      std::optional<size_t> pick;
      bool promoted = false;
      if (Dynamic()) {
        const std::optional<scheduler::EnginePick> picked =
            scheduler::PickNextEngine(candidates, At(now), d.after_promotion);
        if (picked) {
          pick = picked->index;
          promoted = picked->promoted;
        }
      } else {  // in turn: the engine with work stepped longest ago
        for (size_t i = 0; i < candidates.size(); ++i) {
          if (candidates[i].has_work &&
              (!pick || candidates[i].last_stepped < candidates[*pick].last_stepped)) {
            pick = i;
          }
        }
      }
      if (!pick) return false;
      int32_t cap = 0;
      if (Dynamic()) {
        const runtime::StepCost& c = config_.cost.step;
        const double full = config_.max_tokens_per_step;
        const double rate = full / (c.fixed_seconds + full * c.seconds_per_token);
        scheduler::StepSlicing slicing;
        slicing.slice = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(config_.slice_s));
        slicing.min_tokens = kMinStepTokens;
        cap = scheduler::StepTokenCap(candidates, *pick, At(now), slicing, rate);
      }
      SimEngine& e = *d.engines[*pick];
      runtime::StepPlan plan = e.sched->Schedule(cap);
      if (plan.empty()) {
        candidates[*pick].has_work = false;
        continue;
      }
      d.after_promotion = promoted;
      d.plan = std::move(plan);
      d.stepping = &e;
      int64_t context = 0;
      for (const runtime::ScheduledSeq& s : d.plan.scheduled) {
        context += s.seq->num_computed_tokens + s.num_new_tokens;
      }
      d.step_seconds = StepSeconds(config_.cost, d.plan.num_tokens, context);
      d.busy = true;
      d.busy_until = now + d.step_seconds;
      return true;
    }
    return false;
  }

  void FinishStep(SimDevice& d, double now) {
    SimEngine& e = *d.stepping;
    std::vector<SimSeq*> sampled;
    for (const runtime::ScheduledSeq& s : d.plan.scheduled) {
      if (!s.samples) continue;
      SimSeq* seq = e.live.at(s.seq->id).get();
      seq->seq.tokens.push_back(0);
      sampled.push_back(seq);
    }
    e.sched->Commit(d.plan);
    int64_t used = 0;
    for (const auto& engine : d.engines) {
      used += engine->kv->num_usable_blocks() - engine->kv->num_free_blocks();
    }
    peak_kv_ = std::max(peak_kv_, static_cast<double>(used) / static_cast<double>(d.pool_blocks));
    for (SimSeq* s : sampled) {
      if (s->seq.num_generated() == 1) {
        ttft_[s->request] = now - s->arrival;
        prompt_tokens_ += s->seq.num_prompt_tokens;
        cached_tokens_ += s->seq.num_cached_prompt_tokens;
      }
      if (s->seq.num_generated() >= s->output) {
        e.sched->Remove(&s->seq);
        e.live.erase(s->seq.id);
      }
    }
    e.last_step_end = now;
    e.last_used = now;
    e.last_stepped = ++d.round;
    d.busy_seconds += d.step_seconds;
    d.busy = false;
    d.stepping = nullptr;
    d.plan = {};
  }

  double TenantWeight(int32_t tenant) const {
    const auto& w = config_.tenant_weights;
    return tenant >= 0 && static_cast<size_t>(tenant) < w.size() ? w[tenant] : 1.0;
  }

  SimResult Summarize(double end) const {
    SimResult r;
    r.devices = static_cast<int32_t>(devices_.size());
    r.requests = static_cast<int64_t>(requests_.size());
    // TTFT quantiles are over the requests served (a refusal has none);
    // attainment counts a refusal as a miss. The same by tenant.
    std::vector<double> served;
    std::vector<std::vector<double>> served_by_tenant;
    for (size_t i = 0; i < ttft_.size(); ++i) {
      const bool met = ttft_[i] <= config_.ttft_target_s;
      r.met += met ? 1 : 0;
      if (!refused_at_[i]) served.push_back(ttft_[i]);
      const auto t = static_cast<size_t>(std::max(0, requests_[i].tenant));
      if (t >= r.tenants.size()) {
        r.tenants.resize(t + 1);
        served_by_tenant.resize(t + 1);
      }
      TenantResult& tr = r.tenants[t];
      ++tr.requests;
      tr.met += met ? 1 : 0;
      if (!refused_at_[i]) served_by_tenant[t].push_back(ttft_[i]);
    }
    r.attainment = Fraction(r.met, r.requests);
    r.ttft_p50_s = Quantile(served, 0.5);
    r.ttft_p99_s = Quantile(served, 0.99);
    for (size_t t = 0; t < r.tenants.size(); ++t) {
      TenantResult& tr = r.tenants[t];
      tr.attainment = Fraction(tr.met, tr.requests);
      tr.ttft_p50_s = Quantile(served_by_tenant[t], 0.5);
      tr.ttft_p99_s = Quantile(served_by_tenant[t], 0.99);
    }
    double busy = 0;
    for (const auto& d : devices_) busy += d->busy_seconds;
    if (end > 0 && !devices_.empty()) busy /= end * static_cast<double>(devices_.size());
    r.busy_fraction = busy;
    // Per second of trace; a trace whose requests all arrive at once is as
    // long as the run.
    const double trace = requests_.empty() ? 0 : requests_.back().arrival_s;
    const double span = trace > 0 ? trace : end;
    r.goodput_rps = span > 0 ? static_cast<double>(r.met) / span : 0;
    r.peak_kv_fraction = peak_kv_;
    r.refused = refused_;
    r.loads = loads_;
    r.prefix_hit_fraction = prompt_tokens_ > 0 ? static_cast<double>(cached_tokens_) /
                                                     static_cast<double>(prompt_tokens_)
                                               : 0;
    return r;
  }

  const std::vector<SimRequest>& requests_;
  const Policy policy_;
  const SimConfig& config_;
  std::vector<std::unique_ptr<SimDevice>> devices_;
  std::map<int32_t, std::vector<std::pair<SimDevice*, SimEngine*>>> replicas_;
  std::vector<double> ttft_;
  std::vector<bool> refused_at_;  // by request
  double peak_kv_ = 0;
  int64_t refused_ = 0;
  int64_t loads_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  int64_t prompt_tokens_ = 0;  // of the requests that got a first token
  int64_t cached_tokens_ = 0;  // of those, found in the prefix cache
};

}  // namespace

std::string_view PolicyName(Policy p) {
  switch (p) {
    case Policy::kDedicated:
      return "dedicated";
    case Policy::kStatic:
      return "static";
    case Policy::kDynamic:
      return "dynamic";
    case Policy::kLazy:
      return "lazy";
  }
  return "?";
}

SimResult Simulate(const std::vector<SimRequest>& requests, const Assignment& assignment,
                   Policy policy, const SimConfig& config) {
  const auto by_arrival = [](const SimRequest& a, const SimRequest& b) {
    return a.arrival_s < b.arrival_s;
  };
  if (std::is_sorted(requests.begin(), requests.end(), by_arrival)) {
    return Cluster(requests, assignment, policy, config).Run();
  }
  // The run takes arrivals in order; so does the trace's span.
  std::vector<SimRequest> sorted = requests;
  std::stable_sort(sorted.begin(), sorted.end(), by_arrival);
  return Cluster(sorted, assignment, policy, config).Run();
}

std::vector<double> ExpectedLoads(const std::vector<SimRequest>& requests, int32_t num_models,
                                  const SimConfig& config) {
  std::vector<double> work(static_cast<size_t>(num_models), 0);
  const runtime::StepCost& c = config.cost.step;
  for (const SimRequest& r : requests) {
    if (r.model < 0 || r.model >= num_models) continue;
    work[r.model] +=
        c.Seconds(r.prompt_tokens, config.max_tokens_per_step) +
        r.output_tokens * (c.seconds_per_token + c.fixed_seconds / kAssumedDecodeBatch);
  }
  double last = 0;
  for (const SimRequest& r : requests) last = std::max(last, r.arrival_s);
  const double span = std::max(1.0, last);
  for (double& w : work) w /= span;
  return work;
}

std::optional<Assignment> Place(Policy policy, int32_t devices, const std::vector<double>& loads,
                                const SimConfig& config) {
  const auto models = static_cast<int32_t>(loads.size());
  if (devices < 1 || models < 1) return std::nullopt;
  Assignment out(static_cast<size_t>(devices));
  const double w = config.cost.weights_bytes;
  if (policy == Policy::kDedicated) {
    if (devices < models || w >= config.cost.device_bytes) return std::nullopt;
    std::vector<int32_t> replicas(static_cast<size_t>(models), 1);
    for (int32_t extra = devices - models; extra > 0; --extra) {
      // The next device to the model with the most load per replica.
      size_t busiest = 0;
      for (size_t m = 1; m < replicas.size(); ++m) {
        if (loads[m] / replicas[m] > loads[busiest] / replicas[busiest]) busiest = m;
      }
      ++replicas[busiest];
    }
    size_t d = 0;
    for (size_t m = 0; m < replicas.size(); ++m) {
      for (int32_t r = 0; r < replicas[m]; ++r) out[d++].push_back(static_cast<int32_t>(m));
    }
    return out;
  }
  if (policy == Policy::kStatic) {
    // A device holds each model once at most.
    const auto per_device = static_cast<int32_t>(
        std::min<double>(models, config.cost.device_bytes / (w * (1 + kKvShare))));
    if (per_device < 1 || static_cast<int64_t>(per_device) * devices < models) return std::nullopt;
    // Round robin in popularity order, then replicas the same way until full.
    for (int32_t i = 0; i < per_device * devices; ++i) {
      const int32_t model = i % models;
      std::vector<int32_t>& slot = out[static_cast<size_t>(i % devices)];
      if (i >= models && std::find(slot.begin(), slot.end(), model) != slot.end()) continue;
      slot.push_back(model);
    }
    return out;
  }
  // Dynamic and lazy: every model once, the busiest first, then more replicas to the
  // model with the most expected load per replica while any device has room;
  // each replica placed by the server's own rule (PlaceModel: memory, then
  // spare load capacity) among the devices that do not hold the model yet.
  std::vector<scheduler::DeviceRoom> rooms(static_cast<size_t>(devices));
  for (int32_t d = 0; d < devices; ++d) {
    rooms[d].name = absl::StrCat("sim:", d);
    rooms[d].budget_bytes = static_cast<int64_t>(config.cost.device_bytes / (1 + kKvShare));
  }
  std::vector<int32_t> replicas(static_cast<size_t>(models), 0);
  // Places one more replica of `m`; false when no device can take it.
  const auto place_one = [&](int32_t m) {
    std::vector<scheduler::DeviceRoom> free_rooms;
    std::vector<size_t> index;
    for (size_t d = 0; d < rooms.size(); ++d) {
      if (std::find(out[d].begin(), out[d].end(), m) != out[d].end()) continue;
      free_rooms.push_back(rooms[d]);
      index.push_back(d);
    }
    const scheduler::ModelDemand demand{
        absl::StrCat("m", m), static_cast<int64_t>(w), loads[m] / (replicas[m] + 1), {}};
    absl::StatusOr<scheduler::Placement> placed =
        scheduler::PlaceModel(free_rooms, demand, Clock::time_point{});
    if (!placed.ok()) return false;
    const size_t d = index[placed->device];
    out[d].push_back(m);
    rooms[d].used_bytes += demand.bytes;
    rooms[d].load += demand.load;
    ++replicas[m];
    return true;
  };
  std::vector<int32_t> order(static_cast<size_t>(models));
  for (int32_t m = 0; m < models; ++m) order[m] = m;
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return loads[a] > loads[b]; });
  std::vector<int32_t> cold;  // lazy: the models no device's memory took
  for (int32_t m : order) {
    if (place_one(m)) continue;
    if (policy != Policy::kLazy) return std::nullopt;  // the model fits nowhere
    cold.push_back(m);
  }
  std::vector<bool> full(static_cast<size_t>(models), false);
  for (;;) {
    int32_t next = -1;
    for (int32_t m : order) {
      if (full[m] || replicas[m] >= devices) continue;
      if (next < 0 || loads[m] / replicas[m] > loads[next] / replicas[next]) next = m;
    }
    if (next < 0) break;
    if (!place_one(next)) full[next] = true;
  }
  // Lazy: each cold model (busiest first) to the device with the least
  // expected load; it stays evicted there until a request loads it.
  for (int32_t m : cold) {
    size_t d = 0;
    for (size_t i = 1; i < rooms.size(); ++i) {
      if (rooms[i].load < rooms[d].load) d = i;
    }
    out[d].push_back(m);
    rooms[d].load += loads[m];
  }
  return out;
}

std::optional<SimResult> MinDevices(Policy policy, const std::vector<SimRequest>& requests,
                                    int32_t num_models, const SimConfig& config, double attainment,
                                    int32_t max_devices) {
  const std::vector<double> loads = ExpectedLoads(requests, num_models, config);
  std::map<int32_t, std::optional<SimResult>> tried;
  const auto meets = [&](int32_t n) -> const std::optional<SimResult>& {
    auto it = tried.find(n);
    if (it != tried.end()) return it->second;
    std::optional<SimResult> r;
    if (std::optional<Assignment> a = Place(policy, n, loads, config)) {
      SimResult s = Simulate(requests, *a, policy, config);
      if (s.attainment >= attainment) r = s;
    }
    return tried.emplace(n, r).first->second;
  };
  if (!meets(max_devices)) return std::nullopt;
  int32_t lo = 1, hi = max_devices;  // hi meets
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (meets(mid)) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return meets(hi);
}

}  // namespace cohost::sim
