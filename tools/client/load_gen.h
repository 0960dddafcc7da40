// The transport-free parts of `cohost bench`: arrival schedules (Poisson, trace
// replay), request sources (given prompts, JSONL files, generated token prompts,
// trace rows), and the statistics over finished requests (TTFT, TPOT, ITL,
// throughput, goodput). Everything here is deterministic given a seed, so it is
// unit-tested without a server.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/common/azure_trace.h"

namespace cohost::tools {

// ---- statistics -----------------------------------------------------------

// Percentile q in [0, 100] of an ascending-sorted sample by linear interpolation
// between closest ranks (numpy's default, "type 7"): rank h = (n-1) q / 100, value
// sorted[floor h] + (h - floor h)(sorted[floor h + 1] - sorted[floor h]).
// 0 for an empty sample.
double Percentile(const std::vector<double>& sorted, double q);

struct Summary {
  size_t count = 0;
  double mean = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;  // same unit as the sample
};
Summary Summarize(std::vector<double> values);

// ---- random streams -----------------------------------------------------------

// One run's seed drives several random streams; each gets a generator state of
// its own. Two generators seeded alike draw the same numbers, so a request's
// arrival gap and its output length came from one number, rank-correlated:
// long outputs always followed long lulls.
enum class RandomStream : uint32_t { kArrivals = 1, kRequests = 2 };
std::mt19937_64 StreamRng(uint64_t seed, RandomStream stream);

// ---- arrivals ---------------------------------------------------------------

// Open-loop arrivals at `rate` per second, from a seeded generator. With
// burstiness 1, a Poisson process (exponential gaps with mean 1/rate); with
// burstiness b, gamma-distributed gaps of shape b and the same mean, whose
// coefficient of variation is 1/sqrt(b): below 1 the requests come in bursts
// with lulls between (vLLM's benchmark_serving.py `--burstiness` means the
// same). Times are seconds from the start, ascending.
class RateArrivals {
 public:
  RateArrivals(double rate, uint64_t seed, double burstiness = 1)
      : poisson_(burstiness == 1),
        exponential_(rate),
        gamma_(burstiness, 1 / (rate * burstiness)),
        rng_(StreamRng(seed, RandomStream::kArrivals)) {}
  double Next() { return now_ += poisson_ ? exponential_(rng_) : gamma_(rng_); }

 private:
  bool poisson_;
  std::exponential_distribution<double> exponential_;
  std::gamma_distribution<double> gamma_;
  std::mt19937_64 rng_;
  double now_ = 0;
};

// ---- request sources ----------------------------------------------------------

// Output lengths: a fixed count, or uniform over [lo, hi] (both inclusive).
class MaxTokensDist {
 public:
  static absl::StatusOr<MaxTokensDist> Fixed(int64_t n);
  // "LO:HI" with 1 <= LO <= HI.
  static absl::StatusOr<MaxTokensDist> ParseRange(std::string_view range);
  int32_t Sample(std::mt19937_64& rng) const;
  int32_t lo() const { return lo_; }
  int32_t hi() const { return hi_; }

 private:
  MaxTokensDist(int32_t lo, int32_t hi) : lo_(lo), hi_(hi) {}
  int32_t lo_, hi_;
};

// One line of a prompts file: {"prompt": "..."} or {"prompt_ids": [...]}, each
// with an optional "max_tokens" (>= 1) overriding --max-tokens.
struct PromptEntry {
  std::optional<std::string> text;
  std::vector<int32_t> ids;  // used when text is unset
  std::optional<int32_t> max_tokens;
};
// INVALID_ARGUMENT naming the 1-based line and what is wrong. Blank lines are skipped.
absl::StatusOr<std::vector<PromptEntry>> ParsePromptsJsonl(std::string_view content);

// What one benchmark request sends: text or token ids, and its max_tokens.
struct RequestSpec {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
  int32_t max_tokens = 0;
};

// Produces the i-th request of a run. Sources cycle when more requests than
// entries are asked for; generated prompts draw ids uniformly from [0, vocab).
class RequestSource {
 public:
  static RequestSource FromTexts(std::vector<std::string> texts, MaxTokensDist max_tokens,
                                 uint64_t seed);
  static RequestSource FromEntries(std::vector<PromptEntry> entries, MaxTokensDist max_tokens,
                                   uint64_t seed);
  static RequestSource Generated(int32_t prompt_tokens, int32_t vocab, MaxTokensDist max_tokens,
                                 uint64_t seed);
  // Prompts of min(context_tokens, max_prompt_tokens) generated ids and max_tokens
  // = the row's generated_tokens, both trimmed so prompt + output fit `context`.
  static RequestSource FromTrace(std::vector<TraceRow> rows, int32_t max_prompt_tokens,
                                 int32_t vocab, int32_t context, uint64_t seed);

