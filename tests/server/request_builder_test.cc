// The server's pure pieces, without a network: request validation and
// tokenization (BuildGenerateRequest) on the tiny byte-level tokenizer, the
// coalescing of output queued behind a slow reader (DeltaBacklog), and the
// health watchdog's stall detection (ProgressTracker).

#include "server/request_builder.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/sampling/json_grammar.h"
#include "server/delta_backlog.h"
#include "server/health_watchdog.h"
#include "tests/server/scripted_backend.h"
#include "tests/support/tiny_model.h"

namespace cohost::server {
namespace {

class RequestBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t =
        runtime::Tokenizer::Create(runtime::testing::MakeByteTokenizerSpec());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }

  absl::StatusOr<runtime::GenerateRequest> Build(const v1::GenerateRequest& r) const {
    return BuildGenerateRequest(r, *tokenizer_, limits_);
  }
  absl::StatusCode Code(const v1::GenerateRequest& r) const { return Build(r).status().code(); }

  static v1::GenerateRequest Text(const std::string& text) {
    v1::GenerateRequest r;
    r.set_model("m");
    r.set_text(text);
    return r;
  }

  std::unique_ptr<runtime::Tokenizer> tokenizer_;
  runtime::RequestLimits limits_{/*vocab_size=*/272, /*context_length=*/64};
};

TEST_F(RequestBuilderTest, TextIsEncodedAndUnsetFieldsTakeDefaults) {
  v1::GenerateRequest r = Text("hello");
  r.set_request_id("abc");
  absl::StatusOr<runtime::GenerateRequest> g = Build(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->prompt_ids, *tokenizer_->Encode("hello", /*add_special=*/true));
  EXPECT_EQ(g->external_id, "abc");
  const runtime::SamplingParams defaults;
  EXPECT_EQ(g->sampling.temperature, defaults.temperature);
  EXPECT_EQ(g->sampling.top_p, defaults.top_p);
  EXPECT_EQ(g->sampling.top_k, defaults.top_k);
  EXPECT_FALSE(g->sampling.seed.has_value());
  // Unset max_tokens: 256, capped by what the 64-token context leaves.
  EXPECT_EQ(g->sampling.max_tokens, 64 - static_cast<int>(g->prompt_ids.size()));
}

TEST_F(RequestBuilderTest, EveryFieldIsCarriedOver) {
  v1::GenerateRequest r;
  r.mutable_tokens()->add_ids(5);
  r.mutable_tokens()->add_ids(271);
  v1::SamplingParams* s = r.mutable_sampling();
  s->set_temperature(0.5f);
  s->set_top_k(7);
  s->set_top_p(0.9f);
  s->set_min_p(0.1f);
  s->set_repetition_penalty(1.2f);
  s->set_presence_penalty(-1.f);
  s->set_frequency_penalty(1.5f);
  s->set_seed(42);
  r.set_max_tokens(10);
  r.add_stop("xy");
  r.add_stop_token_ids(256);
  r.set_ignore_eos(true);
  r.set_logprobs(4);
  r.set_priority(-3);
  absl::StatusOr<runtime::GenerateRequest> g = Build(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->prompt_ids, (std::vector<int32_t>{5, 271}));  // tokens are used as given
  EXPECT_EQ(g->sampling.logprobs, 4);
  EXPECT_EQ(g->priority, -3);
  EXPECT_EQ(g->sampling.temperature, 0.5f);
  EXPECT_EQ(g->sampling.top_k, 7);
  EXPECT_EQ(g->sampling.top_p, 0.9f);
  EXPECT_EQ(g->sampling.min_p, 0.1f);
  EXPECT_EQ(g->sampling.repetition_penalty, 1.2f);
  EXPECT_EQ(g->sampling.presence_penalty, -1.f);
  EXPECT_EQ(g->sampling.frequency_penalty, 1.5f);
  EXPECT_EQ(g->sampling.seed, 42u);
  EXPECT_EQ(g->sampling.max_tokens, 10);
  EXPECT_EQ(g->sampling.stop_strings, std::vector<std::string>{"xy"});
  EXPECT_EQ(g->sampling.stop_token_ids, std::vector<int32_t>{256});
  EXPECT_TRUE(g->sampling.ignore_eos);
  EXPECT_EQ(g->sampling.response_format, runtime::ResponseFormat::kText);

  r.set_ignore_eos(false);
  r.set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
  g = Build(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->sampling.response_format, runtime::ResponseFormat::kJsonObject);
}

