// ParseCompletionRequest as a table: fields whose effect cohost does not
// produce are refused by name rather than ignored, values that ask for
// nothing pass, and integers beyond int64 are out of range rather than
// wrapped.

#include "server/http/openai_request.h"

#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

Json Chat() { return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }
Json Completion() { return {{"model", "m"}, {"prompt", "hi"}}; }

TEST(OpenAiRequestTest, FieldsCohostCannotHonourAreRefusedByName) {
  struct Case {
    const char* what;
    Json body;
    Endpoint endpoint;
    const char* field;  // nullptr: accepted
  };
  auto chat = [](const char* key, Json value) {
    Json b = Chat();
    b[key] = std::move(value);
    return b;
  };
  auto completion = [](const char* key, Json value) {
    Json b = Completion();
    b[key] = std::move(value);
    return b;
  };
  const Json tool = {{"type", "function"}, {"function", {{"name", "f"}}}};
  Json tool_call_turn = Chat();
  tool_call_turn["messages"].push_back(
      {{"role", "assistant"}, {"function_call", {{"name", "f"}, {"arguments", "{}"}}}});
  const Case cases[] = {
      {"a grammar", chat("response_format", {{"type", "grammar"}}), Endpoint::kChatCompletions,
       "response_format"},
      {"plain text is what it gives", chat("response_format", {{"type", "text"}}),
       Endpoint::kChatCompletions, nullptr},
      {"a chat's tools (openai_tools_test.cc)", chat("tools", Json::array({tool})),
       Endpoint::kChatCompletions, nullptr},
      {"tools of a text completion", completion("tools", Json::array({tool})),
       Endpoint::kCompletions, "tools"},
      {"no tools", completion("tools", Json::array()), Endpoint::kCompletions, nullptr},
      {"a forced tool in a text completion", completion("tool_choice", "required"),
       Endpoint::kCompletions, "tool_choice"},
      {"tool_choice none", completion("tool_choice", "none"), Endpoint::kCompletions, nullptr},
      {"legacy functions", chat("functions", Json::array({tool["function"]})),
       Endpoint::kChatCompletions, "functions"},
      {"a legacy function_call turn", tool_call_turn, Endpoint::kChatCompletions,
       "messages[1].function_call"},
      {"a legacy function_call choice", chat("function_call", "auto"), Endpoint::kChatCompletions,
       nullptr},
      {"echo", completion("echo", true), Endpoint::kCompletions, "echo"},
      {"echo false", completion("echo", false), Endpoint::kCompletions, nullptr},
      {"suffix", completion("suffix", "end"), Endpoint::kCompletions, "suffix"},
      {"best_of above n", completion("best_of", 3), Endpoint::kCompletions, "best_of"},
      {"best_of 1", completion("best_of", 1), Endpoint::kCompletions, nullptr},
      {"vLLM's guided decoding", completion("guided_regex", "[a-z]+"), Endpoint::kCompletions,
       "guided_regex"},
      {"a field nobody knows", completion("frobnicate", 3), Endpoint::kCompletions, nullptr},
      {"vLLM's min_tokens", completion("min_tokens", 5), Endpoint::kCompletions, "min_tokens"},
      {"min_tokens 0", completion("min_tokens", 0), Endpoint::kCompletions, nullptr},
      {"the stop string in the output", completion("include_stop_str_in_output", true),
       Endpoint::kCompletions, "include_stop_str_in_output"},
      {"special tokens in the text", chat("skip_special_tokens", false), Endpoint::kChatCompletions,
       "skip_special_tokens"},
      {"special tokens skipped, as ever", chat("skip_special_tokens", true),
       Endpoint::kChatCompletions, nullptr},
      {"the prompt's logprobs", completion("prompt_logprobs", 1), Endpoint::kCompletions,
       "prompt_logprobs"},
      {"bad words", completion("bad_words", Json::array({"x"})), Endpoint::kCompletions,
       "bad_words"},
      {"no generation prompt", chat("add_generation_prompt", false), Endpoint::kChatCompletions,
       "add_generation_prompt"},
      {"the generation prompt, as ever", chat("add_generation_prompt", true),
       Endpoint::kChatCompletions, nullptr},
      {"continuing the last message", chat("continue_final_message", true),
       Endpoint::kChatCompletions, "continue_final_message"},
      {"beam search", completion("use_beam_search", true), Endpoint::kCompletions,
       "use_beam_search"},
      {"a truncated prompt", completion("truncate_prompt_tokens", 10), Endpoint::kCompletions,
       "truncate_prompt_tokens"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(c.body.dump(), c.endpoint);
    if (c.field == nullptr) {
      EXPECT_TRUE(r.ok()) << c.what << ": " << r.status();
      continue;
    }
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.field)) << c.what;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("not supported")) << c.what;
  }
}

