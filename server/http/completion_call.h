// One OpenAI completion request on the HTTP front door: its n choices run as
// n engine requests (sharing the prompt's KV blocks through the prefix
// cache), and their output goes back as one JSON body or as server-sent
// events.
//
// Two threads meet here. The engine's thread runs each choice's sink: it
// only buffers text and finish info under the call's mutex and asks the
// Waker to wake the event loop. The event-loop thread does everything with
// libevent: Pump() moves what was buffered onto the connection, and
// ClientGone() / Cancel() end the call. A whole reply's JSON, megabytes with
// logprobs, is built on a LoopOffload worker, so that the loop serves every
// other connection meanwhile. The reply starts only when the first
// output (or failure) comes, so an error before that is a real HTTP status,
// never an error inside a 200 stream.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/batching/request.h"
#include "runtime/tokenizer/output_split.h"
#include "server/http/openai_format.h"
#include "server/http/openai_request.h"
#include "server/stream_deps.h"
#include "server/stream_timing.h"

struct event;
struct evhttp_request;

namespace cohost::server::http {

class CompletionCall;
class LoopOffload;

// Wakes the event loop for calls that have new output; thread-safe. Closed
// when the loop stops, after which notifications are dropped.
class Waker {
 public:
  explicit Waker(event* wake) : wake_(wake) {}
  void Notify(std::shared_ptr<CompletionCall> call);
  std::vector<std::shared_ptr<CompletionCall>> TakeAll();
  void Close();

 private:
  std::mutex mu_;
  event* wake_;
  std::vector<std::shared_ptr<CompletionCall>> dirty_;
};

// What the front door's options say of each call.
struct CallOptions {
  // A whole (non-streamed) reply is built in memory once every choice is
  // done: one whose JSON passes this as the output comes (JsonTextBytes,
  // LogprobEntryBytes) ends the call with a 400 that says to stream it.
  size_t max_whole_reply_bytes = size_t{32} << 20;
  // A chat with a model whose template writes think blocks gives the block's
  // text as the message's `reasoning` (and `reasoning_content`), apart from
  // its `content`, as vLLM's qwen3 reasoning parser does.
  bool split_reasoning = true;
};

class CompletionCall : public std::enable_shared_from_this<CompletionCall> {
 public:
  // `offload` builds whole replies; it outlives the call's reply (its
  // continuations are dropped once it stops).
  CompletionCall(evhttp_request* req, const StreamDeps& deps, std::shared_ptr<Waker> waker,
                 LoopOffload* offload, const CallOptions& options,
                 runtime::Clock::time_point arrival);

  // On the loop thread: submits the n choices of `request` (already built and
  // validated) to `model`. On failure nothing is left running and the error
  // reply has been sent; the status says what it was.
  absl::Status Start(std::shared_ptr<scheduler::ServedModel> model, const CompletionRequest& parsed,
                     const runtime::GenerateRequest& request, std::string response_id);

  // Loop thread: writes what the engine produced; ends the reply when every
  // choice has finished. True once the call is over (the caller forgets it).
  bool Pump();
  // Loop thread: the connection closed; aborts the choices still running.
  void ClientGone();
  // Loop thread: the client closed its side while the connection is still
  // open; aborts what runs and ends the reply through libevent, which then
  // closes the connection.
  void ClientLeft();
  // Loop thread, at shutdown: aborts what runs and ends the reply now.
  void Cancel();
  // Loop thread: the client stopped reading (its stream's backlog, or
  // HttpFrontDoor's watch of a whole reply): counted as a slow reader, once.
  void RecordSlowReader();
  // Loop thread, once the reply is over and the front door forgets the call:
  // lets go of the model here. The sinks can outlive the reply, and may hold
  // the call last; were the call to hold the model then, an unloaded model
  // could be destroyed on its own executor's thread (which aborts: a model's
  // engine cannot be detached from inside its step).
  void ReleaseModel();

  // A choice's tenant stream (runtime::TokenSink::KeepOpen), open until
  // CloseStreams (the front door: as the reply ends), or, for a reply that
  // drains past its end, until the call goes.
  void KeepOpen(std::shared_ptr<const void> open);
  void CloseStreams();

  // Engine thread (the sinks).
  void OnScheduled(int index);
  bool OnDelta(int index, const runtime::TokenDelta& delta);
  void OnFinish(int index, const runtime::FinishInfo& info);

