// A completion call's engine side (each choice's sink buffers under the
// call's mutex) and its life: start, the further choices, the end. The loop
// side, which writes the reply, is completion_reply.cc. See completion_call.h.

#include "server/http/completion_call.h"

#include <event2/event.h>
#include <event2/http.h>

#include <ctime>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/admission.h"
#include "server/http/reply.h"

namespace cohost::server::http {
namespace {

// One choice's view of the engine.
class ChoiceSink final : public runtime::TokenSink {
 public:
  ChoiceSink(std::shared_ptr<CompletionCall> call, int index)
      : call_(std::move(call)), index_(index) {}
  void OnScheduled() override { call_->OnScheduled(index_); }
  bool OnDelta(const runtime::TokenDelta& delta) override { return call_->OnDelta(index_, delta); }
  void OnFinish(const runtime::FinishInfo& info) override { call_->OnFinish(index_, info); }
  void KeepOpen(std::shared_ptr<const void> open) override { call_->KeepOpen(std::move(open)); }

 private:
  std::shared_ptr<CompletionCall> call_;
  int index_;
};

}  // namespace

void Waker::Notify(std::shared_ptr<CompletionCall> call) {
  std::lock_guard<std::mutex> lock(mu_);
  if (wake_ == nullptr) return;
  dirty_.push_back(std::move(call));
  if (dirty_.size() == 1) event_active(wake_, EV_READ, 0);
}

std::vector<std::shared_ptr<CompletionCall>> Waker::TakeAll() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(dirty_, {});
}

void Waker::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = nullptr;
  dirty_.clear();
}

CompletionCall::CompletionCall(evhttp_request* req, const StreamDeps& deps,
                               std::shared_ptr<Waker> waker, LoopOffload* offload,
                               const CallOptions& options, runtime::Clock::time_point arrival)
    : req_(req),
      deps_(deps),
      waker_(std::move(waker)),
      offload_(offload),
      options_(options),
      arrival_(arrival) {}

absl::Status CompletionCall::Start(std::shared_ptr<scheduler::ServedModel> model,
                                   const CompletionRequest& parsed,
                                   const runtime::GenerateRequest& request,
                                   std::string response_id) {
  model_ = std::move(model);
  tokenizer_ = &model_->tokenizer();
  header_.id = std::move(response_id);
  header_.created = static_cast<int64_t>(std::time(nullptr));
  header_.model = model_->name();
  header_.endpoint = parsed.endpoint;
  stream_ = parsed.stream;
  include_usage_ = parsed.include_usage;
  logprobs_ = request.sampling.logprobs.has_value();
  // A template that opens the block in its generation prompt (DeepSeek-R1's,
  // Qwen3-Thinking-2507's) has the output start inside it; Qwen3's opens
  // none (with thinking off it writes a closed one), so the output starts
  // outside. A JSON response (a forced call's too) has a think block only
  // where its document follows one (JsonPhase); else it is all content.
  split_reasoning_ = options_.split_reasoning && parsed.endpoint == Endpoint::kChatCompletions &&
                     tokenizer_->WritesThinkBlocks() && request.sampling.MayThink();
  // A choice that made calls finishes with "tool_calls", but for a named
  // tool_choice's (as OpenAI's).
  calls_finish_ = parsed.tools.calls_finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    choices_.resize(static_cast<size_t>(parsed.n));
    for (Choice& c : choices_) {
      std::optional<runtime::ReasoningSplitter> reasoning;
      if (split_reasoning_) reasoning.emplace(tokenizer_->OpensThinkBlock());
      // Streamed, a call is given out as it is written (OpenAI's pieces).
      c.split = runtime::OutputSplitter(std::move(reasoning), parsed.tools.Splitter(stream_));
    }
  }
  timings_.assign(static_cast<size_t>(parsed.n), StreamTiming(deps_.metrics, arrival_));
  tenant_ = request.tenant;
  for (StreamTiming& t : timings_) {
    t.set_model(model_->name());
    t.set_tenant(tenant_);
    if (&t != &timings_.front()) t.set_further_choice();
  }

  // The other choices follow once the first has prefilled the prompt, so that
  // they share its KV blocks through the prefix cache instead of computing
  // the prompt n times (SubmitRest).
  if (parsed.n > 1) {
    if (absl::Status s = deps_.router->CheckChoices(
            *model_, request.tenant, parsed.n, static_cast<int64_t>(request.prompt_ids.size()));
        !s.ok()) {
      ReplyError(s);
      return s;
    }
    rest_ = request;
    rest_pending_.store(true, std::memory_order_relaxed);
  }
  absl::Status first = SubmitChoice(0, request);
  if (!first.ok()) {
    ReplyError(first);
    return first;
  }
  return absl::OkStatus();
}