TEST_F(RequestBuilderTest, AResponseFormatNotListedOrWithIgnoreEosIsRefused) {
  v1::GenerateRequest r = Text("hi");
  r.set_response_format(static_cast<v1::ResponseFormat>(7));  // a newer client's
  EXPECT_EQ(Build(r).status().message(),
            "response_format must be TEXT (0), JSON_OBJECT (1) or JSON_SCHEMA (2), got 7");
  r.set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
  r.set_ignore_eos(true);
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Build(r).status().message()), ::testing::HasSubstr("ignore_eos"));
}

// Tools and calls reach a template that offers them (Qwen's <tool_call>
// format), checked here: names, JSON objects, who calls. On one without, they
// are FAILED_PRECONDITION; so is a "tool" role refused where none is offered.
TEST_F(RequestBuilderTest, ToolsAreCheckedAndReachATemplateThatOffersThem) {
  runtime::TokenizerSpec spec = runtime::testing::MakeByteTokenizerSpec();
  // Qwen3's wording (ChatTemplate::hermes_tools).
  spec.chat_template =
      R"({% for m in messages %}<|im_start|>{{ m.role }}{% endfor %} )"
      R"({{- messages[0].content + '\n\n' }} You may call one or more functions to assist )"
      R"(with the user query. {{- tool | tojson }} '<tool_call>\n{"name": "' <tool_response>)";
  const std::unique_ptr<runtime::Tokenizer> qwen = runtime::Tokenizer::Create(spec).value();
  const runtime::RequestLimits limits{/*vocab_size=*/272, /*context_length=*/4096};
  v1::GenerateRequest r;
  r.set_model("m");
  v1::ChatInput* chat = r.mutable_chat();
  v1::ChatMessage* user = chat->add_messages();
  user->set_role("user");
  user->set_content("Weather in Oslo?");
  v1::ChatMessage* call = chat->add_messages();
  call->set_role("assistant");
  v1::ToolCall* c = call->add_tool_calls();
  c->set_id("call_1");
  c->set_name("get_weather");
  c->set_arguments(R"({"city":"Oslo"})");
  v1::ChatMessage* result = chat->add_messages();
  result->set_role("tool");
  result->set_content("-3C");
  v1::Tool* tool = chat->add_tools();
  tool->set_name("get_weather");
  tool->set_description("The weather now.");
  tool->set_parameters(R"({"type":"object","properties":{"city":{"type":"string"}}})");
  absl::StatusOr<runtime::GenerateRequest> g = BuildGenerateRequest(r, *qwen, limits);
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string prompt = qwen->Decode(g->prompt_ids);
  EXPECT_THAT(prompt, ::testing::HasSubstr(
                          R"({"type": "function", "function": {"name": "get_weather", )"
                          R"("description": "The weather now.", "parameters": {"type": "object", )"
                          R"("properties": {"city": {"type": "string"}}}}})"));
  EXPECT_THAT(prompt,
              ::testing::HasSubstr("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                   "{\"city\": \"Oslo\"}}\n</tool_call>"));
  EXPECT_THAT(prompt, ::testing::HasSubstr("<tool_response>\n-3C\n</tool_response>"));

  struct Case {
    const char* what;
    std::function<void(v1::GenerateRequest&)> edit;
    const char* says;
  };
  for (const Case& bad : {
           Case{"a tool's name",
                [](auto& q) { q.mutable_chat()->mutable_tools(0)->set_name("a b"); },
                "tools[0].name"},
           Case{"a tool's parameters",
                [](auto& q) { q.mutable_chat()->mutable_tools(0)->set_parameters("[1]"); },
                "tools[0].parameters"},
           Case{"a call's arguments",
                [](auto& q) {
                  q.mutable_chat()->mutable_messages(1)->mutable_tool_calls(0)->set_arguments("{");
                },
                "messages[1].tool_calls[0].arguments"},
           Case{"a user's calls",
                [](auto& q) {
                  *q.mutable_chat()->mutable_messages(0)->add_tool_calls() =
                      q.chat().messages(1).tool_calls(0);
                },
                "only an assistant"},
           Case{"a user's reasoning",
                [](auto& q) { q.mutable_chat()->mutable_messages(0)->set_reasoning("hm"); },
                "messages[0].reasoning: only an assistant turn has reasoning"},
           Case{"a name offered twice",
                [](auto& q) { *q.mutable_chat()->add_tools() = q.chat().tools(0); },
                "tools[1].name \"get_weather\" names a function already offered"},
           Case{"a function tool_choice does not find",
                [](auto& q) {
                  q.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
                  q.mutable_chat()->set_tool_choice_function("get_time");
                },
                "tool_choice names a function that tools does not offer"},
           Case{"129 tools",
                [](auto& q) {
                  for (int i = 0; i < 128; ++i) *q.mutable_chat()->add_tools() = q.chat().tools(0);
                },
                "129 tools"},
       }) {
    v1::GenerateRequest q = r;
    bad.edit(q);
    absl::StatusOr<runtime::GenerateRequest> refused = BuildGenerateRequest(q, *qwen, limits);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad.what;
    EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr(bad.says))
        << bad.what;
  }
  // The byte tokenizer's own template offers no tools.
  v1::GenerateRequest plain = r;
  plain.mutable_chat()->mutable_messages()->DeleteSubrange(1, 2);
  spec.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}";
  const std::unique_ptr<runtime::Tokenizer> smol = runtime::Tokenizer::Create(spec).value();
  EXPECT_EQ(BuildGenerateRequest(plain, *smol, limits).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::GenerateRequest result_only = plain;
  result_only.mutable_chat()->clear_tools();
  *result_only.mutable_chat()->add_messages() = r.chat().messages(2);
  const absl::Status result_refused = BuildGenerateRequest(result_only, *smol, limits).status();
  EXPECT_EQ(result_refused.code(), absl::StatusCode::kFailedPrecondition)
      << "the tool role, where no tools are offered";
  EXPECT_THAT(std::string(result_refused.message()), ::testing::HasSubstr("tool calling"));
  // tool_choice NONE leaves them out of the prompt: served there.
  plain.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_NONE);
  ToolOutput none;
  ASSERT_TRUE(BuildGenerateRequest(plain, *smol, limits, &none).ok());
  EXPECT_FALSE(none.calls);
  // The tools it leaves out are checked all the same.
  v1::GenerateRequest bad_none = plain;
  bad_none.mutable_chat()->mutable_tools(0)->set_name("get weather");
  const absl::Status refused_none = BuildGenerateRequest(bad_none, *smol, limits).status();
  EXPECT_EQ(refused_none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused_none.message()), ::testing::StartsWith("tools[0].name must be"));

  // A forced call is built from a copy the choice was applied to.
  v1::GenerateRequest forced = r;
  forced.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
  forced.mutable_chat()->set_tool_choice_function("get_weather");
  ToolOutput tools;
  g = BuildGenerateRequest(forced, *qwen, limits, &tools);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(tools.forced, "get_weather");
  EXPECT_EQ(g->sampling.response_format, runtime::ResponseFormat::kJsonSchema);
  ASSERT_NE(g->sampling.json_schema, nullptr);
  EXPECT_EQ(forced.response_format(), v1::RESPONSE_FORMAT_TEXT) << "the request is left as sent";
  // A function's value bounds that the grammar holds hold the call, strict
  // or not.
  forced.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type":"object","properties":{"days":{"type":"integer","minimum":1}}})");
  for (const bool strict : {true, false}) {
    forced.mutable_chat()->mutable_tools(0)->set_strict(strict);
    absl::StatusOr<runtime::GenerateRequest> bounded = BuildGenerateRequest(forced, *qwen, limits);
    ASSERT_TRUE(bounded.ok()) << bounded.status();
    const runtime::JsonSchema& held = *bounded->sampling.json_schema;
    runtime::JsonGrammar days(held);
    ASSERT_TRUE(days.FeedAll(held, R"({"days":)"));
    runtime::JsonGrammar one = days;
    EXPECT_FALSE(days.Feed(held, '0')) << strict;
    EXPECT_TRUE(one.Feed(held, '1'));
  }
  forced.mutable_chat()->mutable_tools(0)->set_strict(true);
  // Its schema's faults are the function's parameters', not a json_schema's
  // (a strict function's value bound, which the grammar cannot hold).
  forced.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type":"object","properties":{"days":{"type":"number","multipleOf":0.0000001}}})");
  const absl::Status unserved = BuildGenerateRequest(forced, *qwen, limits).status();
  EXPECT_EQ(unserved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(unserved.message()),
      ::testing::StartsWith("tool_choice holds the answer to the parameters of get_weather"));
  // Without a choice, the tools' calls are the answer's.
  ASSERT_TRUE(BuildGenerateRequest(r, *qwen, limits, &tools).ok());
  EXPECT_TRUE(tools.calls);
  EXPECT_FALSE(tools.forced);
}