 private:
  struct Choice {
    runtime::RequestId id = 0;
    bool submitted = false;
    // Under mu_, written by the sink.
    std::string pending;            // text not yet written (all of it, when not streaming)
    std::string pending_reasoning;  // likewise, of the reasoning, when split
    std::vector<runtime::ParsedToolCall> pending_calls;  // likewise, of the calls, when split
    runtime::OutputSplitter split;                       // set at Start
    // Under mu_: splits `delta` (what the splitters hold, at the end) and
    // queues its parts to be written; the bytes they add to a whole reply.
    size_t Take(std::string_view delta, bool end);
    std::vector<runtime::TokenLogprobs> pending_logprobs;  // when asked, likewise
    bool produced = false;                                 // a delta came
    bool finished = false;
    runtime::FinishInfo info;
    // Loop thread only.
    bool first_sent = false;
    bool last_sent = false;
    TextOffset text_offset;  // /v1/completions logprobs: characters of token text sent
    bool call_sent = false;  // chat: a tool call sent (a stream's)
  };

  // Submits choice `index` (its seed moved on by index).
  absl::Status SubmitChoice(int index, runtime::GenerateRequest request);
  // Loop thread: submits choices 1..n-1 once the first has produced (its
  // prompt blocks are then in the prefix cache), or fails them with it.
  void SubmitRest();
  void AbortRunning();
  // The one place a failed call is counted: per model by code, per tenant
  // by code and the status's refusal reason; once per call, by its first
  // failure (a slow reader then cut off by the stop is one error).
  void RecordFailure(const absl::Status& status);
  void ReplyError(const absl::Status& status);
  // Starts the reply as a stream of server-sent events.
  void StartStream();
  // Writes server-sent events on the started reply.
  void SendEvents(const std::string& events);
  void EndReply();
  // The request, which this call no longer answers from now on: taken before
  // any libevent call that may free it, since that call may close the
  // connection and re-enter this call (ClientGone) before it returns.
  evhttp_request* TakeRequest();
  UsageCounts Usage() const;  // under mu_
  // Engine thread: wakes the loop unless a wake-up is already pending.
  void Wake();
  // The status a finished choice ends the call with (OK for a normal finish).
  absl::Status ChoiceStatus(const Choice& c) const;
  // Loop thread: builds the whole reply of `results` on a worker, then sends
  // it here unless the call ended meanwhile.
  void BuildWholeBody(std::vector<ChoiceResult> results,
                      std::vector<std::vector<runtime::TokenLogprobs>> logprobs,
                      const UsageCounts& usage);

  evhttp_request* req_;  // loop thread; null once the reply ended
  StreamDeps deps_;
  std::shared_ptr<Waker> waker_;
  LoopOffload* offload_;
  std::shared_ptr<scheduler::ServedModel> model_;  // loop thread; null once released
  // The model's, for the sinks (it outlives the model's engine and so them).
  const runtime::Tokenizer* tokenizer_ = nullptr;
  const CallOptions options_;
  // The call ended (the client left, the server stops) while its whole reply
  // was being built: the worker need not finish it.
  std::atomic<bool> abandoned_{false};
  ResponseHeader header_;
  std::string tenant_;
  bool stream_ = false;
  bool include_usage_ = false;
  bool logprobs_ = false;         // the request asked for them
  bool split_reasoning_ = false;  // the choices' text goes through their splitters
  bool calls_finish_ = false;     // a choice that made calls finishes with "tool_calls"
  // Loop thread: choices 1..n-1, not yet submitted; rest_pending_ says so to
  // the sinks.
  std::optional<runtime::GenerateRequest> rest_;
  std::atomic<bool> rest_pending_{false};
  bool reply_started_ = false;     // loop thread
  bool building_ = false;          // loop thread: the whole reply is being built
  bool failure_recorded_ = false;  // loop thread
  // A choice was admitted: a later failure's tenant may take a metric label.
  std::atomic<bool> admitted_{false};
  runtime::Clock::time_point arrival_;

  mutable std::mutex mu_;
  bool client_gone_ = false;
  size_t whole_bytes_ = 0;     // a whole reply's JSON so far (JsonTextBytes, LogprobEntryBytes)
  bool too_large_ = false;     // it passed max_whole_reply_bytes_
  bool wake_pending_ = false;  // the loop was woken and has not pumped since
  std::vector<Choice> choices_;
  std::vector<StreamTiming> timings_;              // each choice's, touched by its sink only
  std::vector<std::shared_ptr<const void>> open_;  // under mu_: KeepOpen's
};

}  // namespace cohost::server::http
