// The Generate stream. Two threads meet here: the engine thread (the sink's
// OnScheduled/OnDelta/OnFinish) and gRPC's callback threads (OnWriteDone,
// OnCancel, OnDone). They share one mutex-guarded Shared object; whoever finds
// the stream idle under that mutex claims the next operation (a write or the
// Finish) and issues it after unlocking. Because Finish is only issued with no
// write in flight and only once, the reactor cannot reach OnDone (and be
// deleted) while anyone still holds a claim on it.
//
// A client that stops reading stalls the write in flight for good (HTTP/2
// flow control). While the request runs, its output piles up to the backlog
// bound, which aborts it; once it has ended (or overflowed), a write that does
// not complete within StreamLimits::write_stall_timeout, or output left unsent
// past its drain deadline (drain_progress_bytes per write_stall_timeout), gets
// the call cancelled (a gRPC alarm), so that the call ends and lets go of what
// it holds.

#include "server/generate_reactor.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random_id.h"
#include "common/status_macros.h"
#include "grpcpp/alarm.h"
#include "runtime/tokenizer/output_split.h"
#include "scheduler/admission.h"
#include "server/delta_backlog.h"
#include "server/grpc_auth.h"
#include "server/grpc_status.h"
#include "server/raw_message.h"
#include "server/request_builder.h"
#include "server/stream_timing.h"

