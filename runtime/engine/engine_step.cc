// Engine::Step: drain the inbox, schedule, run one flattened batch, sample,
// stream, retire. Runs on the one thread that owns the engine's state.

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_format.h"
#include "runtime/engine/engine_state.h"
#include "runtime/model/model.h"

namespace cohost::runtime {
namespace {

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Whether the step runs Model::ForwardSample, with *in its sample rows'
// specs, penalties and logprobs in order. Tokens are drawn on the device
// (Backend::SampleRows, after ApplyPenalties; logprobs by RowLogprobs): on a
// device whose memory is its own (CUDA), every request's; where the device's
// memory is the host's (the CPU), only in steps whose every row takes the
// argmax without logprobs (the host Sampler takes the same argmax anyway),
// else Forward and the host Sampler for all. A JSON request's grammar masks
// its row where it draws: on the device (Backend::MaskRows, before the
// penalties) or on the host (JsonConstraint::Mask); a step with JSON rows
// and rows asking for logprobs draws on the host, whose logprobs read a
// copy of the raw row (there a request's draws are the same bits as on the
// device, so its tokens still do not depend on its batch). Either way where a request draws
// depends only on it and the backend, so a seeded request draws the same
// tokens whatever shares its batch. A request's draw comes from its own
// Sampler, one number per token, as on the host.
bool DeviceSampleInputs(const StepPlan& plan,
                        const absl::flat_hash_map<RequestId, std::unique_ptr<LiveRequest>>& live,
                        bool device_memory, int64_t vocab, const JsonConstraint& json,
                        SampleInputs* in) {
  bool masked = false, logprobs = false;
  for (const ScheduledSeq& item : plan.scheduled) {
    if (!item.samples) continue;
    const LiveRequest& r = *live.at(item.seq->id);
    if (!device_memory && !r.TakesArgmax()) return false;
    masked = masked || r.json;
    logprobs = logprobs || r.request.sampling.logprobs;
  }
  // The step's masks move logits that its logprobs read raw (RowLogprobs
  // reads every row after every row's draw).
  if (masked && logprobs) return false;
  in->specs.clear();
  in->mask_of.clear();
  in->masks.clear();
  in->top_logprobs = -1;
  SamplePenalties& penalties = in->penalties;
  penalties.starts.assign(1, 0);
  penalties.terms.clear();
  for (const ScheduledSeq& item : plan.scheduled) {
    if (!item.samples) continue;
    LiveRequest& r = *live.at(item.seq->id);
    kernels::SampleSpec spec;  // temperature 0: the argmax
    if (!r.TakesArgmax()) {
      const SamplingParams& p = r.sampler.params();
      // Below 1 in float too: the draw stays inside the kept mass. None at
      // temperature 0 (a penalized argmax), as the host Sampler draws none.
      const float u = p.temperature == 0.f
                          ? 0.f
                          : std::min(static_cast<float>(r.sampler.NextUniform()), 0x1.fffffep-1f);
      spec = {p.temperature, p.top_k, p.top_p, p.min_p, u};
      r.sampler.ForEachPenalty(
          r.seq.tokens, r.seq.num_prompt_tokens, vocab,
          [&](const kernels::PenaltyTerm& t) { penalties.terms.push_back(t); });
      if (p.logprobs) in->top_logprobs = std::max(in->top_logprobs, *p.logprobs);
    }
    in->specs.push_back(spec);
    penalties.starts.push_back(static_cast<int32_t>(penalties.terms.size()));
    if (masked) {
      const int32_t words = static_cast<int32_t>((vocab + 63) / 64);
      in->mask_of.push_back(r.json ? static_cast<int32_t>(in->masks.size()) / words : -1);
      if (r.json) {
        json.AppendMask(r.json_schema, *r.json, r.json_phase, r.request.sampling.stop_token_ids,
                        static_cast<int32_t>(vocab), &in->masks);
      }
    }
  }
  if (penalties.terms.empty()) penalties.starts.clear();
  return true;
}

// The flattened varlen batch of a plan: each scheduled sequence contributes
// tokens [num_computed_tokens, + num_new_tokens), written at slots from its
// block table; sequences that reach their last token sample.
void BuildBatch(const StepPlan& plan, int32_t block_size, Batch* b) {
  b->token_ids.clear();
  b->positions.clear();
  b->slot_mapping.clear();
  b->seq_starts.assign(1, 0);
  b->context_lens.clear();
  b->sample_rows.clear();
  int32_t max_blocks = 1;
  for (const ScheduledSeq& s : plan.scheduled) {
    max_blocks = std::max(max_blocks, static_cast<int32_t>(s.seq->block_table.size()));
  }
  b->max_blocks_per_seq = max_blocks;
  b->block_tables.assign(plan.scheduled.size() * max_blocks, kNullBlock);
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const Sequence& seq = *plan.scheduled[i].seq;
    const int32_t begin = seq.num_computed_tokens;
    const int32_t end = begin + plan.scheduled[i].num_new_tokens;
    for (int32_t pos = begin; pos < end; ++pos) {
      b->token_ids.push_back(seq.tokens[pos]);
      b->positions.push_back(pos);
      b->slot_mapping.push_back(seq.block_table[pos / block_size] * block_size + pos % block_size);
    }
    b->seq_starts.push_back(static_cast<int32_t>(b->token_ids.size()));
    b->context_lens.push_back(end);
    std::copy(seq.block_table.begin(), seq.block_table.end(),
              b->block_tables.begin() + i * max_blocks);
    if (plan.scheduled[i].samples) b->sample_rows.push_back(b->seq_starts.back() - 1);
  }
}

FinishInfo MakeFinishInfo(const LiveRequest& r, FinishReason reason, absl::Status status,
                          Clock::time_point now) {
  FinishInfo info;
  info.reason = reason;
  info.status = std::move(status);
  info.prompt_tokens = r.seq.num_prompt_tokens;
  info.cached_prompt_tokens = r.seq.num_cached_prompt_tokens;
  info.completion_tokens = std::max(0, r.seq.num_generated());
  info.preemptions = r.seq.num_preemptions;
  RequestTimings& t = info.timings;
  t.e2e_ms = MsBetween(r.submitted, now);
  if (r.scheduled_once) t.queue_ms = MsBetween(r.submitted, r.first_scheduled);
  if (info.completion_tokens > 0) {
    t.ttft_ms = MsBetween(r.submitted, r.first_token);
    const double decode_ms = MsBetween(r.first_token, now);
    if (info.completion_tokens > 1 && decode_ms > 0) {
      t.decode_tokens_per_second = (info.completion_tokens - 1) * 1000.0 / decode_ms;
    }
  }
  return info;
}

}  // namespace