  RequestSpec Next();

 private:
  enum class Kind { kTexts, kEntries, kGenerated, kTrace };
  RequestSource(Kind kind, MaxTokensDist max_tokens, uint64_t seed)
      : kind_(kind), max_tokens_(max_tokens), rng_(StreamRng(seed, RandomStream::kRequests)) {}
  std::vector<int32_t> RandomIds(int32_t n);

  Kind kind_;
  MaxTokensDist max_tokens_;
  std::mt19937_64 rng_;
  size_t next_ = 0;
  std::vector<std::string> texts_;
  std::vector<PromptEntry> entries_;
  std::vector<TraceRow> rows_;
  int32_t prompt_tokens_ = 0;
  int32_t vocab_ = 1;
  int32_t context_ = 0;
};

// ---- results ----------------------------------------------------------------

// What the client saw of one request. Times are milliseconds from when the call
// was started on the client.
struct RequestResult {
  std::string status_code = "OK";  // a gRPC code name, e.g. "RESOURCE_EXHAUSTED"
  std::string error_message;
  double start_s = 0;  // seconds since the run started
  double ttft_ms = 0;  // first message carrying tokens
  double e2e_ms = 0;   // the final status
  // Arrival time of each streamed token: a message with k tokens contributes k
  // entries at its arrival time. Ascending.
  std::vector<double> token_times_ms;
  int32_t prompt_tokens = 0;  // from the server's usage
  int32_t output_tokens = 0;
  double server_ttft_ms = 0;
  bool ok() const { return status_code == "OK"; }
};

struct GoodputTargets {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
};

// Per-request TPOT: (last token time - first token time) / (tokens - 1); unset for
// fewer than two tokens. ITL: the gaps between successive token-carrying messages,
// a gap before a message of k tokens counted k times as gap / k, and the first
// message's k tokens k - 1 gaps of zero (so coalesced messages weigh as many tokens
// as they carry, n tokens are n - 1 gaps, and mean ITL is TPOT, as the server's
// cohost_inter_token_latency_seconds counts them).
std::optional<double> TpotMs(const RequestResult& r);
std::vector<double> InterTokenLatenciesMs(const RequestResult& r);
// A successful request meets the targets when each given target is met; a request
// with one token has no TPOT and meets any TPOT target.
bool MeetsGoodput(const RequestResult& r, const GoodputTargets& targets);

struct BenchStats {
  size_t issued = 0, completed = 0, failed = 0;
  std::map<std::string, size_t> errors;  // status code name -> count
  double duration_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;
  Summary ttft_ms, tpot_ms, itl_ms, e2e_ms, server_ttft_ms;
  double request_throughput = 0;      // completed requests / s
  double output_throughput = 0;       // output tokens / s
  double total_token_throughput = 0;  // (prompt + output) tokens / s
  size_t good_requests = 0;
  double goodput = 0;  // good requests / s; meaningful only with a target
};
// Statistics over successful requests; failures only count. duration_s is the
// wall time of the run (LoadRun::duration_s: its start to the last successful
// completion).
BenchStats ComputeStats(const std::vector<RequestResult>& results, double duration_s,
                        const GoodputTargets& targets);

}  // namespace cohost::tools