namespace cohost::server {
namespace {

using runtime::Clock;

// Client-supplied strings that end up in logs and prefix-cache salts.
constexpr size_t kMaxRequestIdBytes = 256;
constexpr char kPushbackKey[] = "grpc-retry-pushback-ms";

v1::FinishReason ToProto(runtime::FinishReason r) {
  switch (r) {
    case runtime::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case runtime::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case runtime::FinishReason::kStopString:
      return v1::FINISH_REASON_STOP_STRING;
    case runtime::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case runtime::FinishReason::kError:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

std::string MakeRequestId() { return absl::StrFormat("req-%016x", RandomId64()); }

// The gRPC deadline as an engine deadline; nullopt when the call has none.
// DEADLINE_EXCEEDED when it has already passed.
absl::StatusOr<std::optional<Clock::time_point>> EngineDeadline(
    const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return std::nullopt;
  const auto left = deadline - std::chrono::system_clock::now();
  if (left <= std::chrono::system_clock::duration::zero()) {
    return absl::DeadlineExceededError("the call's deadline passed before it was queued");
  }
  // Beyond a year is "no deadline" (and keeps the steady clock from overflowing).
  if (left > std::chrono::hours(24 * 365)) return std::nullopt;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

}  // namespace

struct GenerateReactor::Shared {
  // Fixed before the request is submitted.
  std::string model_name;  // "" until the model is found
  std::string request_id;
  StreamDeps deps;
  StreamTiming timing;                // the sink's alone once submitted
  std::optional<std::string> tenant;  // once resolved, before submission

  Shared(const StreamDeps& d, Clock::time_point arrival) : deps(d), timing(d.metrics, arrival) {}

  std::mutex mu;
  GenerateReactor* reactor = nullptr;              // null once OnDone ran
  grpc::CallbackServerContext* context = nullptr;  // the reactor's, while it lives
  // The message being written, serialized: only the holder of the write claim
  // touches it.
  v1::GenerateResponse out;
  grpc::ByteBuffer out_bytes;
  DeltaBacklog pending;  // produced, not yet written
  // Splits the output's think block from its answer (split_reasoning) and
  // its calls from its text (split_tool_calls), on the engine thread; set
  // before the request is submitted.
  runtime::OutputSplitter split;
  bool write_in_flight = false;
  bool finish_called = false;
  bool client_gone = false;  // cancelled, disconnected, or a write failed
  // The cancel was gRPC's at the call's deadline (which is the engine's too):
  // counted as DEADLINE_EXCEEDED, as the client sees it, not as a cancel.
  bool deadline_passed = false;
  bool overflow = false;    // the backlog bound was hit
  bool stalled = false;     // a write stalled past the timeout after the end
  bool cancelling = false;  // TryCancel under way: no Finish until it returns
  int64_t writes_started = 0;
  int64_t stall_watched = -1;  // the write the stall alarm is set for
  // Once the request ended (or overflowed): when what was unsent then must
  // have drained (StreamLimits::drain_progress_bytes).
  std::optional<std::chrono::system_clock::time_point> drain_deadline;
  std::shared_ptr<grpc::Alarm> stall_alarm;
  bool first_sent = false;  // request_id goes on the first message
  bool final_sent = false;
  bool submitted = false;
  runtime::RequestId id = 0;
  // The request's tenant stream, open until all its output is handed to the
  // transport or the call ends (KeepOpen; the engine's sink holds it too
  // until the request ends).
  std::shared_ptr<const void> open;
  bool engine_finished = false;
  runtime::FinishInfo info;  // once engine_finished; timings from the server's view

  // The one place a failed call is counted: per model by code and, once the
  // tenant is known, per tenant by code and `reason` ("" reads "other").
  void RecordError(grpc::StatusCode code, std::string_view reason = "", bool admitted = false) {
    if (deps.metrics == nullptr) return;
    deps.metrics->RecordError(model_name, GrpcCodeName(code));
    if (tenant) deps.metrics->RecordTenantRefusal(*tenant, GrpcCodeName(code), reason, admitted);
  }

  // How the call ends once the engine finished and the backlog is written:
  // a last message and OK, or a bare status. Needs the reactor attached
  // (then the router is alive).
  grpc::Status FinalStatus() const {
    if (info.reason == runtime::FinishReason::kError) {
      return info.status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "the engine failed")
                              : ToGrpcStatus(info.status);
    }
    // Cancelled by the server with a reason (its model was unloaded).
    if (info.reason == runtime::FinishReason::kCancelled && !info.status.ok()) {
      return ToGrpcStatus(info.status);
    }
    if (info.reason == runtime::FinishReason::kCancelled && deps.router->draining()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server shut down before the generation finished");
    }
    return grpc::Status::OK;
  }

  // Moves pending deltas (up to the per-message bound, at least one) into
  // `out`, and the finish fields when this is the last message.
  void BuildMessageLocked() {
    out.Clear();
    if (!first_sent) {
      out.set_request_id(request_id);
      first_sent = true;
    }
    pending.TakeInto(&out, deps.limits.max_message_bytes);
    if (pending.empty() && engine_finished && FinalStatus().ok()) {
      out.set_finish_reason(ToProto(info.reason));
      v1::Usage* u = out.mutable_usage();
      u->set_prompt_tokens(info.prompt_tokens);
      u->set_cached_prompt_tokens(info.cached_prompt_tokens);
      u->set_completion_tokens(info.completion_tokens);
      v1::Timings* t = out.mutable_timings();
      t->set_queue_time_ms(info.timings.queue_ms);
      t->set_time_to_first_token_ms(info.timings.ttft_ms);
      t->set_decode_tokens_per_second(info.timings.decode_tokens_per_second);
      t->set_e2e_ms(info.timings.e2e_ms);
      final_sent = true;
    }
    bool own_buffer = false;
    out_bytes.Clear();
    // Only fails on a message over 2 GiB, which the per-message bound rules out.
    (void)grpc::SerializationTraits<v1::GenerateResponse>::Serialize(out, &out_bytes, &own_buffer);
  }
};

namespace {

using Shared = GenerateReactor::Shared;

// Issues the stream's next operation if one is due and the stream is idle.
void PumpOnce(Shared& s) {
  GenerateReactor* reactor = nullptr;
  std::optional<grpc::Status> finish;
  // The tenant's stream, closed once all the output is handed to the
  // transport (as its last message's write starts), or as the call ends.
  std::shared_ptr<const void> open;
  std::optional<std::chrono::milliseconds> pushback;
  std::string reason;     // a failure's, for the metrics
  bool admitted = false;  // the failure came after admission
  {
    std::lock_guard<std::mutex> lock(s.mu);
    admitted = s.submitted;
    if (s.reactor == nullptr || s.write_in_flight || s.finish_called || s.cancelling) return;
    reactor = s.reactor;
    if (s.overflow || s.stalled) {
      finish = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            s.overflow ? "the client stopped reading: too much unsent output"
                                       : "the client stopped reading");
      reason = "slow_reader";
    } else if (s.client_gone) {
      finish = grpc::Status::CANCELLED;
      if (s.deadline_passed) reason = "deadline";
    } else if (!s.pending.empty() || (s.engine_finished && !s.final_sent && s.FinalStatus().ok())) {
      s.BuildMessageLocked();
      s.write_in_flight = true;
      ++s.writes_started;
      // The last message goes to the transport: the client may act on it.
      if (s.final_sent) open = std::move(s.open);
    } else if (s.engine_finished) {
      finish = s.FinalStatus();
      // A refusal after admission (no room on the device, a failed load) says
      // when to retry, as one before it does.
      if (!finish->ok()) {
        pushback = scheduler::PushbackToSend(
            s.info.status, std::chrono::milliseconds(s.deps.router->limits().retry_pushback_ms));
        reason = scheduler::RefusalReason(s.info.status);
      }
    } else {
      return;  // waiting for the engine
    }
    if (finish) {
      s.finish_called = true;
      open = std::move(s.open);
    }
  }
  open.reset();  // before the client can see the end
  if (!finish) {
    reactor->StartWrite(&s.out_bytes);
    return;
  }
  if (!finish->ok() && finish->error_code() != grpc::StatusCode::CANCELLED) {
    s.RecordError(finish->error_code(), reason, admitted);
  } else if (reason == "deadline") {  // gRPC told the client DEADLINE_EXCEEDED
    s.RecordError(grpc::StatusCode::DEADLINE_EXCEEDED, reason, admitted);
  }
  if (pushback) s.context->AddTrailingMetadata(kPushbackKey, std::to_string(pushback->count()));
  reactor->Finish(*finish);
}

// The stall alarm's end: cancels the call if `write` is still in flight.
void CancelStalled(Shared& s, int64_t write) {
  grpc::CallbackServerContext* context = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.reactor == nullptr || s.finish_called || !s.write_in_flight ||
        s.writes_started != write) {
      return;
    }
    s.stalled = true;
    s.cancelling = true;  // no Finish, so no OnDone: `context` lives
    context = s.context;
  }
  context->TryCancel();  // the write fails (OnWriteDone(false)), and OnCancel runs
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.cancelling = false;
  }
  PumpOnce(s);
}