// JSON mode on both endpoints (as vLLM has it): the request asks for a JSON
// object; a malformed response_format is refused by name.
TEST(OpenAiRequestTest, JsonModeAsksForAJsonObject) {
  for (const auto& [body, endpoint] :
       {std::pair{Chat(), Endpoint::kChatCompletions}, {Completion(), Endpoint::kCompletions}}) {
    Json b = body;
    b["response_format"] = {{"type", "json_object"}};
    absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(b.dump(), endpoint);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_JSON_OBJECT);
    b["response_format"] = {{"type", "text"}};
    r = ParseCompletionRequest(b.dump(), endpoint);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_TEXT);
    b.erase("response_format");
    r = ParseCompletionRequest(b.dump(), endpoint);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_TEXT);
  }
  // A schema travels as its text, to be read where gRPC's is; vLLM's
  // guided_json too, as an object or as text.
  const Json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}};
  for (const auto& [field, value] :
       {std::pair<const char*, Json>{
            "response_format",
            {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}}}}},
        {"guided_json", schema},
        {"guided_json", schema.dump()}}) {
    Json b = Completion();
    b[field] = value;
    absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(b.dump(), Endpoint::kCompletions);
    ASSERT_TRUE(r.ok()) << field << ": " << r.status();
    EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
    EXPECT_EQ(Json::parse(r->request.json_schema()), schema);
  }
  Json both = Chat();
  both["guided_json"] = schema;
  both["response_format"] = {{"type", "json_object"}};
  EXPECT_THAT(
      std::string(
          ParseCompletionRequest(both.dump(), Endpoint::kChatCompletions).status().message()),
      HasSubstr("guided_json"));
  for (const Json& bad : {Json("json_object"), Json{{"type", 1}}, Json::object(), Json::array(),
                          Json{{"type", "json_schema"}},
                          Json{{"type", "json_schema"}, {"json_schema", {{"name", "a"}}}},
                          Json{{"type", "json_schema"}, {"json_schema", {{"schema", true}}}}}) {
    Json b = Chat();
    b["response_format"] = bad;
    absl::StatusOr<CompletionRequest> r =
        ParseCompletionRequest(b.dump(), Endpoint::kChatCompletions);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("response_format")) << bad;
  }
}

// vLLM's stop_token_ids reach the request (the vocabulary bounds them later,
// with the other sampling parameters); anything but a list of non-negative
// 32-bit integers is refused.
TEST(OpenAiRequestTest, StopTokenIdsAreServed) {
  Json body = Completion();
  body["stop_token_ids"] = {13, 2};
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(body.dump(), Endpoint::kCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->request.stop_token_ids(), ::testing::ElementsAre(13, 2));
  for (const Json& bad : {Json(13), Json::array({-1}), Json::array({"13"}),
                          Json::array({int64_t{1} << 31}), Json::array({1.5})}) {
    body["stop_token_ids"] = bad;
    r = ParseCompletionRequest(body.dump(), Endpoint::kCompletions);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.dump();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("stop_token_ids")) << bad.dump();
  }
}

