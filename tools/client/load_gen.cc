// Arrival schedules, request sources and statistics for `cohost bench`.

#include "tools/client/load_gen.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace cohost::tools {

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double h = (sorted.size() - 1) * std::clamp(q, 0.0, 100.0) / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

Summary Summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  s.min = values.front();
  s.max = values.back();
  s.p50 = Percentile(values, 50);
  s.p90 = Percentile(values, 90);
  s.p99 = Percentile(values, 99);
  return s;
}

// ---- random streams -------------------------------------------------------------

std::mt19937_64 StreamRng(uint64_t seed, RandomStream stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(stream)};
  return std::mt19937_64(seq);
}

// ---- max tokens ---------------------------------------------------------------

namespace {
constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
}  // namespace

absl::StatusOr<MaxTokensDist> MaxTokensDist::Fixed(int64_t n) {
  if (n < 1 || n > kMaxInt32) {
    return absl::InvalidArgumentError(absl::StrCat("max tokens must be >= 1, got ", n));
  }
  return MaxTokensDist(static_cast<int32_t>(n), static_cast<int32_t>(n));
}

absl::StatusOr<MaxTokensDist> MaxTokensDist::ParseRange(std::string_view range_std) {
  const absl::string_view range(range_std.data(), range_std.size());
  std::vector<absl::string_view> parts = absl::StrSplit(range, ':');
  int64_t lo = 0, hi = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &lo) || !absl::SimpleAtoi(parts[1], &hi) ||
      lo < 1 || hi < lo || hi > kMaxInt32) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-tokens-range: expected LO:HI with 1 <= LO <= HI, got '", range, "'"));
  }
  return MaxTokensDist(static_cast<int32_t>(lo), static_cast<int32_t>(hi));
}

int32_t MaxTokensDist::Sample(std::mt19937_64& rng) const {
  if (lo_ == hi_) return lo_;
  return std::uniform_int_distribution<int32_t>(lo_, hi_)(rng);
}

// ---- prompts file -------------------------------------------------------------