// Once the request has ended (or overflowed), sets the stall alarm for the
// write in flight, if it is not set for it already: it fires when the write
// has taken write_stall_timeout, or at the drain deadline if sooner.
void WatchForStall(const std::shared_ptr<Shared>& s) {
  std::shared_ptr<grpc::Alarm> alarm, old;
  int64_t write = 0;
  std::chrono::system_clock::time_point at;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->reactor == nullptr || s->finish_called || !s->write_in_flight ||
        !(s->engine_finished || s->overflow) || s->stall_watched == s->writes_started) {
      return;
    }
    const auto now = std::chrono::system_clock::now();
    const StreamLimits& limits = s->deps.limits;
    if (!s->drain_deadline) {
      const size_t unsent = s->pending.bytes() + s->out_bytes.Length();
      const size_t step = std::max<size_t>(limits.drain_progress_bytes, 1);
      const auto steps = static_cast<int64_t>(std::max<size_t>((unsent + step - 1) / step, 1));
      s->drain_deadline = now + limits.write_stall_timeout * steps;
    }
    at = std::min(now + limits.write_stall_timeout, *s->drain_deadline);
    write = s->stall_watched = s->writes_started;
    alarm = std::make_shared<grpc::Alarm>();
    old = std::exchange(s->stall_alarm, alarm);
  }
  old.reset();  // cancelled (its callback may run here, and does nothing)
  // Weak: the Shared owns the alarm, and the alarm keeps its callback.
  alarm->Set(at, [weak = std::weak_ptr<Shared>(s), write](bool fired) {
    if (!fired) return;
    if (std::shared_ptr<Shared> live = weak.lock()) CancelStalled(*live, write);
  });
}

// Called from both sides after every change.
void Pump(const std::shared_ptr<Shared>& s) {
  PumpOnce(*s);
  WatchForStall(s);
}

// The engine's view of the stream: runs on the engine thread, so it only
// records, buffers and starts writes.
class StreamSink final : public runtime::TokenSink {
 public:
  explicit StreamSink(std::shared_ptr<Shared> shared) : s_(std::move(shared)) {}

