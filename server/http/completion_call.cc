// The engine side buffers; the loop side writes. See completion_call.h.

#include "server/http/completion_call.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/socket.h>

#include <ctime>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/admission.h"
#include "server/http/loop_offload.h"
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
                               size_t max_whole_reply_bytes, runtime::Clock::time_point arrival)
    : req_(req),
      deps_(deps),
      waker_(std::move(waker)),
      offload_(offload),
      max_whole_reply_bytes_(max_whole_reply_bytes),
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    choices_.resize(static_cast<size_t>(parsed.n));
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
  // What the delta adds to a whole reply's JSON (streamed, it goes out now).
  size_t adds = 0;
  if (!stream_) {
    adds = JsonTextBytes(delta.text);
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
    whole_bytes_ += adds;
    too_large = too_large_ = whole_bytes_ > max_whole_reply_bytes_;
    if (!too_large) {
      c.pending += delta.text;
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
  }
  Wake();
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
  deps_.metrics->RecordTenantRefusal(tenant_, code, scheduler::RefusalReason(status));
}

void CompletionCall::ReplyError(const absl::Status& status) {
  if (req_ == nullptr) return;
  RecordFailure(status);
  SendError(TakeRequest(), status, deps_.router->limits().retry_pushback_ms);
}

void CompletionCall::SendEvents(const std::string& events) {
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, events.data(), events.size());
  evhttp_send_reply_chunk(req_, buf);
  evbuffer_free(buf);
}

evhttp_request* CompletionCall::TakeRequest() { return std::exchange(req_, nullptr); }

void CompletionCall::EndReply() {
  if (req_ == nullptr) return;
  evhttp_send_reply_end(TakeRequest());  // frees the request (now, if the client left)
}

size_t CompletionCall::UnsentBytes() const {
  evhttp_connection* conn = evhttp_request_get_connection(req_);
  if (conn == nullptr) return 0;
  return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(conn)));
}

namespace {

// Token ids to the text OpenAI shows them as.
std::vector<ShownToken> Show(const runtime::Tokenizer& tokenizer,
                             const std::vector<runtime::TokenLogprobs>& logprobs) {
  auto shown = [&](const runtime::TokenLogprob& t) {
    return ShownLogprob{tokenizer.TokenBytes(t.id), t.logprob};
  };
  std::vector<ShownToken> out;
  out.reserve(logprobs.size());
  for (const runtime::TokenLogprobs& l : logprobs) {
    ShownToken t{shown(l.chosen), {}};
    t.top.reserve(l.top.size());
    for (const runtime::TokenLogprob& alt : l.top) t.top.push_back(shown(alt));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

void CompletionCall::BuildWholeBody(std::vector<ChoiceResult> results,
                                    std::vector<std::vector<runtime::TokenLogprobs>> logprobs,
                                    const UsageCounts& usage) {
  building_ = true;
  // The model goes back to the loop thread with the continuation, to be let
  // go of there (ReleaseModel says why).
  offload_->Run([self = shared_from_this(), model = model_, results = std::move(results),
                 logprobs = std::move(logprobs), usage]() mutable -> LoopOffload::Continuation {
    if (self->abandoned_.load(std::memory_order_relaxed)) {
      return [self = std::move(self), model = std::move(model)] { self->waker_->Notify(self); };
    }
    for (size_t i = 0; i < results.size() && i < logprobs.size(); ++i) {
      results[i].logprobs = Show(model->tokenizer(), logprobs[i]);
    }
    auto body = std::make_shared<const std::string>(CompletionBody(self->header_, results, usage));
    return [self = std::move(self), model = std::move(model), body = std::move(body)] {
      // The client may have gone, or the server stopped it, meanwhile.
      if (self->req_ != nullptr) SendJson(self->TakeRequest(), 200, *body);
      // The front door forgets the call at its next Pump.
      self->waker_->Notify(self);
    };
  });
}

bool CompletionCall::Pump() {
  if (req_ == nullptr) return true;
  if (building_) return false;  // every choice is done: the reply is on its way
  bool too_large = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    too_large = too_large_;
    if (too_large) {
      for (Choice& c : choices_) {  // what was kept goes now
        c.pending = std::string();
        c.pending_logprobs = {};
      }
    }
  }
  if (too_large) {
    AbortRunning();  // the further choices not submitted yet never are
    const size_t most = max_whole_reply_bytes_;
    ReplyError(absl::InvalidArgumentError(absl::StrCat(
        "the reply passed ",
        most >= (size_t{1} << 20) ? absl::StrCat(most >> 20, " MB") : absl::StrCat(most, " bytes"),
        ", the most a whole (non-streamed) reply may take: stream it (\"stream\": true), or ask "
        "for fewer tokens, choices or top_logprobs")));
    return true;
  }
  SubmitRest();
  struct Snapshot {
    std::string text;
    std::vector<runtime::TokenLogprobs> logprobs;
    bool finished = false;
    absl::Status status;
    runtime::FinishReason reason = runtime::FinishReason::kStop;
  };
  std::vector<Snapshot> snap;
  UsageCounts usage;
  bool all_finished = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_pending_ = false;
    bool any_failed = false;
    for (const Choice& c : choices_) {
      all_finished = all_finished && c.finished;
      any_failed = any_failed || (c.finished && !ChoiceStatus(c).ok());
    }
    // Without streaming the text stays until every choice is done, or one
    // failed: the reply is then its error, and the others stop now.
    if (!stream_ && !all_finished && !any_failed) return false;
    if (stream_ && !reply_started_ && !all_finished) {
      // The stream starts with its first text (or a failure): until then the
      // tokens' logprobs stay pending beside their text (a token can show no
      // text yet: part of a UTF-8 character; the engine holds a possible stop
      // string's tokens itself).
      bool any_text = false;
      for (const Choice& c : choices_) any_text = any_text || !c.pending.empty();
      if (!any_text && !any_failed) return false;
    }
    snap.resize(choices_.size());
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      snap[i].text = std::exchange(c.pending, std::string());
      snap[i].logprobs = std::exchange(c.pending_logprobs, {});
      snap[i].finished = c.finished;
      if (c.finished) {
        snap[i].status = ChoiceStatus(c);
        snap[i].reason = c.info.reason;
      }
    }
    if (all_finished) usage = Usage();
  }