// A JSON schema is read and compiled here, for both front doors: a bad one
// is INVALID_ARGUMENT naming what is wrong, and a schema goes with its format.
TEST_F(RequestBuilderTest, AJsonSchemaIsCompiledOrRefusedWithWhy) {
  v1::GenerateRequest r = Text("hi");
  r.set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
  r.set_json_schema(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})");
  absl::StatusOr<runtime::GenerateRequest> g = Build(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->sampling.response_format, runtime::ResponseFormat::kJsonSchema);
  ASSERT_NE(g->sampling.json_schema, nullptr);
  runtime::JsonGrammar document(*g->sampling.json_schema);
  EXPECT_TRUE(document.FeedAll(*g->sampling.json_schema, R"({"a":1})") && document.Complete());
  // The same schema, spaced and ordered otherwise, is the same compiled
  // schema while the first is held (its masks are cached once).
  v1::GenerateRequest again = r;
  again.set_json_schema(
      R"({ "required": ["a"], "properties": {"a": {"type": "integer"}}, "type": "object" })");
  absl::StatusOr<runtime::GenerateRequest> g2 = Build(again);
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_EQ(g2->sampling.json_schema.get(), g->sampling.json_schema.get());

  struct Case {
    const char* schema;
    const char* says;
  };
  for (const Case& c :
       {Case{R"({"type":"string","format":"ipv6"})", "format"}, Case{"{not json", "json_schema"},
        Case{R"({"type":"object","type":"array"})", "json_schema"}, Case{"", "JSON_SCHEMA"}}) {
    r.set_json_schema(c.schema);
    EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument) << c.schema;
    EXPECT_THAT(std::string(Build(r).status().message()), ::testing::HasSubstr(c.says)) << c.schema;
  }
  v1::GenerateRequest text = Text("hi");
  text.set_json_schema(R"({"type":"object"})");
  EXPECT_EQ(Code(text), absl::StatusCode::kInvalidArgument) << "a schema without its format";
}

