// OpenAI's tools on /v1/chat/completions, read into the chat (openai_tools.h):
// the functions and the turns of calls and results, in the client's key
// order; what each tool_choice asks of the answer; and the malformed ones,
// refused naming their field.

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/openai_request.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

// Keys out of alphabetical order: the prompt must show the client's order.
constexpr char kBody[] = R"({
  "model": "m",
  "messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"id": "call_2", "type": "function",
       "function": {"name": "get_time", "arguments": {"zone": "CET", "as": "iso"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]}
  ],
  "tools": [
    {"type": "function", "function": {"name": "get_weather", "description": "Today's weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                    "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "strict": true}}
  ]
})";

absl::StatusOr<CompletionRequest> Parse(const Json& body) {
  return ParseCompletionRequest(body.dump(), Endpoint::kChatCompletions);
}

TEST(OpenAiToolsTest, ToolsAndToolTurnsReachTheChat) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(kBody, Endpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::ChatInput& chat = r->request.chat();
  ASSERT_EQ(chat.tools_size(), 2);
  EXPECT_EQ(chat.tools(0).name(), "get_weather");
  EXPECT_EQ(chat.tools(0).description(), "Today's weather");
  EXPECT_EQ(chat.tools(0).parameters(),
            R"({"type":"object","properties":{"city":{"type":"string"},)"
            R"("days":{"type":"integer"}},"required":["city"]})");
  EXPECT_EQ(chat.tools(1).name(), "get_time");
  EXPECT_EQ(chat.tools(1).parameters(), "");
  ASSERT_EQ(chat.messages_size(), 4);
  const v1::ChatMessage& calls = chat.messages(1);
  EXPECT_EQ(calls.role(), "assistant");
  EXPECT_EQ(calls.content(), "");
  ASSERT_EQ(calls.tool_calls_size(), 2);
  EXPECT_EQ(calls.tool_calls(0).id(), "call_1");
  EXPECT_EQ(calls.tool_calls(0).name(), "get_weather");
  EXPECT_EQ(calls.tool_calls(0).arguments(), R"({"city": "Paris"})") << "the client's text";
  EXPECT_EQ(calls.tool_calls(1).arguments(), R"({"zone":"CET","as":"iso"})")
      << "an object, in its order";
  EXPECT_EQ(chat.messages(2).role(), "tool");
  EXPECT_EQ(chat.messages(2).content(), "18C");
  EXPECT_EQ(chat.messages(3).content(), "12:00");
  EXPECT_TRUE(r->tools.calls) << "auto is the default with tools";
  EXPECT_FALSE(r->tools.forced);
  EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_TEXT);
  EXPECT_EQ(r->request.stop_size(), 0);
}

// parallel_tool_calls false: one call at most, the answer ending where its
// block closes; a client's 16 stop strings leave no room for it.
TEST(OpenAiToolsTest, OneCallEndsTheAnswerAtItsClosingTag) {
  Json body = Json::parse(kBody);
  body["parallel_tool_calls"] = true;
  absl::StatusOr<CompletionRequest> r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request.stop_size(), 0);
  body["parallel_tool_calls"] = false;
  body["stop"] = {"END"};
  r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->request.stop_size(), 2);
  EXPECT_EQ(r->request.stop(1), "</tool_call>");
  body["stop"] = Json::array();
  for (int i = 0; i < 16; ++i) body["stop"].push_back(absl::StrCat("s", i));
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("at most 15 others"));
  body["tool_choice"] = "none";  // no tools offered: nothing to end
  EXPECT_TRUE(Parse(body).ok());
}

TEST(OpenAiToolsTest, EachToolChoice) {
  Json body = Json::parse(kBody);
  body["tool_choice"] = "auto";
  absl::StatusOr<CompletionRequest> r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->tools.calls);

  // "none": the model is not told of the tools; the turns of calls stay.
  body["tool_choice"] = "none";
  r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->tools.calls);
  EXPECT_EQ(r->request.chat().tools_size(), 0);
  EXPECT_EQ(r->request.chat().messages(1).tool_calls_size(), 2);

  // Named: the output is that function's arguments, held to its parameters.
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->tools.calls);
  EXPECT_EQ(r->tools.forced, "get_weather");
  EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
  EXPECT_EQ(r->request.json_schema(), r->request.chat().tools(0).parameters());
  // A function without parameters: any object.
  body["tool_choice"]["function"]["name"] = "get_time";
  r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tools.forced, "get_time");
  EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_JSON_OBJECT);

  // "required": one call of any of them.
  body["tool_choice"] = "required";
  r = Parse(body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tools.forced, "");
  EXPECT_EQ(r->request.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
  const Json schema = Json::parse(r->request.json_schema());
  EXPECT_EQ(schema["properties"]["name"]["enum"], Json::array({"get_weather", "get_time"}));
  EXPECT_EQ(schema["required"], Json::array({"name", "arguments"}));

  // Without tools, "none" and "auto" ask nothing.
  Json plain = body;
  plain.erase("tools");
  plain["messages"] = {{{"role", "user"}, {"content", "hi"}}};
  for (const char* choice : {"none", "auto"}) {
    plain["tool_choice"] = choice;
    r = Parse(plain);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->tools.calls);
  }
}