namespace {

absl::Status LineError(size_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("prompts file line ", line, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<PromptEntry>> ParsePromptsJsonl(std::string_view content) {
  std::vector<PromptEntry> out;
  size_t line_no = 0;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(content.data(), content.size()), '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    nlohmann::json j =
        nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return LineError(line_no, "not valid JSON");
    if (!j.is_object()) return LineError(line_no, "expected a JSON object");
    for (const auto& [key, value] : j.items()) {
      if (key != "prompt" && key != "prompt_ids" && key != "max_tokens") {
        return LineError(line_no, absl::StrCat("unknown key \"", key,
                                               "\" (expected prompt, prompt_ids, max_tokens)"));
      }
    }
    const bool has_text = j.contains("prompt"), has_ids = j.contains("prompt_ids");
    if (has_text == has_ids) {
      return LineError(line_no,
                       "needs exactly one of \"prompt\" (a string) and \"prompt_ids\" "
                       "(an array of token ids)");
    }
    PromptEntry e;
    if (has_text) {
      if (!j["prompt"].is_string()) return LineError(line_no, "\"prompt\" must be a string");
      e.text = j["prompt"].get<std::string>();
      if (e.text->empty()) return LineError(line_no, "\"prompt\" is empty");
    } else {
      const nlohmann::json& ids = j["prompt_ids"];
      if (!ids.is_array() || ids.empty()) {
        return LineError(line_no, "\"prompt_ids\" must be a non-empty array of token ids");
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 ||
            ids[i].get<int64_t>() > kMaxInt32) {
          return LineError(line_no,
                           absl::StrCat("prompt_ids[", i, "] is not a token id (an integer >= 0)"));
        }
        e.ids.push_back(ids[i].get<int32_t>());
      }
    }
    if (j.contains("max_tokens")) {
      const nlohmann::json& m = j["max_tokens"];
      if (!m.is_number_integer() || m.get<int64_t>() < 1 || m.get<int64_t>() > kMaxInt32) {
        return LineError(line_no, "\"max_tokens\" must be an integer >= 1");
      }
      e.max_tokens = m.get<int32_t>();
    }
    out.push_back(std::move(e));
  }
  if (out.empty()) return absl::InvalidArgumentError("prompts file has no prompts");
  return out;
}

// ---- request sources ------------------------------------------------------------

RequestSource RequestSource::FromTexts(std::vector<std::string> texts, MaxTokensDist max_tokens,
                                       uint64_t seed) {
  RequestSource s(Kind::kTexts, max_tokens, seed);
  s.texts_ = std::move(texts);
  return s;
}

RequestSource RequestSource::FromEntries(std::vector<PromptEntry> entries, MaxTokensDist max_tokens,
                                         uint64_t seed) {
  RequestSource s(Kind::kEntries, max_tokens, seed);
  s.entries_ = std::move(entries);
  return s;
}

RequestSource RequestSource::Generated(int32_t prompt_tokens, int32_t vocab,
                                       MaxTokensDist max_tokens, uint64_t seed) {
  RequestSource s(Kind::kGenerated, max_tokens, seed);
  s.prompt_tokens_ = std::max(prompt_tokens, 1);
  s.vocab_ = std::max(vocab, 1);
  return s;
}

RequestSource RequestSource::FromTrace(std::vector<TraceRow> rows, int32_t max_prompt_tokens,
                                       int32_t vocab, int32_t context, uint64_t seed) {
  RequestSource s(Kind::kTrace, *MaxTokensDist::Fixed(1), seed);
  s.rows_ = std::move(rows);
  s.prompt_tokens_ = std::max(max_prompt_tokens, 1);
  s.vocab_ = std::max(vocab, 1);
  s.context_ = context;
  return s;
}

std::vector<int32_t> RequestSource::RandomIds(int32_t n) {
  std::uniform_int_distribution<int32_t> id(0, vocab_ - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& x : ids) x = id(rng_);
  return ids;
}

RequestSpec RequestSource::Next() {
  RequestSpec r;
  const size_t i = next_++;
  switch (kind_) {
    case Kind::kTexts:
      r.text = texts_[i % texts_.size()];
      r.max_tokens = max_tokens_.Sample(rng_);
      break;
    case Kind::kEntries: {
      const PromptEntry& e = entries_[i % entries_.size()];
      r.text = e.text;
      if (!e.text) r.ids = e.ids;
      r.max_tokens = e.max_tokens ? *e.max_tokens : max_tokens_.Sample(rng_);
      break;
    }
    case Kind::kGenerated:
      r.ids = RandomIds(prompt_tokens_);
      r.max_tokens = max_tokens_.Sample(rng_);
      break;
    case Kind::kTrace: {
      const TraceRow& row = rows_[i % rows_.size()];
      int32_t prompt = std::clamp(row.context_tokens, 1, prompt_tokens_);
      int32_t output = std::max(row.generated_tokens, 1);
      if (context_ > 1 && int64_t{prompt} + output > context_) {
        // Keep the output length the trace asks for where possible; shrink the prompt.
        output = std::min(output, context_ - 1);
        prompt = std::min(prompt, context_ - output);
      }
      r.ids = RandomIds(prompt);
      r.max_tokens = output;
      break;
    }
  }
  return r;
}

// ---- statistics over results -----------------------------------------------------

std::optional<double> TpotMs(const RequestResult& r) {
  const std::vector<double>& t = r.token_times_ms;
  if (t.size() < 2) return std::nullopt;
  return (t.back() - t.front()) / (t.size() - 1);
}

std::vector<double> InterTokenLatenciesMs(const RequestResult& r) {
  std::vector<double> out;
  const std::vector<double>& t = r.token_times_ms;
  size_t i = 0;
  // The first message's tokens after the first: no wait (the server counts
  // them so too).
  while (i < t.size() && t[i] == t[0]) {
    if (i > 0) out.push_back(0.0);
    ++i;
  }
  double prev = t.empty() ? 0 : t[0];
  while (i < t.size()) {
    size_t j = i;
    while (j < t.size() && t[j] == t[i]) ++j;  // one message: tokens [i, j)
    const double gap = (t[i] - prev) / (j - i);
    for (size_t k = i; k < j; ++k) out.push_back(gap);
    prev = t[i];
    i = j;
  }
  return out;
}

bool MeetsGoodput(const RequestResult& r, const GoodputTargets& targets) {
  if (!r.ok()) return false;
  if (targets.ttft_ms && r.ttft_ms > *targets.ttft_ms) return false;
  if (targets.tpot_ms) {
    std::optional<double> tpot = TpotMs(r);
    if (tpot && *tpot > *targets.tpot_ms) return false;
  }
  return true;
}

BenchStats ComputeStats(const std::vector<RequestResult>& results, double duration_s,
                        const GoodputTargets& targets) {
  BenchStats s;
  s.issued = results.size();
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e, server_ttft;
  for (const RequestResult& r : results) {
    if (!r.ok()) {
      ++s.failed;
      ++s.errors[r.status_code];
      continue;
    }
    ++s.completed;
    s.prompt_tokens += r.prompt_tokens;
    s.output_tokens += r.output_tokens;
    if (!r.token_times_ms.empty()) ttft.push_back(r.ttft_ms);
    if (std::optional<double> t = TpotMs(r)) tpot.push_back(*t);
    for (double gap : InterTokenLatenciesMs(r)) itl.push_back(gap);
    e2e.push_back(r.e2e_ms);
    server_ttft.push_back(r.server_ttft_ms);
    if (MeetsGoodput(r, targets)) ++s.good_requests;
  }
  s.ttft_ms = Summarize(std::move(ttft));
  s.tpot_ms = Summarize(std::move(tpot));
  s.itl_ms = Summarize(std::move(itl));
  s.e2e_ms = Summarize(std::move(e2e));
  s.server_ttft_ms = Summarize(std::move(server_ttft));
  if (duration_s > 0) {
    s.request_throughput = s.completed / duration_s;
    s.output_throughput = s.output_tokens / duration_s;
    s.total_token_throughput = (s.prompt_tokens + s.output_tokens) / duration_s;
    s.goodput = s.good_requests / duration_s;
  }
  return s;
}

}  // namespace cohost::tools