TEST_F(RequestBuilderTest, BadInputsAreInvalidArgument) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  v1::GenerateRequest none;
  none.set_model("m");
  EXPECT_EQ(Code(none), kInvalid) << "no input";
  EXPECT_EQ(Code(Text("")), kInvalid) << "empty text, on a model that adds no BOS";
  EXPECT_EQ(Code(Text("ab\xff\xfe")), kInvalid) << "invalid UTF-8";
  EXPECT_EQ(Code(Text("\xe2\x82")), kInvalid) << "truncated UTF-8";

  v1::GenerateRequest empty_tokens;
  empty_tokens.mutable_tokens();
  EXPECT_EQ(Code(empty_tokens), kInvalid);
  for (int bad_id : {-1, 272, 1 << 30}) {
    v1::GenerateRequest r;
    r.mutable_tokens()->add_ids(3);
    r.mutable_tokens()->add_ids(bad_id);
    EXPECT_EQ(Code(r), kInvalid) << bad_id;
  }

  v1::GenerateRequest empty_chat;
  empty_chat.mutable_chat();
  EXPECT_EQ(Code(empty_chat), kInvalid);

  v1::GenerateRequest r = Text("hi");
  r.set_max_tokens(0);
  EXPECT_EQ(Code(r), kInvalid) << "max_tokens 0";
  const int prompt_len = static_cast<int>(tokenizer_->Encode("hi")->size());
  r.set_max_tokens(64 - prompt_len + 1);
  EXPECT_EQ(Code(r), kInvalid) << "beyond the context";
  r.set_max_tokens(64 - prompt_len);
  EXPECT_TRUE(Build(r).ok()) << "exactly the context";
  r.set_max_tokens(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(Build(r).status().message(),
            "max_tokens (4294967295) is past every model's context (this one's is 64 tokens)")
      << "the value sent, not a clamped one";
  v1::GenerateRequest lp = Text("hi");
  for (const uint32_t n : {21u, 2147483648u, std::numeric_limits<uint32_t>::max()}) {
    lp.set_logprobs(n);
    EXPECT_EQ(Build(lp).status().message(), absl::StrCat("logprobs must be in [0, 20], got ", n))
        << "the value sent, not a clamped one";
  }
  lp.set_logprobs(20);
  EXPECT_TRUE(Build(lp).ok());
  EXPECT_EQ(Code(Text(std::string(64, 'a'))), kInvalid) << "the prompt fills the context";

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto with = [](auto set) {
    v1::GenerateRequest q = Text("hi");
    set(*q.mutable_sampling());
    return q;
  };
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_temperature(nan); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_temperature(-0.5f); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_temperature(inf); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_top_p(0.f); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_top_p(nan); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_top_k(-1); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_top_k(273); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_min_p(1.5f); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_repetition_penalty(0.f); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_presence_penalty(3.f); })), kInvalid);
  EXPECT_EQ(Code(with([&](v1::SamplingParams& s) { s.set_frequency_penalty(nan); })), kInvalid);

  v1::GenerateRequest stops = Text("hi");
  for (int i = 0; i < 17; ++i) stops.add_stop(absl::StrCat("s", i));
  EXPECT_EQ(Code(stops), kInvalid) << "17 stop strings";
  v1::GenerateRequest long_stop = Text("hi");
  long_stop.add_stop(std::string(257, 'x'));
  EXPECT_EQ(Code(long_stop), kInvalid) << "a 257-byte stop string";
  v1::GenerateRequest empty_stop = Text("hi");
  empty_stop.add_stop("");
  EXPECT_EQ(Code(empty_stop), kInvalid);
  v1::GenerateRequest stop_id = Text("hi");
  stop_id.add_stop_token_ids(272);
  EXPECT_EQ(Code(stop_id), kInvalid);
}

