// The OpenAI-compatible HTTP front door end to end on the tiny model, with
// cpp-httplib as the client: whole and streamed completions agree (with gRPC
// too: tests/python/openai_test.py, on the default model), n choices, usage, every error status
// with an OpenAI-style body (and the server serving on after each), Retry-After on 429, 503 while
// draining, and API keys.

#include "server/http/http_front_door.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/tiny_router.h"
#include "tests/support/collecting_sink.h"
#include "tests/support/gated_sink.h"
#include "tests/support/loopback.h"
#include "tests/support/requests.h"
#include "tests/support/wait_for.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Token ids the byte tokenizer decodes to "Hi!\n"; greedy and past EOS.
// Connects, sends `request`, and returns the socket once `wanted` has
// arrived (or -1). Defined below.
int SendRaw(int port, const std::string& request, const std::string& wanted);

Json CompletionBody(int max_tokens) {
  return Json{{"model", "tiny"},
              {"prompt", {72, 105, 33, 10}},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"ignore_eos", true}};
}

struct Events {
  std::vector<Json> chunks;  // every data: line but [DONE], parsed
  bool done = false;         // ended with data: [DONE]
};

Events ParseEvents(const std::string& body) {
  Events e;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "an event without its blank line";
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    const std::string data = event.substr(6);
    EXPECT_FALSE(e.done) << "an event after [DONE]";
    if (data == "[DONE]") {
      e.done = true;
      continue;
    }
    e.chunks.push_back(Json::parse(data));
  }
  return e;
}

class HttpFrontDoorTest : public ::testing::Test {
 protected:
  // `options`, where given, in place of `limits`.
  void Start(const std::string& key_file_text = "", const scheduler::AdmissionLimits& limits = {},
             const runtime::EngineConfig& engine = {},
             const scheduler::RouterOptions* options = nullptr) {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny =
        options != nullptr ? testing::MakeTinyRouterWith(*options, engine)
                           : testing::MakeTinyRouter(limits, engine);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    absl::StatusOr<auth::ApiKeys> keys = auth::ApiKeys::Parse(key_file_text, "test");
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<HttpFrontDoor>> door = HttpFrontDoor::Start(deps, http_options_);
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", door_->port());
    client_->set_read_timeout(30, 0);
  }
  void TearDown() override {
    // A test that failed while holding the engine must not leave it held:
    // the router's teardown waits for the step in progress.
    for (const std::shared_ptr<cohost::testing::SteppedSink>& sink : held_) sink->Open();
    client_.reset();
    door_.reset();
    tiny_.reset();
  }

  HttpOptions http_options_;  // what Start gives the front door

  httplib::Result Post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return client_->Post(path, headers, body, "application/json");
  }

  runtime::EngineStats Stats() { return (*tiny_->router->Find("tiny"))->Stats(); }
  // A long request of the tiny model's whose sink holds the engine in its
  // first delta (and each after, SteppedSink): null if it never got there.
  std::shared_ptr<cohost::testing::SteppedSink> HoldEngine() {
    auto sink = std::make_shared<cohost::testing::SteppedSink>();
    std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
    if (!tiny_->router->Submit(model, cohost::testing::RandomGreedyRequest(3, 200, 1), sink).ok() ||
        !sink->WaitHeld()) {
      return nullptr;
    }
    held_.push_back(sink);
    return sink;
  }
  // Posts `body` to /v1/completions while the engine is held (HoldEngine),
  // and returns once its first choice waits in the model's queue.
  std::future<httplib::Result> PostQueued(const Json& body) {
    std::future<httplib::Result> reply =
        std::async(std::launch::async,
                   [this, payload = body.dump()] { return Post("/v1/completions", payload); });
    std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
    // Admission counts it before the engine takes it: both, so that the
    // engine's next step certainly sees it.
    EXPECT_TRUE(testing::WaitFor(
        [&] { return model->admission().queued_requests() == 1 && Stats().num_waiting == 1; },
        std::chrono::seconds(30)))
        << "the first choice never queued";
    return reply;
  }
  // A 200-token stream whose request starts with `head` (its request line and
  // headers, each ending in CRLF, but Content-Type and Content-Length), sent
  // raw while the engine is held (HoldEngine): queued first (`neighbour`
  // must not finish before it is in), then stepped until its first event is
  // out. The socket, with the engine held hundreds of tokens from the
  // stream's end; -1 on failure.
  int OpenHeldStream(const std::string& head, cohost::testing::SteppedSink& neighbour) {
    Json body = CompletionBody(200);
    body["stream"] = true;
    const std::string payload = body.dump();
    std::atomic<bool> streaming{false};
    std::future<int> fd = std::async(std::launch::async, [&] {
      const int sock = SendRaw(door_->port(),
                               head + "Content-Type: application/json\r\nContent-Length: " +
                                   std::to_string(payload.size()) + "\r\n\r\n" + payload,
                               "data: ");
      streaming = true;
      return sock;
    });
    std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
    EXPECT_TRUE(testing::WaitFor([&] { return model->admission().queued_requests() == 1; },
                                 std::chrono::seconds(30)))
        << "the request never queued";
    // A step at a time, each given a moment to reach the client: on a busy
    // machine the event can take longer to arrive than the neighbour's 200
    // tokens take to run out.
    while (!streaming) {
      if (!neighbour.Advance()) {
        ADD_FAILURE() << "the held engine ended before the stream's first event";
        neighbour.Open();
        break;
      }
      testing::WaitFor([&] { return streaming.load(); }, std::chrono::milliseconds(50));
    }
    return fd.get();
  }
  // Nothing left running or waiting on the model, and `aborted` requests
  // aborted in all (what a request whose client went away leaves).
  bool SettlesWithAborted(int64_t aborted) {
    return testing::WaitFor(
        [&] {
          const runtime::EngineStats st = Stats();
          return st.num_running == 0 && st.num_waiting == 0 && st.num_requests_aborted == aborted;
        },
        std::chrono::seconds(30));
  }

  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<HttpFrontDoor> door_;
  std::unique_ptr<httplib::Client> client_;
  std::vector<std::shared_ptr<cohost::testing::SteppedSink>> held_;  // HoldEngine's
};