absl::Status CompletionCall::SubmitChoice(int index, runtime::GenerateRequest r) {
  r.external_id = choices_.size() == 1 ? header_.id : absl::StrCat(header_.id, "-", index);
  // Several choices from one seed differ, and stay reproducible.
  if (r.sampling.seed) *r.sampling.seed += static_cast<uint64_t>(index);
  absl::StatusOr<runtime::RequestId> id = deps_.router->Submit(
      model_, std::move(r), std::make_shared<ChoiceSink>(shared_from_this(), index), index > 0);
  if (!id.ok()) return id.status();
  admitted_.store(true, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  choices_[static_cast<size_t>(index)].id = *id;
  choices_[static_cast<size_t>(index)].submitted = true;
  return absl::OkStatus();
}

void CompletionCall::SubmitRest() {
  if (!rest_) return;
  bool ready, gone;
  absl::Status first_failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Choice& first = choices_[0];
    ready = first.produced || first.finished;
    gone = client_gone_;
    if (first.finished) first_failed = ChoiceStatus(first);
  }
  if (!ready || gone) return;
  const runtime::GenerateRequest request = *std::exchange(rest_, std::nullopt);
  rest_pending_.store(false, std::memory_order_relaxed);
  for (size_t i = 1; i < choices_.size(); ++i) {
    // Once one fails (the first's own failure, or a full queue), the rest
    // end with it.
    absl::Status s = first_failed.ok() ? SubmitChoice(static_cast<int>(i), request) : first_failed;
    if (s.ok()) continue;
    first_failed = s;
    std::lock_guard<std::mutex> lock(mu_);
    Choice& c = choices_[i];
    c.finished = true;
    c.info.reason = runtime::FinishReason::kError;
    c.info.status = s;
  }
}

void CompletionCall::OnScheduled(int index) { timings_[static_cast<size_t>(index)].OnScheduled(); }

bool CompletionCall::OnDelta(int index, const runtime::TokenDelta& delta) {
  // What the delta's logprobs add to a whole reply's JSON (streamed, it goes
  // out now); its text is counted once split, below.
  size_t adds = 0;
  if (!stream_) {
    auto entry = [&](int32_t id) { return LogprobEntryBytes(tokenizer_->TokenBytes(id).size()); };
    for (const runtime::TokenLogprobs& l : delta.logprobs) {
      adds += entry(l.chosen.id);
      for (const runtime::TokenLogprob& alt : l.top) adds += entry(alt.id);
    }
  }
  bool too_large = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (client_gone_ || too_large_) return false;
    Choice& c = choices_[static_cast<size_t>(index)];
    c.produced = true;
    const size_t text_adds = c.Take(delta.text, /*end=*/false);
    if (!stream_) whole_bytes_ += adds + text_adds;
    too_large = too_large_ = whole_bytes_ > options_.max_whole_reply_bytes;
    if (!too_large) {
      c.pending_logprobs.insert(c.pending_logprobs.end(), delta.logprobs.begin(),
                                delta.logprobs.end());
    }
  }
  if (too_large) {
    Wake();  // the call ends with the refusal; this choice stops here
    return false;
  }
  timings_[static_cast<size_t>(index)].OnTokens(static_cast<int>(delta.token_ids.size()));
  // Without streaming nothing is written before the end, but the first
  // choice's first token lets the others start.
  if (stream_ || (index == 0 && rest_pending_.load(std::memory_order_relaxed))) Wake();
  return true;
}

void CompletionCall::OnFinish(int index, const runtime::FinishInfo& info) {
  const runtime::FinishInfo adjusted = timings_[static_cast<size_t>(index)].OnFinish(info);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Choice& c = choices_[static_cast<size_t>(index)];
    c.finished = true;
    c.info = adjusted;
    // What the splitters held back (a tag's start; a block, a forced call).
    const size_t adds = c.Take({}, /*end=*/true);
    if (!stream_) {
      whole_bytes_ += adds;
      too_large_ = too_large_ || whole_bytes_ > options_.max_whole_reply_bytes;
    }
  }
  Wake();
}