TEST_F(RequestBuilderTest, ChatWithoutATemplateIsAFailedPreconditionNotAnUnknownModel) {
  // The byte tokenizer fixture has no chat template.
  v1::GenerateRequest r;
  v1::ChatMessage* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("hi");
  EXPECT_EQ(Code(r), absl::StatusCode::kFailedPrecondition) << Build(r).status();
  m->set_role("");
  EXPECT_EQ(Code(r), absl::StatusCode::kInvalidArgument) << "a message without a role";
  // Only the turns every template knows, named by index (as over HTTP).
  m->set_role("user");
  v1::ChatMessage* second = r.mutable_chat()->add_messages();
  second->set_content("x");
  for (const char* role : {"User", "user<|im_end|>", "developer"}) {
    second->set_role(role);
    const absl::Status s = Build(r).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << role;
    EXPECT_EQ(s.message(), "messages[1].role must be system, user or assistant") << role;
  }
  // A tool's result on a model without a template: the missing template.
  second->set_role("tool");
  EXPECT_EQ(Code(r), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(Build(r).status().message()), ::testing::HasSubstr("no chat template"));
}

// Where a JSON document starts (runtime::JsonPhase): after the think block a
// chat's reasoning model writes, where its reasoning is split off and its
// vocabulary has the tags as tokens; else at once.
TEST_F(RequestBuilderTest, AChatsJsonFollowsItsThinkBlockWhereTheReasoningIsSplit) {
  const runtime::RequestLimits limits{/*vocab_size=*/272, /*context_length=*/4096};
  const auto tokenizer = [](const char* chat_template, bool tags) {
    runtime::TokenizerSpec spec = tags ? runtime::testing::MakeThinkingTokenizerSpec()
                                       : runtime::testing::MakeByteTokenizerSpec();
    spec.chat_template = chat_template;
    return runtime::Tokenizer::Create(spec).value();
  };
  const std::unique_ptr<runtime::Tokenizer> qwen3 =
      tokenizer(cohost::testing::kQwen3Template, true);
  const std::unique_ptr<runtime::Tokenizer> r1 =
      tokenizer(cohost::testing::kDeepSeekR1Template, true);
  const std::unique_ptr<runtime::Tokenizer> untagged =
      tokenizer(cohost::testing::kQwen3Template, false);
  using Edit = std::function<void(v1::GenerateRequest&)>;
  const auto phase = [&](const runtime::Tokenizer& t, const Edit& edit) {
    v1::GenerateRequest r;
    r.set_model("m");
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content("A JSON object, please.");
    r.set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
    r.set_split_reasoning(true);
    edit(r);
    absl::StatusOr<runtime::GenerateRequest> g = BuildGenerateRequest(r, t, limits);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? g->sampling.json_phase : runtime::JsonPhase::kDocument;
  };
  using runtime::JsonPhase;
  const Edit as_is = [](v1::GenerateRequest&) {};
  EXPECT_EQ(phase(*qwen3, as_is), JsonPhase::kMayThink) << "Qwen3 may think first";
  EXPECT_EQ(phase(*r1, as_is), JsonPhase::kThinking) << "R1's prompt opened the block";
  EXPECT_EQ(
      phase(*qwen3, [](v1::GenerateRequest& r) { r.mutable_chat()->set_enable_thinking(false); }),
      JsonPhase::kDocument)
      << "thinking off";
  EXPECT_EQ(phase(*r1, [](v1::GenerateRequest& r) { r.set_split_reasoning(false); }),
            JsonPhase::kDocument)
      << "the output is the document alone";
  EXPECT_EQ(
      phase(*r1, [](v1::GenerateRequest& r) { r.set_response_format(v1::RESPONSE_FORMAT_TEXT); }),
      JsonPhase::kDocument)
      << "no document";
  EXPECT_EQ(phase(*untagged, as_is), JsonPhase::kDocument) << "the tags are no tokens";
  EXPECT_EQ(phase(*qwen3, [](v1::GenerateRequest& r) { r.set_text("{"); }), JsonPhase::kDocument)
      << "a text prompt is the client's own";
}