  if (!stream_) {
    std::vector<ChoiceResult> results;
    std::vector<std::vector<runtime::TokenLogprobs>> logprobs;
    for (Snapshot& s : snap) {
      if (!s.status.ok()) {
        AbortRunning();
        ReplyError(s.status);
        return true;
      }
      results.push_back(ChoiceResult{std::move(s.text), s.reason, std::nullopt});
      if (logprobs_) logprobs.push_back(std::move(s.logprobs));
    }
    BuildWholeBody(std::move(results), std::move(logprobs), usage);
    return false;
  }

  if (!reply_started_) {
    // A failure before any output is the reply's status, not a 200 stream.
    bool any_text = false;
    std::optional<absl::Status> failure;
    for (const Snapshot& s : snap) {
      any_text = any_text || !s.text.empty();
      if (s.finished && !s.status.ok() && !failure) failure = s.status;
    }
    if (failure && !any_text) {
      AbortRunning();
      ReplyError(*failure);
      return true;
    }
    // HTTP/1.0 has no chunked encoding: only the connection's close can end
    // the stream's body. Asked to keep it alive, libevent would answer
    // "Content-Length: 0" (the body so far) and keep it; without the ask it
    // sends no length and closes at the end. (HTTP/1.1 streams are chunked,
    // and keep-alive is its default: the ask changes nothing there.)
    // (libevent reads the first Connection header, and takes any value that
    // starts "keep-alive" as the ask: "keep-alive, TE" too.)
    evkeyvalq* asked = evhttp_request_get_input_headers(req_);
    for (const char* c = evhttp_find_header(asked, "Connection");
         c != nullptr && absl::StartsWithIgnoreCase(c, "keep-alive");
         c = evhttp_find_header(asked, "Connection")) {
      evhttp_remove_header(asked, "Connection");
    }
    evkeyvalq* headers = evhttp_request_get_output_headers(req_);
    evhttp_add_header(headers, "Content-Type", "text/event-stream");
    evhttp_add_header(headers, "Cache-Control", "no-cache");
    evhttp_send_reply_start(req_, 200, "OK");
    reply_started_ = true;
  }

  std::string events;
  std::optional<absl::Status> failure;
  bool all_sent = true;
  for (size_t i = 0; i < snap.size(); ++i) {
    // choices_' loop-only fields: no lock needed.
    Choice& c = choices_[i];
    const Snapshot& s = snap[i];
    const int index = static_cast<int>(i);
    if (!s.text.empty() || !s.logprobs.empty()) {
      ChunkDelta delta{index, !c.first_sent, s.text, std::nullopt, nullptr, c.text_offset};
      std::vector<ShownToken> shown;
      if (logprobs_) {
        shown = Show(model_->tokenizer(), s.logprobs);
        delta.logprobs = &shown;
        c.text_offset = TextOffsetAfter(shown, c.text_offset);
      }
      events += ChunkEvent(header_, delta, include_usage_);
      c.first_sent = true;
    }
    if (s.finished && !c.last_sent) {
      if (s.status.ok()) {
        ChunkDelta last;
        last.index = index;
        last.first = !c.first_sent;
        last.finish_reason = OpenAiFinishReason(s.reason);
        events += ChunkEvent(header_, last, include_usage_);
        c.first_sent = true;
      } else if (!failure) {
        failure = s.status;
      }
      c.last_sent = true;
    }
    all_sent = all_sent && c.last_sent;
  }
  if (failure) {
    AbortRunning();
    RecordFailure(*failure);
    events += ErrorEvent(*failure);
  } else if (all_sent && include_usage_) {
    events += UsageEvent(header_, usage);
  }
  const bool done = failure.has_value() || all_sent;
  if (done) events += kDoneEvent;
  if (!events.empty()) SendEvents(events);
  if (done) {
    EndReply();
    return true;
  }
  if (UnsentBytes() > deps_.limits.max_backlog_bytes) {
    // The client stopped reading: free the engine's memory and drop the
    // connection; its close callback then ends the call.
    AbortRunning();
    {
      std::lock_guard<std::mutex> lock(mu_);
      client_gone_ = true;
    }
    RecordFailure(scheduler::WithRefusalReason(
        absl::ResourceExhaustedError("the client stopped reading"), "slow_reader"));
    evhttp_connection* conn = evhttp_request_get_connection(req_);
    if (conn != nullptr) {
      ::shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(conn)), SHUT_RDWR);
    }
  }
  return false;
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