void Engine::Impl::Retire(RequestId id, FinishReason reason, absl::Status status,
                          Clock::time_point now) {
  auto it = live.find(id);
  if (it == live.end()) return;
  LiveRequest& r = *it->second;
  step_scheduler.Remove(&r.seq);
  r.sink->OnFinish(MakeFinishInfo(r, reason, std::move(status), now));
  if (reason == FinishReason::kCancelled) {
    ++counters.num_requests_aborted;
  } else {
    ++counters.num_requests_finished;
  }
  counters.num_prompt_tokens_cached += r.seq.num_cached_prompt_tokens;
  live.erase(it);
}

void Engine::Impl::ExpireDeadlines(Clock::time_point now, const std::optional<StepCost>& cost,
                                   const StepSchedulerConfig& sched) {
  const int32_t step_tokens = sched.max_tokens_per_step;
  std::vector<RequestId> expired;
  bool deadlines_left = false;
  for (const auto& [id, r] : live) {
    if (!r->request.deadline) continue;
    if (*r->request.deadline <= now) {
      expired.push_back(id);
    } else {
      deadlines_left = true;
    }
  }
  for (RequestId id : expired) {
    Retire(id, FinishReason::kError,
           absl::DeadlineExceededError("the request's deadline passed before it finished"), now);
  }
  if (!cost || !deadlines_left) return;
  // Requests without a first token in the order the scheduler will serve
  // them: running ones (mid-prefill) first, then the queue. Each one's first
  // token needs the prefill ahead of it and its own.
  std::vector<Sequence*> order;
  int32_t top_priority = std::numeric_limits<int32_t>::min();  // of the running prefills
  for (Sequence* seq : step_scheduler.running()) {
    if (seq->num_generated() != 0) continue;
    order.push_back(seq);
    top_priority = std::max(top_priority, seq->priority);
  }
  for (Sequence* seq : step_scheduler.waiting()) {
    if (seq->num_generated() == 0) order.push_back(seq);
  }
  int64_t ahead = 0;
  std::vector<std::pair<RequestId, double>> hopeless;  // with the predicted ms
  // The queue's head, when the scheduler may admit it beside running work.
  const bool room = static_cast<int32_t>(step_scheduler.running().size()) < sched.max_num_seqs;
  const Sequence* head =
      step_scheduler.waiting().empty() || !room ? nullptr : step_scheduler.waiting().front();
  for (Sequence* seq : order) {
    // As the Router's prediction assumed when it was admitted.
    const int64_t own = PrefillLeft(*seq);
    int64_t tokens = ahead + own;
    // A short prompt at the head of the queue starts in the next step
    // beside the running prefills, and a short one running (admitted in
    // part) is done in the next (StepScheduler::ShortPromptReserve).
    const bool short_head =
        seq == head && seq->num_preemptions == 0 && seq->priority >= top_priority;
    const bool running_prefill =
        seq->status == SeqStatus::kRunning && !seq->resumed_without_progress;
    if ((short_head || running_prefill) &&
        IsShortPrompt(seq->num_uncomputed(), step_tokens, sched)) {
      tokens = std::min<int64_t>(tokens, step_tokens);
    }
    const std::optional<Clock::time_point>& deadline = live.at(seq->id)->request.deadline;
    const auto first_token = std::chrono::duration<double>(cost->Seconds(tokens, step_tokens));
    if (deadline && now + std::chrono::duration_cast<Clock::duration>(first_token) > *deadline) {
      hopeless.emplace_back(seq->id, first_token.count() * 1e3);
      continue;  // dropped: it no longer holds up the ones behind it
    }
    ahead += own;  // the ones behind wait for all of it (a short head's too)
  }
  for (const auto& [id, ms] : hopeless) {
    const double left_ms = MsBetween(now, *live.at(id)->request.deadline);
    Retire(id, FinishReason::kError,
           absl::DeadlineExceededError(absl::StrFormat(
               "the request's deadline cannot be met: its first token is predicted in %.0f ms, "
               "and its deadline is in %.0f ms",
               ms, left_ms)),
           now);
  }
}