// An empty text, on a model that adds BOS, is BOS alone: unconditional
// generation, as OpenAI and vLLM allow it.
TEST_F(RequestBuilderTest, AnEmptyTextIsTheBosAloneWhereTheModelAddsOne) {
  runtime::TokenizerSpec spec = runtime::testing::MakeByteTokenizerSpec();
  spec.token_types[257] = runtime::TokenType::kControl;
  spec.bos_id = 257;
  spec.add_bos = true;
  absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t = runtime::Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<runtime::GenerateRequest> g = BuildGenerateRequest(Text(""), **t, limits_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->prompt_ids, std::vector<int32_t>{257});
  EXPECT_THAT(std::string(Build(Text("")).status().message()), ::testing::HasSubstr("no BOS"))
      << "the byte tokenizer adds none";
  spec.add_eos = true;  // EOS alone is no prompt
  spec.add_bos = false;
  t = runtime::Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(BuildGenerateRequest(Text(""), **t, limits_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A chat's enable_thinking reaches the template: with Qwen3's switch, false
// puts the empty think block after the assistant's opening.
TEST_F(RequestBuilderTest, ChatEnableThinkingReachesTheTemplate) {
  runtime::TokenizerSpec spec = runtime::testing::MakeByteTokenizerSpec();
  spec.chat_template =
      "<|im_start|>{% if enable_thinking is defined and enable_thinking is false %}"
      "{{- '<think>\\n\\n</think>\\n\\n' }}{% endif %}";
  absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> t = runtime::Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  v1::GenerateRequest r;
  v1::ChatMessage* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("hi");
  const std::string head = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
  const runtime::RequestLimits limits{/*vocab_size=*/272, /*context_length=*/256};
  absl::StatusOr<runtime::GenerateRequest> g = BuildGenerateRequest(r, **t, limits);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->prompt_ids, *(*t)->Encode(head, /*add_special=*/true));
  r.mutable_chat()->set_enable_thinking(false);
  g = BuildGenerateRequest(r, **t, limits);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->prompt_ids, *(*t)->Encode(head + "<think>\n\n</think>\n\n", /*add_special=*/true));
}

// More messages than the context has tokens are refused before they are
// templated (this fixture has no template: that would be FAILED_PRECONDITION).
TEST_F(RequestBuilderTest, MoreChatMessagesThanTheContextHoldsAreRefusedFirst) {
  v1::GenerateRequest r;
  for (int i = 0; i <= limits_.context_length; ++i) {
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
  }
  const absl::Status s = Build(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("65 messages"), std::string::npos) << s;
  r.mutable_chat()->mutable_messages()->RemoveLast();
  EXPECT_EQ(Code(r), absl::StatusCode::kFailedPrecondition) << "as many as the context may try";
}

runtime::TokenDelta Delta(int32_t id, const std::string& text) {
  runtime::TokenDelta d;
  d.token_ids.push_back(id);
  d.text = text;
  return d;
}

TEST(DeltaBacklogTest, CoalescesInOrderWithinTheBoundAndDropsNothing) {
  DeltaBacklog b;
  std::string want_text;
  std::vector<int32_t> want_ids;
  for (int i = 0; i < 10; ++i) {
    const std::string text(96, static_cast<char>('a' + i));  // 96 + 4 = 100 bytes each
    b.Push(Delta(i, text));
    want_text += text;
    want_ids.push_back(i);
  }
  EXPECT_EQ(b.bytes(), 1000u + 10 * DeltaBacklog::kHeldBytes) << "what they hold in memory";

  std::string got_text;
  std::vector<int32_t> got_ids;
  std::vector<int> sizes;
  while (!b.empty()) {
    v1::GenerateResponse m;
    b.TakeInto(&m, 250);
    sizes.push_back(m.token_ids_size());
    got_text += m.text();
    got_ids.insert(got_ids.end(), m.token_ids().begin(), m.token_ids().end());
  }
  EXPECT_EQ(sizes, (std::vector<int>{2, 2, 2, 2, 2})) << "two 100-byte deltas fit in 250";
  EXPECT_EQ(got_text, want_text);
  EXPECT_EQ(got_ids, want_ids);
  EXPECT_EQ(b.bytes(), 0u);
}

TEST(DeltaBacklogTest, ADeltaBiggerThanTheBoundGoesAloneAndWhole) {
  DeltaBacklog b;
  b.Push(Delta(1, "x"));
  b.Push(Delta(2, std::string(1000, 'y')));
  b.Push(Delta(3, "z"));
  v1::GenerateResponse first, second, third;
  b.TakeInto(&first, 64);
  b.TakeInto(&second, 64);
  b.TakeInto(&third, 64);
  EXPECT_EQ(first.text(), "x");
  EXPECT_EQ(second.text(), std::string(1000, 'y'));
  EXPECT_EQ(third.text(), "z");
  EXPECT_TRUE(b.empty());

  // Token-only deltas (e.g. an end token with no text) still count and coalesce.
  b.Push(Delta(7, ""));
  b.Push(Delta(8, ""));
  EXPECT_EQ(b.bytes(), 8u + 2 * DeltaBacklog::kHeldBytes);
  v1::GenerateResponse m;
  b.TakeInto(&m, 256);
  EXPECT_EQ(m.token_ids_size(), 2);
  b.Push(Delta(9, "q"));
  b.Clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.bytes(), 0u);
}