// OpenAI's logit_bias reaches the request, token ids from the keys; keys
// that are no token id and values that are no number are refused here, the
// ranges with the other sampling parameters (BuildGenerateRequest).
TEST(OpenAiRequestTest, LogitBiasIsServed) {
  for (const Endpoint e : {Endpoint::kCompletions, Endpoint::kChatCompletions}) {
    Json body = e == Endpoint::kCompletions ? Completion() : Chat();
    body["logit_bias"] = {{"50256", -100}, {"13", 2.5}};
    absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(body.dump(), e);
    ASSERT_TRUE(r.ok()) << r.status();
    const auto& bias = r->request.sampling().logit_bias();
    ASSERT_EQ(bias.size(), 2u);
    EXPECT_FLOAT_EQ(bias.at(50256), -100.f);
    EXPECT_FLOAT_EQ(bias.at(13), 2.5f);
    body["logit_bias"] = Json::object();
    r = ParseCompletionRequest(body.dump(), e);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->request.sampling().logit_bias().empty());
    for (const Json& bad :
         {Json(13), Json::array({1}), Json{{"-1", 1}}, Json{{"x", 1}}, Json{{"1.5", 1}},
          Json{{"", 1}}, Json{{"99999999999", 1}}, Json{{"05", 1}}, Json{{"+5", 1}},
          Json{{" 5", 1}}, Json{{"13", "high"}}, Json{{"13", nullptr}}}) {
      body["logit_bias"] = bad;
      r = ParseCompletionRequest(body.dump(), e);
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.dump();
      EXPECT_THAT(std::string(r.status().message()), HasSubstr("logit_bias")) << bad.dump();
    }
    // Past the limit before any entry is read.
    Json many = Json::object();
    for (int i = 0; i < 301; ++i) many[std::to_string(i)] = 1;
    body["logit_bias"] = many;
    r = ParseCompletionRequest(body.dump(), e);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("301"));
  }
}

// One prompt of token ids as a list of one list, as lm-evaluation-harness
// sends it (the OpenAI types allow it); several prompts stay refused.
TEST(OpenAiRequestTest, APromptOfIdsMayComeAsAListOfOneList) {
  Json body = Completion();
  body["prompt"] = Json::array({Json::array({1, 2, 3})});
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(body.dump(), Endpoint::kCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->request.tokens().ids(), ::testing::ElementsAre(1, 2, 3));
  for (const Json& bad : {Json::array({Json::array({1}), Json::array({2})}),
                          Json::array({Json::array()}), Json::array({Json::array({"x"})})}) {
    body["prompt"] = bad;
    r = ParseCompletionRequest(body.dump(), Endpoint::kCompletions);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.dump();
  }
}

// top_logprobs: 0 asks for nothing and needs no logprobs (LangChain sends it);
// more does.
TEST(OpenAiRequestTest, TopLogprobsZeroNeedsNoLogprobs) {
  Json body = Chat();
  body["top_logprobs"] = 0;
  absl::StatusOr<CompletionRequest> r =
      ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->request.has_logprobs());
  body["top_logprobs"] = 1;
  r = ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// chat_template_kwargs' enable_thinking reaches the chat input (other
// variables are ignored, as a template ignores what it does not read).
TEST(OpenAiRequestTest, EnableThinkingReachesTheChat) {
  Json body = Chat();
  absl::StatusOr<CompletionRequest> r =
      ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->request.chat().has_enable_thinking());
  body["chat_template_kwargs"] = {{"enable_thinking", false}, {"tools_mode", "x"}};
  r = ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->request.chat().has_enable_thinking());
  EXPECT_FALSE(r->request.chat().enable_thinking());
  for (const Json& bad : {Json({{"enable_thinking", "no"}}), Json::array({1})}) {
    body["chat_template_kwargs"] = bad;
    r = ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.dump();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("chat_template_kwargs"));
  }
}