int64_t Engine::Impl::PrefillLeft(Sequence& seq) {
  const int32_t cached = seq.block_table.empty() ? kv_manager.CachedPrefixTokens(seq) : 0;
  return seq.num_uncomputed() - cached;
}

void Engine::Impl::EmitToken(LiveRequest& r, const Tokenizer& tokenizer, Clock::time_point now) {
  const int32_t token = r.seq.tokens.back();
  const SamplingParams& p = r.request.sampling;
  TokenDelta delta;
  std::optional<FinishReason> finish;

  const bool stop_id =
      std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  const int64_t start = r.detokenized_bytes;
  if (stop_id || (!p.ignore_eos && tokenizer.IsEndOfGeneration(token))) {
    finish = FinishReason::kStop;  // the end token itself is not shown as text
  } else {
    const std::string piece = r.detok.Push(token);
    r.detokenized_bytes += static_cast<int64_t>(piece.size());
    StopChecker::Result out = r.stops.Push(piece);
    delta.text = std::move(out.text);
    if (out.stopped) finish = FinishReason::kStopString;
    if (!finish && r.seq.num_generated() >= r.seq.max_tokens) finish = FinishReason::kLength;
  }
  if (finish && *finish != FinishReason::kStopString) {
    // Release what was held back: incomplete UTF-8 and possible stop prefixes.
    StopChecker::Result tail = r.stops.Push(r.detok.Flush());
    delta.text += tail.text;
    if (tail.stopped) {
      finish = FinishReason::kStopString;
    } else {
      delta.text += r.stops.Flush();
    }
  }
  // The token's bytes of the text as detokenized (an end token has none).
  r.held.push_back({token, std::exchange(r.logprobs, std::nullopt), start, r.detokenized_bytes});
  r.released_bytes += static_cast<int64_t>(delta.text.size());
  // Tokens whose text has started going out go with it, and one without
  // text once all before it went; at a finish other than a stop string
  // every one goes; at a stop string the rest never do.
  const bool all = finish && *finish != FinishReason::kStopString;
  const auto released = [&](const LiveRequest::HeldToken& h) {
    return h.start < r.released_bytes || h.end <= r.released_bytes;
  };
  while (!r.held.empty() && (all || released(r.held.front()))) {
    LiveRequest::HeldToken& h = r.held.front();
    delta.token_ids.push_back(h.id);
    if (h.logprobs) delta.logprobs.push_back(*std::move(h.logprobs));
    r.held.pop_front();
  }
  // Nothing to send while a possible stop string's start is held back.
  // (Text without a token: the rest of one sent before, held until now.)
  const bool empty = delta.token_ids.empty() && delta.text.empty();
  if (!empty && !r.sink->OnDelta(delta)) finish = FinishReason::kCancelled;
  if (finish) Retire(r.seq.id, *finish, absl::OkStatus(), now);
}