// A streamed call's pieces taken into one message join into one ToolCall;
// pieces of different calls, or taken into different messages, do not.
TEST(DeltaBacklogTest, AStreamedCallsPiecesJoinWithinAMessage) {
  using Call = runtime::ParsedToolCall;
  DeltaBacklog b;
  b.Push(Delta(1, ""), "", {Call{"call_a", "f", "{\"x\":", 0}});
  b.Push(Delta(2, ""), "", {Call{"", "", "1}", 0}, Call{"call_b", "g", "{", 1}});
  b.Push(Delta(3, ""), "", {Call{"", "", "}", 1}});
  b.Push(Delta(4, ""), "", {Call{"", "", "", 1}});
  v1::GenerateResponse first, second;
  b.TakeInto(&first, 16 + 14);  // the first two deltas: a token id and the calls' fields each
  b.TakeInto(&second, 1024);
  ASSERT_EQ(first.tool_calls_size(), 2);
  EXPECT_EQ(first.tool_calls(0).id(), "call_a");
  EXPECT_EQ(first.tool_calls(0).name(), "f");
  EXPECT_EQ(first.tool_calls(0).arguments(), "{\"x\":1}");
  EXPECT_EQ(first.tool_calls(0).index(), 0u);
  EXPECT_EQ(first.tool_calls(1).id(), "call_b");
  EXPECT_EQ(first.tool_calls(1).arguments(), "{");
  EXPECT_EQ(first.tool_calls(1).index(), 1u);
  ASSERT_EQ(second.tool_calls_size(), 1) << "a message's pieces of one call are one";
  EXPECT_EQ(second.tool_calls(0).id(), "");
  EXPECT_EQ(second.tool_calls(0).name(), "");
  EXPECT_EQ(second.tool_calls(0).arguments(), "}");
  EXPECT_EQ(second.tool_calls(0).index(), 1u);
}

