// The loop side of a completion call: Pump turns what the choices' sinks
// buffered into the reply (a whole JSON body, built on a worker, or
// server-sent events), and the reply's writes. See completion_call.h.

#include <event2/buffer.h>
#include <event2/http.h>

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/admission.h"
#include "server/http/completion_call.h"
#include "server/http/loop_offload.h"
#include "server/http/reply.h"

namespace cohost::server::http {

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

void CompletionCall::StartStream() {
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
        c.pending_reasoning = std::string();
        c.pending_calls = {};
        c.pending_logprobs = {};
      }
    }
  }
  if (too_large) {
    AbortRunning();  // the further choices not submitted yet never are
    const size_t most = options_.max_whole_reply_bytes;
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
    std::string reasoning;
    std::vector<runtime::ParsedToolCall> calls;
    std::vector<runtime::TokenLogprobs> logprobs;
    bool finished = false;
    absl::Status status;
    runtime::FinishReason reason = runtime::FinishReason::kStop;
  };
  std::vector<Snapshot> snap;
  UsageCounts usage;
  bool all_finished = true;
  {
    std::unique_lock<std::mutex> lock(mu_);
    // The reply passed its bound since the check above (while the further
    // choices were submitted): its choices' cancel is not its error.
    if (too_large_) {
      lock.unlock();
      return Pump();  // refused as above
    }
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
      for (const Choice& c : choices_) {
        any_text = any_text || !c.pending.empty() || !c.pending_reasoning.empty() ||
                   !c.pending_calls.empty();
      }
      if (!any_text && !any_failed) return false;
    }
    snap.resize(choices_.size());
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      snap[i].text = std::exchange(c.pending, std::string());
      snap[i].reasoning = std::exchange(c.pending_reasoning, std::string());
      snap[i].calls = std::exchange(c.pending_calls, {});
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
      ChoiceResult result{std::move(s.text), s.reason,           std::nullopt,
                          std::nullopt,      std::move(s.calls), calls_finish_};
      if (split_reasoning_) result.reasoning = std::move(s.reasoning);
      results.push_back(std::move(result));
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
      any_text = any_text || !s.text.empty() || !s.reasoning.empty() || !s.calls.empty();
      if (s.finished && !s.status.ok() && !failure) failure = s.status;
    }
    if (failure && !any_text) {
      AbortRunning();
      ReplyError(*failure);
      return true;
    }
    StartStream();
  }

  std::string events;
  std::optional<absl::Status> failure;
  bool all_sent = true;
  for (size_t i = 0; i < snap.size(); ++i) {
    // choices_' loop-only fields: no lock needed.
    Choice& c = choices_[i];
    const Snapshot& s = snap[i];
    const int index = static_cast<int>(i);
    if (!s.text.empty() || !s.reasoning.empty() || !s.calls.empty() || !s.logprobs.empty()) {
      ChunkDelta delta{index,        !c.first_sent, s.text,        s.reasoning,
                       std::nullopt, nullptr,       c.text_offset, &s.calls};
      c.call_sent = c.call_sent || !s.calls.empty();
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
        last.finish_reason = OpenAiFinishReason(s.reason, c.call_sent && calls_finish_);
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
  evhttp_connection* conn = evhttp_request_get_connection(req_);
  if (conn != nullptr && UnsentBytes(conn) > deps_.limits.max_backlog_bytes) {
    // The client stopped reading: free the engine's memory and drop the
    // connection; its close callback then ends the call.
    AbortRunning();
    {
      std::lock_guard<std::mutex> lock(mu_);
      client_gone_ = true;
    }
    RecordSlowReader();
    ShutDown(conn);
  }
  return false;
}

}  // namespace cohost::server::http