void Engine::TakeQueued(Clock::time_point now) {
  Impl& s = *impl_;
  std::vector<std::unique_ptr<LiveRequest>> arrivals;
  std::vector<std::pair<RequestId, absl::Status>> aborts;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    arrivals.swap(s.inbox);
    aborts.swap(s.aborts);
  }
  for (std::unique_ptr<LiveRequest>& r : arrivals) {
    r->seq.arrival_order = s.next_arrival++;
    Sequence* seq = &r->seq;
    const RequestId id = seq->id;
    if (!s.live.try_emplace(id, std::move(r)).second) {  // leaves r as it was
      // An id already live (the caller's duty to avoid; the Router's are
      // unique): refused, never scheduled. Scheduled, the scheduler would
      // hold this request after it was destroyed with `arrivals`.
      r->sink->OnFinish(MakeFinishInfo(
          *r, FinishReason::kError,
          absl::InvalidArgumentError(absl::StrFormat("request id %d is already live", id)), now));
      continue;
    }
    s.step_scheduler.Add(seq);
  }
  for (auto& [id, why] : aborts) s.Retire(id, FinishReason::kCancelled, std::move(why), now);
}

bool Engine::ApplyAborts() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->aborts.empty()) return false;
  }
  TakeQueued(Now());
  if (config_.kv_budget != nullptr) ReturnDrainedKv();
  PublishStats();
  return true;
}

absl::StatusOr<bool> Engine::Step(const StepLimits& limits) {
  Impl& s = *impl_;
  const Clock::time_point step_start = Now();
  TakeQueued(step_start);
  s.kv_short = false;  // this step says again whether its work waits for memory
  s.ExpireDeadlines(step_start, StepCostNow(), config_.step_scheduler);

  absl::Status result = absl::OkStatus();
  StepPlan plan = s.step_scheduler.Schedule(limits.max_new_tokens);
  // With a shared pool the head can wait for memory other engines are giving
  // back; a fixed pool that cannot fit it is a bug (Submit checks).
  if (plan.empty() && config_.kv_budget == nullptr && s.step_scheduler.num_running() == 0 &&
      s.step_scheduler.num_waiting() > 0) {
    // Submit rejects requests that cannot fit an empty pool, so this is a bug;
    // fail the head request rather than spin forever.
    Sequence* head = s.step_scheduler.waiting().front();
    result = absl::InternalError(absl::StrFormat(
        "request %d cannot be scheduled on an idle engine (%d tokens, %d free blocks)", head->id,
        head->num_tokens(), s.kv_manager.num_free_blocks()));
    s.Retire(head->id, FinishReason::kError, result, step_start);
  }
  if (!plan.empty()) {
    for (const ScheduledSeq& item : plan.scheduled) {
      LiveRequest& r = *s.live.at(item.seq->id);
      if (!r.scheduled_once) {
        r.scheduled_once = true;
        r.first_scheduled = step_start;
        r.sink->OnScheduled();
      }
    }
    BuildBatch(plan, s.kv_manager.block_size(), &s.batch);
    const bool device_memory = !model_->backend()->AdoptsHostMemory();
    const bool on_device =
        DeviceSampleInputs(plan, s.live, device_memory, model_->config().vocab_size,
                           *s.json_constraint, &s.sample_inputs);
    result = on_device ? model_->ForwardSample(s.batch, *s.kv_cache, s.sample_inputs, &s.sampled)
                       : model_->Forward(s.batch, *s.kv_cache, &s.logits);
    if (!result.ok()) {
      for (const ScheduledSeq& item : plan.scheduled) {
        s.Retire(item.seq->id, FinishReason::kError, result, Now());
      }
    } else {
      const Clock::time_point sampled_at = Now();
      const int32_t vocab = model_->config().vocab_size;
      std::vector<LiveRequest*> sampled;
      for (const ScheduledSeq& item : plan.scheduled) {
        if (item.samples) sampled.push_back(s.live.at(item.seq->id).get());
      }
      std::vector<int32_t> tokens(sampled.size());
      if (on_device) {
        for (size_t row = 0; row < sampled.size(); ++row) {
          LiveRequest& r = *sampled[row];
          tokens[row] = s.sampled.ids[row];
          if (r.json) {
            s.json_constraint->Advance(*r.json_schema, tokens[row], &r.json_phase, &*r.json);
          }
          if (const std::optional<int32_t> top_n = r.request.sampling.logprobs) {
            const size_t width = 1 + static_cast<size_t>(s.sampled.top);
            r.logprobs = FromRow(
                absl::MakeConstSpan(s.sampled.logprobs).subspan(row * width, width), *top_n);
          }
        }
      } else {
        // Each row is its own request's (its sampler, its logits, its
        // logprobs): drawn side by side on the backend's host threads.
        model_->backend()->HostParallelFor(
            static_cast<int64_t>(sampled.size()), [&](int64_t begin, int64_t end) {
              // The thread's copy of a row, kept between steps: no allocation a step.
              thread_local std::vector<float> raw_logits;
              for (int64_t row = begin; row < end; ++row) {
                LiveRequest& r = *sampled[row];
                const std::optional<int32_t> top_n = r.request.sampling.logprobs;
                const absl::Span<float> logits =
                    absl::MakeSpan(s.logits.data() + static_cast<size_t>(row) * vocab, vocab);
                // Sample rewrites the logits: logprobs read a copy of the model's.
                if (top_n) raw_logits.assign(logits.begin(), logits.end());
                if (r.json) {
                  s.json_constraint->Mask(r.json_schema, *r.json, r.json_phase,
                                          r.request.sampling.stop_token_ids, logits);
                }
                tokens[row] = r.sampler.Sample(logits, r.seq.tokens, r.seq.num_prompt_tokens);
                if (r.json) {
                  s.json_constraint->Advance(*r.json_schema, tokens[row], &r.json_phase, &*r.json);
                }
                if (top_n) r.logprobs = ComputeLogprobs(raw_logits, tokens[row], *top_n);
              }
            });
      }
      for (size_t row = 0; row < sampled.size(); ++row) {
        LiveRequest& r = *sampled[row];
        r.seq.tokens.push_back(tokens[row]);
        if (r.seq.num_generated() == 1) r.first_token = sampled_at;
      }
      s.step_scheduler.Commit(plan);
      for (LiveRequest* r : sampled) s.EmitToken(*r, *tokenizer_, sampled_at);
      ++s.counters.num_steps;
      s.counters.num_tokens_computed += plan.num_tokens;
      s.cost_fit.Observe(plan.num_tokens,
                         std::chrono::duration<double>(sampled_at - step_start).count());
    }
  }

  if (config_.kv_budget != nullptr) ReturnDrainedKv();
  PublishStats();
  if (!result.ok()) return result;
  return !s.live.empty();
}