  void OnScheduled() override { s_->timing.OnScheduled(); }
  void KeepOpen(std::shared_ptr<const void> open) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->open = std::move(open);
  }

  bool OnDelta(const runtime::TokenDelta& delta) override {
    bool keep = true;
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (s_->reactor == nullptr || s_->client_gone || s_->overflow) return false;
      if (s_->split.active()) {
        runtime::OutputSplitter::Parts parts = s_->split.Push(delta.text);
        runtime::TokenDelta answer = delta;
        answer.text = std::move(parts.content);
        s_->pending.Push(std::move(answer), std::move(parts.reasoning), std::move(parts.calls));
      } else {
        s_->pending.Push(delta);
      }
      if (s_->pending.bytes() > s_->deps.limits.max_backlog_bytes) {
        s_->overflow = true;  // the engine aborts the request when we return false
        s_->pending.Clear();
        keep = false;
      }
    }
    s_->timing.OnTokens(static_cast<int>(delta.token_ids.size()));
    Pump(s_);
    return keep;
  }

  void OnFinish(const runtime::FinishInfo& info) override {
    runtime::FinishInfo ended = info;
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      // Aborted at its deadline (OnCancel), as the engine would have ended
      // it a moment later: an error, not a client's cancel.
      if (s_->deadline_passed && info.reason == runtime::FinishReason::kCancelled) {
        ended.reason = runtime::FinishReason::kError;
        ended.status = absl::DeadlineExceededError("the call's deadline passed before it finished");
      }
    }
    const runtime::FinishInfo adjusted = s_->timing.OnFinish(ended);
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (s_->split.active() && s_->reactor != nullptr && !s_->client_gone && !s_->overflow) {
        // What it held back (a tag's possible start, a block) goes out with
        // the end.
        runtime::OutputSplitter::Parts rest = s_->split.Finish();
        if (!rest.content.empty() || !rest.reasoning.empty() || !rest.calls.empty()) {
          runtime::TokenDelta tail;
          tail.text = std::move(rest.content);
          s_->pending.Push(std::move(tail), std::move(rest.reasoning), std::move(rest.calls));
        }
      }
      s_->info = adjusted;
      s_->engine_finished = true;
    }
    Pump(s_);
  }

 private:
  std::shared_ptr<Shared> s_;
};

}  // namespace

GenerateReactor::GenerateReactor(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer& request, const StreamDeps& deps)
    : context_(context), deps_(deps), shared_(std::make_shared<Shared>(deps, Clock::now())) {
  shared_->reactor = this;
  shared_->context = context;
  if (absl::Status s = Start(request); !s.ok()) FinishEarly(s);
}

GenerateReactor::~GenerateReactor() = default;