size_t CompletionCall::Choice::Take(std::string_view delta, bool end) {
  if (!split.active()) {
    pending.append(delta);
    return JsonTextBytes(delta);
  }
  runtime::OutputSplitter::Parts parts = end ? split.Finish() : split.Push(delta);
  // Of a whole reply: the text as it comes (what the splitter holds is
  // counted when it comes, as text: a call's arguments are no longer), the
  // reasoning a second time (`reasoning` and `reasoning_content`), and each
  // call's fields.
  size_t adds = JsonTextBytes(delta) + JsonTextBytes(parts.reasoning);
  pending_reasoning += parts.reasoning;
  pending += parts.content;
  for (runtime::ParsedToolCall& call : parts.calls) {
    adds += ToolCallBytes(call);
    // A streamed call's further piece joins one not written yet.
    if (call.id.empty() && !pending_calls.empty()) {
      pending_calls.back().arguments += call.arguments;
    } else {
      pending_calls.push_back(std::move(call));
    }
  }
  return adds;
}

void CompletionCall::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (wake_pending_) return;
    wake_pending_ = true;
  }
  waker_->Notify(shared_from_this());
}

absl::Status CompletionCall::ChoiceStatus(const Choice& c) const {
  const runtime::FinishInfo& info = c.info;
  if (info.reason == runtime::FinishReason::kError) {
    return info.status.ok() ? absl::InternalError("the engine failed") : info.status;
  }
  if (info.reason == runtime::FinishReason::kCancelled) {
    if (!info.status.ok()) return info.status;  // e.g. its model was unloaded
    if (deps_.router->draining()) {
      return absl::UnavailableError("the server shut down before the generation finished");
    }
    return absl::CancelledError("the request was cancelled");
  }
  return absl::OkStatus();
}

UsageCounts CompletionCall::Usage() const {
  UsageCounts u;
  for (const Choice& c : choices_) {
    // The prompt is one prompt, whatever the number of choices.
    u.prompt_tokens = std::max<int64_t>(u.prompt_tokens, c.info.prompt_tokens);
    u.completion_tokens += c.info.completion_tokens;
  }
  // What the cache held of it when the call came: the first choice's find.
  // The others start after its prefill and find that prefill's blocks, which
  // were not cached for the client, who sent one prompt.
  if (!choices_.empty()) u.cached_prompt_tokens = choices_.front().info.cached_prompt_tokens;
  return u;
}

void CompletionCall::AbortRunning() {
  std::vector<runtime::RequestId> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Choice& c : choices_) {
      if (c.submitted && !c.finished) running.push_back(c.id);
    }
  }
  // The engine frees their KV blocks at its next step boundary.
  if (model_ == nullptr) return;  // released: nothing was left running
  for (runtime::RequestId id : running) deps_.router->Abort(model_, id);
}

void CompletionCall::RecordFailure(const absl::Status& status) {
  if (deps_.metrics == nullptr || std::exchange(failure_recorded_, true)) return;
  const std::string code = absl::StatusCodeToString(status.code());
  deps_.metrics->RecordError(header_.model, code);
  deps_.metrics->RecordTenantRefusal(tenant_, code, scheduler::RefusalReason(status),
                                     admitted_.load(std::memory_order_relaxed));
}

void CompletionCall::RecordSlowReader() {
  RecordFailure(scheduler::WithRefusalReason(
      absl::ResourceExhaustedError("the client stopped reading"), "slow_reader"));
}

void CompletionCall::ClientGone() {
  abandoned_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    client_gone_ = true;
  }
  AbortRunning();
  EndReply();
}

void CompletionCall::ClientLeft() {
  abandoned_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    client_gone_ = true;
  }
  AbortRunning();
  if (req_ == nullptr) return;
  if (reply_started_) {
    EndReply();
    return;
  }
  // Nobody reads it: 499, as nginx logs a client that closed its request.
  SendJson(TakeRequest(), 499, "{}");
}

void CompletionCall::KeepOpen(std::shared_ptr<const void> open) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.push_back(std::move(open));
}

void CompletionCall::CloseStreams() {
  std::vector<std::shared_ptr<const void>> open;  // let go of outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    open.swap(open_);
  }
}

void CompletionCall::ReleaseModel() {
  // Moved out first: destroying the model may finish requests whose sinks
  // call back into this call.
  std::shared_ptr<scheduler::ServedModel> model = std::move(model_);
  model.reset();
}

void CompletionCall::Cancel() {
  abandoned_.store(true, std::memory_order_relaxed);
  AbortRunning();
  if (req_ == nullptr) return;
  const absl::Status status = absl::UnavailableError("the server is shutting down");
  if (!reply_started_) {
    ReplyError(status);
    return;
  }
  RecordFailure(status);
  SendEvents(ErrorEvent(status) + std::string(kDoneEvent));
  EndReply();
}

}  // namespace cohost::server::http