void Engine::PublishStats() {
  Impl& s = *impl_;
  EngineStats& c = s.counters;
  c.kv_bytes_backed =
      int64_t{s.kv_cache->num_groups_backed()} * static_cast<int64_t>(s.kv_cache->group_bytes());
  c.num_running = s.step_scheduler.num_running();
  c.num_waiting = s.step_scheduler.num_waiting();
  c.num_preemptions = s.step_scheduler.num_preemptions();
  const BlockAllocatorStats kv = s.kv_manager.Stats();
  c.kv_blocks_total = kv.num_blocks;
  c.kv_blocks_free = kv.num_free;
  c.kv_blocks_cached_free = kv.num_cached_free;
  c.prefix_cache_queries = kv.prefix_queries;
  c.prefix_cache_hits = kv.prefix_hits;
  c.step_cost = StepCostNow();
  c.prefill_tokens_started = 0;  // c carries the last snapshot's counters
  c.prefill_tokens_waiting.clear();
  c.num_decoding = 0;
  c.top_prefill_priority = std::numeric_limits<int32_t>::min();
  for (Sequence* seq : s.step_scheduler.running()) {
    if (seq->num_generated() == 0) {
      c.prefill_tokens_started += s.PrefillLeft(*seq);
      c.top_prefill_priority = std::max(c.top_prefill_priority, seq->priority);
    } else {
      ++c.num_decoding;
    }
  }
  c.preempted_waiting = false;
  for (Sequence* seq : s.step_scheduler.waiting()) {
    // Preempted ones, decoding or not, go before any new prompt.
    if (seq->num_preemptions > 0) c.preempted_waiting = true;
    if (seq->num_generated() != 0) {
      ++c.num_decoding;
      continue;
    }
    if (seq->num_preemptions > 0) {
      c.prefill_tokens_started += s.PrefillLeft(*seq);
    } else {
      c.prefill_tokens_waiting[seq->priority] += s.PrefillLeft(*seq);
    }
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.snapshot = c;
  }
}

}  // namespace cohost::runtime