TEST(OpenAiToolsTest, MalformedToolsAreRefusedByField) {
  struct Case {
    const char* what;
    const char* path;   // a JSON pointer into kBody
    Json value;         // null: the field is removed
    const char* field;  // in the message
  };
  const Case cases[] = {
      {"tools not a list", "/tools", Json::object(), "tools"},
      {"a tool of another kind", "/tools/1/type", "web_search", "tools[1].type"},
      {"a tool without a function", "/tools/0/function", Json(), "tools[0].function"},
      {"a function without a name", "/tools/0/function/name", Json(), "tools[0].function.name"},
      {"parameters not a schema", "/tools/0/function/parameters", "object",
       "tools[0].function.parameters"},
      {"a description not text", "/tools/0/function/description", 3,
       "tools[0].function.description"},
      {"strict not a boolean", "/tools/1/function/strict", "yes", "tools[1].function.strict"},
      {"a function offered twice", "/tools/1/function/name", "get_weather",
       "tools[1].function.name"},
      {"a choice nobody knows", "/tool_choice", "always", "tool_choice"},
      {"a named choice not offered",
       "/tool_choice",
       {{"type", "function"}, {"function", {{"name", "nope"}}}},
       "tool_choice"},
      {"a named choice without its name", "/tool_choice", {{"type", "function"}}, "tool_choice"},
      {"parallel_tool_calls not a boolean", "/parallel_tool_calls", "no", "parallel_tool_calls"},
      {"calls not a list", "/messages/1/tool_calls", "f()", "messages[1].tool_calls"},
      {"a call of another kind", "/messages/1/tool_calls/0/type", "code",
       "messages[1].tool_calls[0].type"},
      {"a call without its function", "/messages/1/tool_calls/0/function", Json(),
       "messages[1].tool_calls[0].function"},
      {"a call without a name", "/messages/1/tool_calls/0/function/name", Json(),
       "messages[1].tool_calls[0].function.name"},
      {"arguments neither text nor object", "/messages/1/tool_calls/0/function/arguments", 7,
       "messages[1].tool_calls[0].function.arguments"},
      {"an id not text", "/messages/1/tool_calls/0/id", 1, "messages[1].tool_calls[0].id"},
      {"a tool_call_id not text", "/messages/2/tool_call_id", 1, "messages[2].tool_call_id"},
  };
  for (const Case& c : cases) {
    Json body = Json::parse(kBody);
    const Json::json_pointer at(c.path);
    if (c.value.is_null()) {
      body[at.parent_pointer()].erase(at.back());
    } else {
      body[at] = c.value;
    }
    absl::StatusOr<CompletionRequest> r = Parse(body);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.field)) << c.what;
  }
  // A forced call needs tools, and no response_format beside it.
  Json body = Json::parse(kBody);
  body["tool_choice"] = "required";
  body["response_format"] = {{"type", "json_object"}};
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("response_format"));
  body.erase("response_format");
  // "required" names the functions in one enum of the grammar's: at most 64.
  for (int i = 0; i < 62; ++i) {
    body["tools"].push_back({{"type", "function"}, {"function", {{"name", absl::StrCat("f", i)}}}});
  }
  EXPECT_TRUE(Parse(body).ok()) << "64 tools";
  body["tools"].push_back({{"type", "function"}, {"function", {{"name", "f64"}}}});
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("at most 64 tools"));
  body["tool_choice"] = "auto";
  EXPECT_TRUE(Parse(body).ok()) << "65 tools";
  // Tools the prompt leaves out are checked all the same.
  body["tool_choice"] = "none";
  body["tools"][1]["type"] = "web_search";
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("tools[1].type"));
  body.erase("tools");
  body["tool_choice"] = "required";
  body["messages"] = {{{"role", "user"}, {"content", "hi"}}};
  EXPECT_THAT(std::string(Parse(body).status().message()), HasSubstr("needs tools"));
}

}  // namespace
}  // namespace cohost::server::http