TEST_F(HttpFrontDoorTest, WholeAndStreamedCompletionsAgree) {
  Start();
  httplib::Result whole = Post("/v1/completions", CompletionBody(20).dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  EXPECT_EQ(whole->get_header_value("Content-Type"), "application/json");
  const Json j = Json::parse(whole->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_THAT(j["id"].get<std::string>(), ::testing::StartsWith("cmpl-"));
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens"], 20);
  EXPECT_EQ(j["usage"]["total_tokens"], 24);
  const std::string text = j["choices"][0]["text"];

  Json streamed_body = CompletionBody(20);
  streamed_body["stream"] = true;
  streamed_body["stream_options"] = {{"include_usage", true}};
  httplib::Result streamed = Post("/v1/completions", streamed_body.dump());
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200);
  EXPECT_EQ(streamed->get_header_value("Content-Type"), "text/event-stream");
  const Events events = ParseEvents(streamed->body);
  EXPECT_TRUE(events.done);
  ASSERT_GE(events.chunks.size(), 2u);
  std::string joined;
  for (size_t i = 0; i + 1 < events.chunks.size(); ++i) {
    const Json& c = events.chunks[i];
    EXPECT_EQ(c["id"], events.chunks[0]["id"]);
    EXPECT_TRUE(c["usage"].is_null());  // present and null until the last chunk
    ASSERT_EQ(c["choices"].size(), 1u);
    joined += c["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(events.chunks[events.chunks.size() - 2]["choices"][0]["finish_reason"], "length");
  const Json& usage_chunk = events.chunks.back();
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 20);
  EXPECT_EQ(joined, text);
}

TEST_F(HttpFrontDoorTest, LogprobsWholeAndStreamed) {
  Start();
  Json body = CompletionBody(10);
  body["logprobs"] = 2;
  httplib::Result whole = Post("/v1/completions", body.dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const Json lp = Json::parse(whole->body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 10u);
  ASSERT_EQ(lp["token_logprobs"].size(), 10u);
  ASSERT_EQ(lp["top_logprobs"].size(), 10u);
  ASSERT_EQ(lp["text_offset"].size(), 10u);
  // Character offsets from 0, never going back (a token of UTF-8
  // continuation bytes only starts no character; tests/server/
  // openai_format_test.cc has the exact rule).
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (size_t i = 1; i < 10; ++i) {
    EXPECT_GE(lp["text_offset"][i].get<int64_t>(), lp["text_offset"][i - 1].get<int64_t>());
  }
  for (size_t i = 0; i < 10; ++i) {
    const double chosen = lp["token_logprobs"][i];
    EXPECT_LE(chosen, 0.0);
    // Greedy: the chosen token is the most likely one, shown among the top.
    double best = -1e30;
    for (const auto& [token, value] : lp["top_logprobs"][i].items())
      best = std::max(best, value.get<double>());
    EXPECT_DOUBLE_EQ(best, chosen) << i;
  }

  body["stream"] = true;
  httplib::Result streamed = Post("/v1/completions", body.dump());
  ASSERT_TRUE(streamed);
  std::vector<double> values;
  std::vector<int64_t> offsets;
  for (const Json& c : ParseEvents(streamed->body).chunks) {
    const Json& l = c["choices"][0]["logprobs"];
    if (l.is_null()) continue;
    for (const Json& v : l["token_logprobs"]) values.push_back(v);
    for (const Json& o : l["text_offset"]) offsets.push_back(o);
  }
  ASSERT_EQ(values.size(), 10u);
  ASSERT_EQ(offsets.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_DOUBLE_EQ(values[i], lp["token_logprobs"][i].get<double>());
    // Each chunk's offsets continue where the last chunk's text ended.
    EXPECT_EQ(offsets[i], lp["text_offset"][i].get<int64_t>()) << i;
  }

  // Without asking: null.
  httplib::Result none = Post("/v1/completions", CompletionBody(3).dump());
  ASSERT_TRUE(none);
  EXPECT_TRUE(Json::parse(none->body)["choices"][0]["logprobs"].is_null());
}

// A whole reply whose JSON passes the bound as the output comes (choices x
// tokens, each token's logprobs entry and alternatives) ends the call with a
// 400 that says to stream it, and its choices are aborted; streamed, the same
// request is served; a smaller one is served whole.
TEST_F(HttpFrontDoorTest, AWholeReplyPastItsBoundIs400AndStreamingServesIt) {
  http_options_.call.max_whole_reply_bytes = 64 << 10;
  Start();
  Json body = CompletionBody(200);
  body["logprobs"] = 5;
  body["n"] = 3;  // 600 tokens of 6 entries of at least 84 bytes: 302 KB
  const int64_t aborted_before = Stats().num_requests_aborted;
  httplib::Result refused = Post("/v1/completions", body.dump());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_THAT(refused->body, HasSubstr("65536 bytes"));
  EXPECT_THAT(refused->body, HasSubstr("stream it"));
  EXPECT_TRUE(cohost::testing::WaitFor(
      [&] { return Stats().num_requests_aborted > aborted_before; }, std::chrono::seconds(10)))
      << "the choices ran on for a reply that was refused";

  body["stream"] = true;
  httplib::Result streamed = Post("/v1/completions", body.dump());
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  EXPECT_TRUE(ParseEvents(streamed->body).done);

  body["stream"] = false;
  body["n"] = 1;
  body["max_tokens"] = 30;  // 30 x 6 entries of 84 + 10 x bytes: about 18 KB
  httplib::Result whole = Post("/v1/completions", body.dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  EXPECT_EQ(Json::parse(whole->body)["choices"][0]["logprobs"]["tokens"].size(), 30u);
}

TEST_F(HttpFrontDoorTest, ChatWithoutATemplateIs400) {
  Start();
  // The byte tokenizer has no chat template: FAILED_PRECONDITION is a 400.
  const Json chat{
      {"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}};
  httplib::Result r = Post("/v1/chat/completions", chat.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Json::parse(r->body)["error"]["message"].get<std::string>(),
              HasSubstr("chat input is not supported by this model"));
}

TEST_F(HttpFrontDoorTest, NChoicesEachRunTheirCourse) {
  Start();
  Json body = CompletionBody(6);
  body["n"] = 4;
  body["temperature"] = 1.0;
  body["seed"] = 11;
  httplib::Result r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  // One request, one time to first token and one queue time (the further
  // choices start after the first's first token: theirs would count its
  // prefill again).
  const std::string metrics = metrics_.Render({}, {});
  EXPECT_THAT(metrics, HasSubstr("cohost_time_to_first_token_seconds_count{model=\"tiny\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("cohost_request_queue_time_seconds_count{model=\"tiny\"} 1\n"));
  // One request with one prompt; every choice's tokens.
  EXPECT_THAT(metrics,
              HasSubstr("cohost_requests_total{model=\"tiny\",finish_reason=\"length\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("cohost_prompt_tokens_total{model=\"tiny\"} 4\n"));
  EXPECT_THAT(metrics, HasSubstr("cohost_generation_tokens_total{model=\"tiny\"} 24\n"));
  const Json j = Json::parse(r->body);
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["finish_reason"], "length");
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);  // one prompt
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);  // under one block
  // The same seed gives the same four choices again.
  httplib::Result again = Post("/v1/completions", body.dump());
  ASSERT_TRUE(again);
  EXPECT_EQ(Json::parse(again->body)["choices"], j["choices"]);

  body["stream"] = true;
  httplib::Result streamed = Post("/v1/completions", body.dump());
  ASSERT_TRUE(streamed);
  const Events events = ParseEvents(streamed->body);
  EXPECT_TRUE(events.done);
  std::vector<std::string> texts(4);
  for (const Json& c : events.chunks) {
    texts[c["choices"][0]["index"].get<size_t>()] += c["choices"][0]["text"].get<std::string>();
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(texts[i], j["choices"][i]["text"]) << i;
}

TEST_F(HttpFrontDoorTest, ChoicesShareThePromptsBlocks) {
  Start();
  Json body = CompletionBody(4);
  body["prompt"] = std::vector<int>(40, 65);  // two full blocks of 16, and 8 more
  body["n"] = 3;
  const int64_t cached_before = Stats().prefix_cache_hits;
  httplib::Result r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json j = Json::parse(r->body);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 40);
  // The second and third choices found the first's two full blocks cached...
  EXPECT_GT(Stats().prefix_cache_hits, cached_before);
  // ...but the one prompt usage counts was not cached when it came.
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  // Sent again, it is: two full blocks.
  httplib::Result again = Post("/v1/completions", body.dump());
  ASSERT_TRUE(again);
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(Json::parse(again->body)["usage"]["prompt_tokens_details"]["cached_tokens"], 32);
}

// A further choice refused (here: the model's queue is full by the time the
// first choice has prefilled) ends the whole call at once with its status:
// the choice still running is aborted, not run to its end for a reply that
// can only be the refusal.
TEST_F(HttpFrontDoorTest, AFurtherChoiceRefusedEndsTheCallAtOnce) {
  scheduler::AdmissionLimits limits;
  limits.max_queued_requests = 1;
  runtime::EngineConfig engine;
  engine.step_scheduler.max_num_seqs = 2;  // the neighbour and the first choice
  Start("", limits, engine);
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  const int64_t aborted_before = Stats().num_requests_aborted;
  Json body = CompletionBody(200);
  body["n"] = 2;
  std::future<httplib::Result> reply = PostQueued(body);
  // The next step schedules it beside the neighbour, and the engine is full.
  neighbour->LetOneGo();
  ASSERT_TRUE(neighbour->WaitHeld(2));
  ASSERT_EQ(model->admission().queued_requests(), 0);
  // A third request takes the queue's one place behind them.
  auto third = std::make_shared<cohost::testing::CollectingSink>();
  ASSERT_TRUE(
      tiny_->router->Submit(model, cohost::testing::RandomGreedyRequest(3, 2, 5), third).ok());
  // The first choice's first token goes out; its further choice is refused.
  neighbour->LetOneGo();
  const bool answered = reply.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  neighbour->Open();
  EXPECT_TRUE(answered) << "the call waited for its first choice's 200 tokens";
  httplib::Result r = reply.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429) << r->body;
  EXPECT_EQ(Json::parse(r->body)["error"]["type"], "rate_limit_error");
  ASSERT_TRUE(neighbour->WaitFinished());
  EXPECT_TRUE(third->Wait());
  EXPECT_TRUE(SettlesWithAborted(aborted_before + 1)) << "the first choice was not aborted";
}

// A drain lets an admitted call finish, all its choices: the further ones,
// submitted once the first has prefilled, were refused as new requests and
// the call failed with 503.
TEST_F(HttpFrontDoorTest, ADrainLetsAnAdmittedCallsChoicesFinish) {
  Start();
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  Json body = CompletionBody(4);
  body["n"] = 2;
  std::future<httplib::Result> reply = PostQueued(body);
  tiny_->router->StartDraining();
  neighbour->Open();
  httplib::Result r = reply.get();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["choices"].size(), 2u);
  ASSERT_TRUE(neighbour->WaitFinished());
}

// A call whose choices its tenant's budgets could never admit all at once
// is refused at once, saying why (it was told to retry, while its first
// choices spent the budget).
TEST_F(HttpFrontDoorTest, MoreChoicesThanTheTenantsStreamsAre400) {
  scheduler::RouterOptions options;
  options.tenants.defaults.max_streams = 2;
  Start("", {}, {}, &options);
  Json body = CompletionBody(4);
  body["n"] = 3;
  httplib::Result r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_THAT(Json::parse(r->body)["error"]["message"].get<std::string>(),
              HasSubstr("max_streams"));
  // Each call's streams are closed before its client sees the reply end:
  // the next call at once is admitted, streamed or not.
  body["n"] = 2;
  for (int i = 0; i < 4; ++i) {
    body["stream"] = i % 2 == 1;
    r = Post("/v1/completions", body.dump());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i << ": " << r->body;
  }
}

// Likewise a call whose further choices, submitted together once the first
// runs, the model's queue could never hold: by count, or by prompt tokens.
TEST_F(HttpFrontDoorTest, MoreChoicesThanTheModelsQueueHoldsAre400) {
  scheduler::AdmissionLimits limits;
  limits.max_queued_requests = 2;
  limits.max_queued_prompt_tokens = 10;
  Start("", limits);
  Json body = CompletionBody(4);  // a 4-token prompt
  body["n"] = 4;
  httplib::Result r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_THAT(Json::parse(r->body)["error"]["message"].get<std::string>(),
              HasSubstr("max_queued_requests"));
  body["n"] = 3;
  body["prompt"] = {72, 105, 33, 10, 72, 105};  // 2 x 6 tokens
  r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_THAT(Json::parse(r->body)["error"]["message"].get<std::string>(),
              HasSubstr("max_queued_prompt_tokens"));
  body["prompt"] = {72, 105, 33, 10};  // 2 x 4 tokens
  r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["choices"].size(), 3u);
}

// CORS, opted into (--http-cors-origin): a browser's preflight is answered
// and every reply names the origin allowed; a bad origin is refused at
// start-up (it becomes a header). Off, a preflight is a 405, as before.
TEST_F(HttpFrontDoorTest, CorsIsAnsweredWhenAnOriginIsAllowed) {
  for (const char* good : {"*", "https://app.example:8443", "http://localhost:3000",
                           "http://[::1]:8080", "http://127.0.0.1"}) {
    EXPECT_TRUE(ValidCorsOrigin(good).ok()) << good << ": " << ValidCorsOrigin(good);
  }
  for (const char* bad :
       {"", "app.example", "https://", "https://a.example/path", "https://a.example\r\nX-Evil: 1",
        "ftp://a.example", "https://App.Example", "https://a.example:443",
        "http://a:", "http://a:b:c", "http://]", "http://[zz]", "http://a:99999"}) {
    EXPECT_EQ(ValidCorsOrigin(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  http_options_.cors_origin = "http://localhost:3000";
  Start("key-0123456789abcdef tenant=web\n");
  // The preflight needs no key; OpenAI's SDK asks for its own headers too.
  const httplib::Headers preflight = {
      {"Origin", "http://localhost:3000"},
      {"Access-Control-Request-Method", "POST"},
      {"Access-Control-Request-Headers", "authorization,content-type,x-stainless-os"}};
  httplib::Result r = client_->Options("/v1/chat/completions", preflight);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Headers"),
            "authorization,content-type,x-stainless-os");
  EXPECT_THAT(r->get_header_value("Access-Control-Allow-Methods"), HasSubstr("POST"));
  const httplib::Headers odd = {{"Access-Control-Request-Headers", "a;b"}};
  httplib::Result fixed = client_->Options("/v1/completions", odd);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->get_header_value("Access-Control-Allow-Headers"),
            "authorization, content-type, x-cohost-tenant")
      << "only header names are echoed";
  httplib::Result post = Post("/v1/completions", CompletionBody(2).dump(),
                              {{"Authorization", "Bearer key-0123456789abcdef"}});
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200) << post->body;
  EXPECT_EQ(post->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(post->get_header_value("Access-Control-Expose-Headers"), "Retry-After");
  httplib::Result refused = Post("/v1/completions", CompletionBody(2).dump());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401) << "only the preflight goes without a key";
  EXPECT_EQ(refused->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000")
      << "errors too, or the browser hides them";
}

TEST_F(HttpFrontDoorTest, WithoutCorsAPreflightIsNotAnswered) {
  Start();
  httplib::Result r = client_->Options("/v1/chat/completions", {{"Origin", "http://x.example"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
}

TEST_F(HttpFrontDoorTest, ErrorsHaveTheirStatusAndAnOpenAiBody) {
  Start();
  struct Case {
    const char* path;
    std::string body;
    int status;
    const char* message;
  };
  Json unknown_model = CompletionBody(4);
  unknown_model["model"] = "missing";
  Json bad_role{{"model", "tiny"}, {"messages", {{{"role", "wizard"}, {"content", "x"}}}}};
  Json zero_tokens = CompletionBody(4);
  zero_tokens["max_tokens"] = 0;
  Json bad_temperature = CompletionBody(4);
  bad_temperature["temperature"] = "hot";
  Json too_hot = CompletionBody(4);
  too_hot["temperature"] = 1000;
  Json logprobs = CompletionBody(4);
  logprobs["logprobs"] = 21;
  Json bad_n = CompletionBody(4);
  bad_n["n"] = 9;
  Json long_prompt = CompletionBody(4);
  long_prompt["prompt"] = std::vector<int>(300, 72);
  for (const Case& c : {
           Case{"/v1/completions", "{not json", 400, "the body: malformed JSON"},
           Case{"/v1/completions", "[1, 2]", 400, "JSON object"},
           // The last of two would win in nlohmann's parser, the first in others'.
           Case{"/v1/completions", R"({"model": "tiny", "model": "other", "prompt": "x"})", 400,
                "duplicate key \"model\""},
           Case{"/v1/completions", std::string(100, '[') + std::string(100, ']'), 400,
                "nested deeper than 64 levels"},
           Case{"/v1/completions",
                R"({"model": "tiny", "prompt": "x", "stream_options": {"include_usage": true}})",
                400, "stream_options is only allowed with stream: true"},
           Case{"/v1/completions", R"({"prompt": "x"})", 400, "model is required"},
           Case{"/v1/completions", unknown_model.dump(), 404, "missing"},
           Case{"/v1/chat/completions", bad_role.dump(), 400, "messages[0].role"},
           Case{"/v1/completions", zero_tokens.dump(), 400, "max_tokens"},
           Case{"/v1/completions", bad_temperature.dump(), 400, "temperature must be a number"},
           Case{"/v1/completions", too_hot.dump(), 400, "temperature"},
           Case{"/v1/completions", logprobs.dump(), 400, "logprobs must be in [0, 20]"},
           Case{"/v1/chat/completions",
                R"({"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                    "top_logprobs": 2})",
                400, "top_logprobs needs logprobs: true"},
           Case{"/v1/completions", bad_n.dump(), 400, "n must be in [1, 8]"},
           Case{"/v1/completions", long_prompt.dump(), 400,
                "This model's maximum context length is"},
           Case{"/v1/nothing", "{}", 404, "no such endpoint"},
       }) {
    httplib::Result r = Post(c.path, c.body);
    ASSERT_TRUE(r) << c.body;
    EXPECT_EQ(r->status, c.status) << c.body << " -> " << r->body;
    const Json j = Json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr(c.message)) << c.body;
    EXPECT_TRUE(j["error"].contains("type"));
  }
  {
    // OpenAI's code for a prompt the model cannot hold, which clients act on
    // (LiteLLM's context-window fallbacks); others keep gRPC's code's name.
    httplib::Result r = Post("/v1/completions", long_prompt.dump());
    ASSERT_TRUE(r);
    EXPECT_EQ(Json::parse(r->body)["error"]["code"], "context_length_exceeded");
    httplib::Result hot = Post("/v1/completions", too_hot.dump());
    ASSERT_TRUE(hot);
    EXPECT_EQ(Json::parse(hot->body)["error"]["code"], "invalid_argument");
    // The field a request error is about is its `param`, as OpenAI's are.
    httplib::Result typed = Post("/v1/completions", bad_temperature.dump());
    ASSERT_TRUE(typed);
    EXPECT_EQ(Json::parse(typed->body)["error"]["param"], "temperature");
    EXPECT_TRUE(Json::parse(r->body)["error"]["param"].is_null());
  }
  // Errors are counted against the model once the request names one that
  // exists (as over gRPC), else against none.
  const std::string metrics = metrics_.Render({}, {});
  EXPECT_THAT(metrics,
              HasSubstr("cohost_request_errors_total{model=\"tiny\",code=\"INVALID_ARGUMENT\"}"));
  EXPECT_THAT(metrics, HasSubstr("cohost_request_errors_total{model=\"\",code=\"NOT_FOUND\"}"));
  httplib::Result get = client_->Get("/v1/completions");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST") << "RFC 9110 asks for it";
  httplib::Result post = Post("/v1/models", "{}");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  // Methods no endpoint takes get the same JSON 405, not libevent's HTML 501.
  httplib::Result put = client_->Put("/v1/completions", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->get_header_value("Allow"), "POST");
  EXPECT_TRUE(Json::parse(put->body, nullptr, false).contains("error")) << put->body;
  httplib::Result del = client_->Delete("/v1/models/tiny");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_EQ(del->get_header_value("Allow"), "GET, HEAD");
  httplib::Result options = client_->Options("/health");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 405);
  // And it serves on.
  httplib::Result ok = Post("/v1/completions", CompletionBody(3).dump());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // The engine publishes its stats after the step whose sink sent the reply.
  EXPECT_TRUE(testing::WaitFor([&] { return Stats().num_running == 0; }, std::chrono::seconds(10)));
}

TEST_F(HttpFrontDoorTest, AFullQueueIs429WithRetryAfter) {
  scheduler::AdmissionLimits limits;
  limits.max_queued_requests = 0;  // nothing is ever admitted
  limits.retry_pushback_ms = 1500;
  Start("", limits);
  Json body = CompletionBody(3);
  body["stream"] = true;  // refused before the stream starts: a real status
  httplib::Result r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "2");
  EXPECT_EQ(Json::parse(r->body)["error"]["type"], "rate_limit_error");
}

TEST_F(HttpFrontDoorTest, ModelsAndHealth) {
  Start();
  httplib::Result models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  const Json j = Json::parse(models->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny");
  // One model by name, as the list's entry; an unknown one is a JSON 404.
  httplib::Result one = client_->Get("/v1/models/tiny");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  EXPECT_EQ(Json::parse(one->body), j["data"][0]);
  httplib::Result escaped = client_->Get("/v1/models/t%69ny");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->status, 200) << "percent-decoded";
  for (const char* path : {"/v1/models/other", "/v1/models/tiny/x", "/v1/models/ti%00ny"}) {
    httplib::Result missing = client_->Get(path);
    ASSERT_TRUE(missing) << path;
    EXPECT_EQ(missing->status, 404) << path;
    EXPECT_TRUE(Json::parse(missing->body).contains("error")) << path << ": " << missing->body;
  }
  httplib::Result unnamed = client_->Get("/v1/models/");
  ASSERT_TRUE(unnamed);
  EXPECT_EQ(unnamed->status, 400) << "no name: " << unnamed->body;
  httplib::Result health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  tiny_->router->StartDraining();
  health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  httplib::Result refused = Post("/v1/completions", CompletionBody(3).dump());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
}

TEST_F(HttpFrontDoorTest, KeysAreCheckedAndDecideTheTenant) {
  Start("user-key-0123456789 tenant=alice\n");
  const std::string body = CompletionBody(3).dump();
  httplib::Result r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer") << "RFC 9110 11.6.1";
  r = Post("/v1/completions", body, {{"Authorization", "Bearer wrong-key-0123456789"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = Post("/v1/completions", body,
           {{"Authorization", "Bearer user-key-0123456789"}, {"x-cohost-tenant", "bob"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  r = Post("/v1/completions", body, {{"Authorization", "Bearer user-key-0123456789"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  httplib::Result models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
  models = client_->Get("/v1/models/tiny");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401) << "a name is not confirmed without a key";
  // Health is on the exempt list.
  httplib::Result health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// The bytes of `request` sent on a fresh connection to the front door on
// 127.0.0.1:`port`: the socket, or -1.
int Connect(int port, const std::string& request) {
  const int fd = testing::ConnectLoopback(port);
  if (fd < 0 || !testing::SendAll(fd, request)) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// Connect, then the socket once `wanted` has arrived (or -1).
int SendRaw(int port, const std::string& request, const std::string& wanted) {
  const int fd = Connect(port, request);
  if (fd < 0) return -1;
  const std::string got = testing::ReadUntil(fd, wanted, std::chrono::seconds(30));
  if (got.find(wanted) == std::string::npos) {
    ADD_FAILURE() << "the connection ended after: " << got;
    ::close(fd);
    return -1;
  }
  return fd;
}

// A HEAD's reply is headers alone, with a GET's Content-Length, so that the
// next reply on a keep-alive connection starts where the client looks for
// it.
TEST_F(HttpFrontDoorTest, HeadRepliesHaveNoBody) {
  Start();
  httplib::Result got = client_->Get("/v1/models");
  ASSERT_TRUE(got);
  const std::string length = std::to_string(got->body.size());
  const int fd = Connect(door_->port(),
                         "HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_GE(fd, 0);
  const std::string both = testing::ReadUntil(fd, R"({"status":"ok"})", std::chrono::seconds(30));
  ::close(fd);
  const size_t head_end = both.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << both;
  EXPECT_THAT(both.substr(0, head_end), HasSubstr("Content-Length: " + length)) << both;
  EXPECT_EQ(both.substr(head_end + 4, 15), "HTTP/1.1 200 OK")
      << "the HEAD's reply had a body: " << both;
}

// A request whose body's end is ambiguous (two lengths; a body on a method
// evhttp reads none for, which it would parse as the next request, while a
// proxy in front sees one request and gets two replies; a coding evhttp does
// not take as chunked, which leaves the body unread) is refused with its
// connection closed, and the request hidden behind it is not served.
TEST_F(HttpFrontDoorTest, AmbiguouslyFramedRequestsAreRefused) {
  Start();
  const std::string hidden = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string chunk = absl::StrFormat("%x\r\n%s\r\n0\r\n\r\n", hidden.size(), hidden);
  for (const std::string& request : {
           absl::StrCat("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                        "Content-Length: 0\r\n\r\n",
                        hidden),
           absl::StrCat("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: ", hidden.size(),
                        "\r\n\r\n", hidden),
           absl::StrCat("OPTIONS /health HTTP/1.1\r\nHost: x\r\nContent-Length: ", hidden.size(),
                        "\r\n\r\n", hidden),
           absl::StrCat("GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                        chunk),
           absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: gzip, chunked\r\n\r\n",
                        chunk),
           // evhttp keeps the tab, and so reads no body; a proxy drops it.
           absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding:\tchunked\r\n\r\n",
                        chunk),
           // HTTP/1.0 has no chunked coding (RFC 9112 6.1).
           absl::StrCat("POST /v1/completions HTTP/1.0\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n",
                        chunk),
       }) {
    SCOPED_TRACE(request);
    const int fd = Connect(door_->port(), request);
    ASSERT_GE(fd, 0);
    const std::string got = testing::ReadUntil(fd, "ambiguous", std::chrono::seconds(30));
    EXPECT_THAT(got, HasSubstr(" 400 Bad Request")) << got;
    EXPECT_THAT(got, HasSubstr("Connection: close")) << got;
    EXPECT_THAT(testing::ReadUntil(fd, R"("object":"list")", std::chrono::seconds(2)),
                Not(HasSubstr("list")))
        << "the hidden request was served";
    ::close(fd);
  }
  // A GET with an empty length is fine, however it is written.
  for (const char* zero : {"0", "00"}) {
    const int fd = SendRaw(
        door_->port(),
        absl::StrCat("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: ", zero, "\r\n\r\n"),
        R"({"status":"ok"})");
    EXPECT_GE(fd, 0) << zero;
    if (fd >= 0) ::close(fd);
  }
}

// An HTTP/1.0 client (nginx's default towards upstreams) that leaves in the
// middle of a stream: without chunked encoding, ending the reply may close
// the connection at once, from inside the call that ends it. The request is
// aborted, its memory freed, and the server serves on.
TEST_F(HttpFrontDoorTest, AnHttp10StreamWhoseClientLeavesEndsCleanly) {
  Start();
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  const int64_t aborted_before = Stats().num_requests_aborted;
  const int sock = OpenHeldStream("POST /v1/completions HTTP/1.0\r\n", *neighbour);
  ASSERT_GE(sock, 0) << "no first event";
  ASSERT_EQ(Stats().num_running, 2);
  // The call holds the model while it lives (and lets go once it is over).
  const long holders = model.use_count();
  ::close(sock);
  // The front door's liveness check (every 200 ms) sees the client gone and
  // ends the call, while the engine is still held.
  EXPECT_TRUE(
      testing::WaitFor([&] { return model.use_count() < holders; }, std::chrono::seconds(30)))
      << "the call did not end";
  neighbour->Open();
  ASSERT_TRUE(neighbour->WaitFinished());
  EXPECT_TRUE(SettlesWithAborted(aborted_before + 1))
      << "the gone client's request was not aborted";
  httplib::Result again = Post("/v1/completions", CompletionBody(3).dump());
  ASSERT_TRUE(again) << "the server stopped answering";
  EXPECT_EQ(again->status, 200) << again->body;
}

// An HTTP/1.0 client that asks to keep its connection alive gets its stream
// whole: without chunked encoding only the connection's close can end such
// a body, so the server closes it at the stream's end (it answered
// "Content-Length: 0" and kept the connection, so the client read an empty
// reply and the events as garbage).
TEST_F(HttpFrontDoorTest, AnHttp10KeepAliveStreamIsEndedByTheClose) {
  Start();
  Json body = CompletionBody(4);
  body["stream"] = true;
  const std::string payload = body.dump();
  // libevent takes any first Connection header starting "keep-alive" as the
  // ask; a second one counts once the first is gone.
  for (const char* connection : {"Connection: keep-alive\r\n", "Connection: Keep-Alive, TE\r\n",
                                 "Connection: keep-alive\r\nConnection: keep-alive\r\n"}) {
    SCOPED_TRACE(connection);
    const int fd =
        Connect(door_->port(), absl::StrCat("POST /v1/completions HTTP/1.0\r\n", connection,
                                            "Content-Type: application/json\r\nContent-Length: ",
                                            payload.size(), "\r\n\r\n", payload));
    ASSERT_GE(fd, 0);
    timeval wait{};
    wait.tv_sec = 30;
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait), 0);
    std::string got;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(fd);
    EXPECT_EQ(n, 0) << "the server kept the connection: " << got;
    const size_t head_end = got.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos) << got;
    const std::string head = absl::AsciiStrToLower(got.substr(0, head_end));
    EXPECT_THAT(head, HasSubstr("200"));
    EXPECT_THAT(head, Not(HasSubstr("content-length"))) << head;
    EXPECT_THAT(head, Not(HasSubstr("keep-alive"))) << head;
    EXPECT_THAT(got.substr(head_end), HasSubstr("data: [DONE]"));
  }
}

// A streamed token that shows no text yet (here: a prefix of a stop string
// that never completes, which the engine holds back with its token; part of
// a UTF-8 character reaches the front door without text) keeps its logprob
// until its text goes out: the stream has one logprob per token, as the
// whole reply does. The engine advances a step at a time.
TEST_F(HttpFrontDoorTest, StreamedLogprobsKeepTokensThatShowNoTextYet) {
  Start();
  Json body = CompletionBody(6);
  httplib::Result whole = Post("/v1/completions", body.dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const std::string text = Json::parse(whole->body)["choices"][0]["text"];
  ASSERT_FALSE(text.empty());
  // The first character (whole, in UTF-8) starts a stop string that the
  // output never completes.
  size_t first = 1;
  while (first < text.size() && (static_cast<uint8_t>(text[first]) & 0xC0) == 0x80) ++first;
  body["stop"] = {text.substr(0, first) + "\x01\x02"};
  body["logprobs"] = 1;
  body["stream"] = true;

  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  std::atomic<bool> done{false};
  int status = 0;
  std::string reply;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", door_->port());
    c.set_read_timeout(60, 0);
    if (httplib::Result r = c.Post("/v1/completions", body.dump(), "application/json")) {
      status = r->status;
      reply = r->body;
    }
    done = true;
  });
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  EXPECT_TRUE(testing::WaitFor([&] { return model->admission().queued_requests() == 1; },
                               std::chrono::seconds(30)))
      << "the request never queued";  // (no ASSERT: the client thread must be joined)
  // A step at a time, each given time to reach the client.
  for (int step = 0; step < 100 && !done; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(neighbour->Advance() || done);
  }
  neighbour->Open();
  client.join();
  ASSERT_EQ(status, 200) << reply;
  size_t logprobs = 0;
  std::string joined;
  for (const Json& c : ParseEvents(reply).chunks) {
    joined += c["choices"][0]["text"].get<std::string>();
    const Json& l = c["choices"][0]["logprobs"];
    if (!l.is_null()) logprobs += l["token_logprobs"].size();
  }
  EXPECT_EQ(logprobs, 6u) << "a logprob per token";
  EXPECT_EQ(joined.size(), text.size());
}

// `priority` is vLLM's: lower starts first. Asking to go later is anyone's
// right; asking to go first (a negative value) passes the tenant's
// max_priority, 0 by default, and is refused.
TEST_F(HttpFrontDoorTest, PriorityIsVllmsAndGoingFirstIsTheOperatorsToGrant) {
  Start();
  Json later = CompletionBody(2);
  later["priority"] = 5;
  httplib::Result ok = Post("/v1/completions", later.dump());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  Json first = CompletionBody(2);
  first["priority"] = -5;
  httplib::Result refused = Post("/v1/completions", first.dump());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_THAT(refused->body, HasSubstr("max_priority"));
  // The refusal names the value as this API counts it, too.
  EXPECT_THAT(refused->body, HasSubstr("there it is -5 and the least allowed 0")) << refused->body;
}

// A client that leaves with bytes still unread by the server (a pipelined
// request, a stray CRLF; TLS's close_notify alike) is gone all the same: its
// whole (non-streamed) request is aborted instead of running for nobody.
TEST_F(HttpFrontDoorTest, AClientThatLeavesWithBytesUnreadIsGone) {
  Start();
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  const long holders = model.use_count();
  const std::string payload = CompletionBody(200).dump();
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(payload.size()) + "\r\n\r\n" + payload +
      "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";  // pipelined
  const int fd = Connect(door_->port(), request);
  ASSERT_GE(fd, 0);
  // The call holds the model once it has started.
  ASSERT_TRUE(
      testing::WaitFor([&] { return model.use_count() > holders; }, std::chrono::seconds(30)));
  ::close(fd);
  // Let the engine run a few steps: the request is admitted and running.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(neighbour->Advance());
  EXPECT_TRUE(
      testing::WaitFor([&] { return model.use_count() == holders; }, std::chrono::seconds(5)))
      << "the call of a client that left still runs";
  neighbour->Open();
  ASSERT_TRUE(neighbour->WaitFinished());
}

// A stream still in the engine when the front door stops with no grace:
// Stop returns, the client's call ends, and the front door itself aborts the
// request (nothing else does here). A gated request holds the engine thread,
// so the HTTP request is certainly still queued when Stop runs.
TEST_F(HttpFrontDoorTest, StoppingWithAStreamInFlightJoinsCleanly) {
  Start();
  std::shared_ptr<scheduler::ServedModel> model = *tiny_->router->Find("tiny");
  cohost::testing::Gate gate;
  auto blocker = std::make_shared<cohost::testing::RecordingSink>(&gate);
  ASSERT_TRUE(
      tiny_->router->Submit(model, cohost::testing::RandomGreedyRequest(3, 4, 1), blocker).ok());
  ASSERT_TRUE(gate.WaitEntered());  // the engine thread is held in the blocker's first delta

  Json body = CompletionBody(200);
  body["stream"] = true;
  const int64_t aborted_before = Stats().num_requests_aborted;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", door_->port());
    c.Post("/v1/completions", body.dump(), "application/json");
  });
  // Queued behind the held step (the engine counts its inbox as waiting).
  ASSERT_TRUE(testing::WaitFor([&] { return Stats().num_waiting >= 1; }, std::chrono::seconds(30)));
  door_->Stop(std::chrono::milliseconds(0));
  client.join();
  gate.Open();
  ASSERT_TRUE(blocker->WaitFinished());
  EXPECT_TRUE(SettlesWithAborted(aborted_before + 1))
      << "the front door's stop aborted the HTTP request";
}

// A stream whose reply has started when the front door stops ends with an
// error event, and counts as an error (UNAVAILABLE), as one stopped before
// its reply does.
TEST_F(HttpFrontDoorTest, AStreamCutOffByTheStopCountsAsAnError) {
  Start();
  const std::shared_ptr<cohost::testing::SteppedSink> neighbour = HoldEngine();
  ASSERT_NE(neighbour, nullptr);
  const int sock = OpenHeldStream("POST /v1/completions HTTP/1.1\r\nHost: x\r\n", *neighbour);
  ASSERT_GE(sock, 0) << "no first event";
  const std::string unavailable =
      "cohost_request_errors_total{model=\"tiny\",code=\"UNAVAILABLE\"}";
  EXPECT_THAT(metrics_.Render({}, {}), Not(HasSubstr(unavailable)));
  door_->Stop(std::chrono::milliseconds(0));
  EXPECT_THAT(metrics_.Render({}, {}), HasSubstr(unavailable));
  ::close(sock);
  neighbour->Open();
  ASSERT_TRUE(neighbour->WaitFinished());
}

}  // namespace
}  // namespace cohost::server::http