// A message's list of text parts reads as its parts joined by newlines.
// An assistant turn's reasoning as vLLM's replies give it back
// (reasoning_content, or reasoning) reaches the chat apart from its content.
TEST(OpenAiRequestTest, AnAssistantsReasoningReachesTheChat) {
  for (const char* name : {"reasoning_content", "reasoning"}) {
    Json body = Chat();
    body["messages"].push_back({{"role", "assistant"}, {"content", "4"}, {name, "2+2"}});
    absl::StatusOr<CompletionRequest> r =
        ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
    ASSERT_TRUE(r.ok()) << r.status();
    const v1::ChatMessage& m = r->request.chat().messages(1);
    EXPECT_TRUE(m.has_reasoning()) << name;
    EXPECT_EQ(m.reasoning(), "2+2");
    EXPECT_EQ(m.content(), "4");
    EXPECT_FALSE(r->request.chat().messages(0).has_reasoning());
    body["messages"][0][name] = "a user's";
    r = ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->request.chat().messages(0).has_reasoning()) << "ignored, as vLLM does";
    body["messages"][1][name] = 3;
    r = ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(std::string("messages[1].") + name));
  }
}

TEST(OpenAiRequestTest, TextPartsAreJoinedByNewlines) {
  Json body = Chat();
  body["messages"][0]["content"] = {{{"type", "text"}, {"text", "Hello"}},
                                    {{"type", "text"}, {"text", "World"}}};
  absl::StatusOr<CompletionRequest> r =
      ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.chat().messages(0).content(), "Hello\nWorld");
}

// Every 32-bit priority is one: INT32_MIN, whose negation is not, goes to
// the front as INT32_MAX does; one past either end is refused.
TEST(OpenAiRequestTest, PriorityTakesEveryInt32) {
  auto parse = [](const std::string& priority) {
    return ParseCompletionRequest(R"({"model": "m", "prompt": "hi", "priority": )" + priority + "}",
                                  Endpoint::kCompletions);
  };
  absl::StatusOr<CompletionRequest> least = parse("-2147483648");
  ASSERT_TRUE(least.ok()) << least.status();
  EXPECT_EQ(least->request.priority(), std::numeric_limits<int32_t>::max());
  absl::StatusOr<CompletionRequest> most = parse("2147483647");
  ASSERT_TRUE(most.ok()) << most.status();
  EXPECT_EQ(most->request.priority(), -std::numeric_limits<int32_t>::max());
  EXPECT_EQ(parse("-2147483649").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parse("2147483648").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiRequestTest, AMaxTokensPastUint32IsRefusedWithTheValueSent) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(
      R"({"model": "m", "prompt": "hi", "max_tokens": 1000000000000})", Endpoint::kCompletions);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "max_tokens (1000000000000) is more than any model's context");
}

TEST(OpenAiRequestTest, IntegersBeyondInt64AreOutOfRangeNotWrapped) {
  // 2^64 - 1 wrapped to -1: top_k off, and priority -1 negated to +1, the
  // front of the queue.
  // Past 2^64 - 1 the parser holds a double: the same answer, not "must be
  // an integer"; a fraction still is not one.
  for (const char* field : {"top_k", "priority", "max_tokens", "seed", "n"}) {
    for (const char* value : {"18446744073709551615", "18446744073709551616", "-1e30"}) {
      const std::string body =
          R"({"model": "m", "prompt": "hi", ")" + std::string(field) + R"(": )" + value + "}";
      absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(body, Endpoint::kCompletions);
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << field << " " << value;
      EXPECT_THAT(std::string(r.status().message()), HasSubstr(field));
      EXPECT_THAT(std::string(r.status().message()), HasSubstr("out of range"))
          << field << " " << value;
    }
    const std::string half =
        R"({"model": "m", "prompt": "hi", ")" + std::string(field) + R"(": 2.5})";
    EXPECT_THAT(
        std::string(ParseCompletionRequest(half, Endpoint::kCompletions).status().message()),
        HasSubstr("must be an integer"))
        << field;
  }
  // A whole number written as a float is an integer up to int64's end.
  EXPECT_TRUE(ParseCompletionRequest(R"({"model": "m", "prompt": "hi", "seed": 1e16})",
                                     Endpoint::kCompletions)
                  .ok());
  absl::StatusOr<CompletionRequest> top = ParseCompletionRequest(
      R"({"model": "m", "prompt": "hi", "top_k": 9223372036854775807})", Endpoint::kCompletions);
  EXPECT_EQ(top.status().code(), absl::StatusCode::kInvalidArgument) << "still bounded to int32";
}

}  // namespace
}  // namespace cohost::server::http