absl::Status GenerateReactor::Start(const grpc::ByteBuffer& request_bytes) {
  scheduler::Router& router = *deps_.router;
  // Before anything that could tell an unknown caller which models exist.
  absl::StatusOr<auth::Principal> principal =
      AuthenticateCall(*context_, *deps_.keys, auth::Role::kUser);
  if (!principal.ok()) return principal.status();
  if (router.draining()) {
    return absl::UnavailableError("the server is shutting down; retry elsewhere");
  }
  ASSIGN_OR_RETURN(const v1::GenerateRequest request,
                   ParseMessage<v1::GenerateRequest>(request_bytes));
  absl::StatusOr<std::shared_ptr<scheduler::ServedModel>> found = router.Find(request.model());
  if (!found.ok()) return found.status();
  const std::shared_ptr<scheduler::ServedModel> model = *std::move(found);
  model_ = model;
  shared_->model_name = model->name();
  shared_->timing.set_model(model->name());

  if (request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrFormat("request_id is %d bytes, at most %d allowed",
                                                      request.request_id().size(),
                                                      kMaxRequestIdBytes));
  }
  shared_->request_id = request.request_id().empty() ? MakeRequestId() : request.request_id();

  absl::StatusOr<std::string> tenant = CallTenant(*context_, *deps_.keys, *principal);
  if (!tenant.ok()) return tenant.status();
  shared_->tenant = *tenant;
  shared_->timing.set_tenant(*tenant);
  absl::StatusOr<std::optional<Clock::time_point>> deadline = EngineDeadline(*context_);
  if (!deadline.ok()) return deadline.status();

  ToolOutput tool_output;
  absl::StatusOr<runtime::GenerateRequest> built =
      BuildGenerateRequest(request, model->tokenizer(), model->request_limits(), &tool_output);
  if (!built.ok()) return built.status();
  if (tool_output.fallback != ForcedFallback::kNone && deps_.metrics != nullptr) {
    deps_.metrics->RecordForcedCallFallback(model->name(),
                                            ForcedFallbackName(tool_output.fallback));
  }
  // A JSON response has a think block only where its document follows one
  // (JsonPhase); else it is all text.
  std::optional<runtime::ReasoningSplitter> reasoning;
  if (request.split_reasoning() && model->tokenizer().WritesThinkBlocks() &&
      built->sampling.MayThink()) {
    // Inside the block from the start where the chat's generation prompt
    // opened it (DeepSeek-R1's, Qwen3-Thinking-2507's); a text or token
    // prompt is the client's own.
    reasoning.emplace(request.has_chat() && model->tokenizer().OpensThinkBlock());
  }
  // The chat's tools were offered (BuildGenerateRequest refuses them where
  // the template has none); a forced call is the whole output.
  std::optional<runtime::ToolCallSplitter> tools;
  if (request.split_tool_calls() || request.stream_tool_calls()) {
    tools = tool_output.Splitter(request.stream_tool_calls());
  }
  shared_->split = runtime::OutputSplitter(std::move(reasoning), std::move(tools));
  built->tenant = *std::move(tenant);
  built->deadline = *deadline;
  built->external_id = shared_->request_id;

  absl::StatusOr<runtime::RequestId> id =
      router.Submit(model, *std::move(built), std::make_shared<StreamSink>(shared_));
  if (!id.ok()) return id.status();
  bool gone;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->submitted = true;
    shared_->id = *id;
    gone = shared_->client_gone && !shared_->engine_finished;
  }
  if (gone) router.Abort(model, *id);  // cancelled while we were submitting
  return absl::OkStatus();
}

void GenerateReactor::FinishEarly(const absl::Status& status) {
  if (const std::optional<std::chrono::milliseconds> pushback = scheduler::PushbackToSend(
          status, std::chrono::milliseconds(deps_.router->limits().retry_pushback_ms))) {
    context_->AddTrailingMetadata(kPushbackKey, std::to_string(pushback->count()));
  }
  const grpc::Status grpc_status = ToGrpcStatus(status);
  shared_->RecordError(grpc_status.error_code(), scheduler::RefusalReason(status));
  std::shared_ptr<const void> open;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->finish_called) return;
    shared_->finish_called = true;
    open = std::move(shared_->open);
  }
  open.reset();
  Finish(grpc_status);
}

void GenerateReactor::OnWriteDone(bool ok) {
  bool abort = false;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->write_in_flight = false;
    if (!ok) {
      shared_->client_gone = true;
      abort = shared_->submitted && !shared_->engine_finished;
    }
  }
  if (abort) AbortRequest();
  Pump(shared_);
}

void GenerateReactor::OnCancel() {
  // The client's own library cancels at its deadline, which is ours less the
  // time its request took to arrive (more on a loaded machine): a cancel
  // that close to the deadline is the deadline's.
  constexpr auto kDeadlineSlack = std::chrono::milliseconds(500);
  const auto deadline = context_->deadline();
  const bool past_deadline = deadline != std::chrono::system_clock::time_point::max() &&
                             deadline <= std::chrono::system_clock::now() + kDeadlineSlack;
  bool abort;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->client_gone = true;
    shared_->deadline_passed = past_deadline;
    abort = shared_->submitted && !shared_->engine_finished;
  }
  if (abort) AbortRequest();
  Pump(shared_);
}

void GenerateReactor::AbortRequest() {
  // The engine frees the request's KV blocks at its next step boundary. (A
  // model gone since took its requests with it.)
  if (std::shared_ptr<scheduler::ServedModel> model = model_.lock()) {
    deps_.router->Abort(model, shared_->id);
  }
}

void GenerateReactor::OnDone() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->reactor = nullptr;
  }
  delete this;
}

}  // namespace cohost::server