TEST(ProgressTrackerTest, StalledOnlyWithWorkAndNoStepsForTheTimeout) {
  using Clock = ProgressTracker::Clock;
  using std::chrono::seconds;
  ProgressTracker t(seconds(10));
  const Clock::time_point t0 = Clock::now();
  runtime::EngineStats s;
  EXPECT_TRUE(t.Update("m", true, s, 0, t0));
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(60))) << "idle is healthy however long";

  s.num_running = 1;
  s.num_steps = 5;
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(61)));
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(70)));
  EXPECT_FALSE(t.Update("m", true, s, 0, t0 + seconds(72))) << "work, and no step for 11 s";
  s.num_steps = 6;
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(73))) << "moving again";

  s.num_running = 0;
  s.num_waiting = 3;  // queued work counts too
  EXPECT_FALSE(t.Update("m", true, s, 0, t0 + seconds(84)));
  EXPECT_TRUE(t.Update("other", true, s, 0, t0 + seconds(84))) << "models are tracked apart";
  t.Forget("m");
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(85))) << "a forgotten model starts afresh";
}

// A model's requests wait while it loads, its engine taking no step; the
// clock starts once it is resident, or a load longer than the timeout would
// leave it (and the whole server) NOT_SERVING at its first poll as ready.
TEST(ProgressTrackerTest, TheClockStartsWhenTheModelIsResident) {
  using Clock = ProgressTracker::Clock;
  using std::chrono::seconds;
  ProgressTracker t(seconds(10));
  const Clock::time_point t0 = Clock::now();
  runtime::EngineStats s;
  s.num_waiting = 1;
  EXPECT_TRUE(t.Update("m", true, s, 0, t0));  // resident, then evicted
  EXPECT_TRUE(t.Update("m", false, s, 0, t0 + seconds(5)));
  EXPECT_TRUE(t.Update("m", false, s, 0, t0 + seconds(30))) << "loading for 25 s";
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(31))) << "ready: its clock starts";
  EXPECT_TRUE(t.Update("m", true, s, 0, t0 + seconds(40)));
  EXPECT_FALSE(t.Update("m", true, s, 0, t0 + seconds(42))) << "then it can stall";
}

// A model whose requests wait while its device computes for others (for KV
// memory their work holds, or for its turn) is waiting, not hung: it stalls
// only once the device stops too.
TEST(ProgressTrackerTest, AModelWaitingWhileItsDeviceComputesIsNotStalled) {
  using Clock = ProgressTracker::Clock;
  using std::chrono::seconds;
  ProgressTracker t(seconds(10));
  const Clock::time_point t0 = Clock::now();
  runtime::EngineStats s;
  s.num_waiting = 2;
  s.num_steps = 7;
  int64_t device_tokens = 100;
  for (int i = 1; i <= 6; ++i) {
    device_tokens += 50;  // another model decodes
    EXPECT_TRUE(t.Update("m", true, s, device_tokens, t0 + seconds(5 * i))) << i;
  }
  EXPECT_TRUE(t.Update("m", true, s, device_tokens, t0 + seconds(39)));
  EXPECT_FALSE(t.Update("m", true, s, device_tokens, t0 + seconds(41)))
      << "nothing on the device moved for 11 s";
  EXPECT_TRUE(t.Update("m", true, s, device_tokens + 1, t0 + seconds(42)));
}

}  // namespace
}  // namespace cohost::server
