// Function calling over the OpenAI chat API, end to end: the tiny model on a
// backend whose sampler writes a scripted answer, with Qwen3's real chat
// template (which offers tools). The answer's <tool_call> blocks come back
// as the message's tool_calls with finish_reason "tool_calls", whole and
// streamed alike; tool_choice "none" leaves the tools out of the prompt and
// the answer as text; a named choice's output, held to the function's
// parameters, is its arguments (finish_reason "stop", as OpenAI's); a model
// whose template has no tools refuses them.

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/scripted_http.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const Json kWeather = {{"type", "function"},
                       {"function",
                        {{"name", "get_weather"},
                         {"description", "The weather in a city"},
                         {"parameters",
                          {{"type", "object"},
                           {"properties", {{"city", {{"type", "string"}}}}},
                           {"required", {"city"}}}}}}};

constexpr const char* kCall = cohost::testing::kWeatherCall;

class ToolCallsTest : public ScriptedHttpTest {
 protected:
  void Start(const std::string& chat_template = cohost::testing::Qwen3ToolsTemplate(),
             bool think_tags = false) {
    StartServer(chat_template, {}, cohost::testing::LongContext(), think_tags);
  }

  static Json Body(Json extra = Json::object()) {
    Json body{{"model", "tiny"},
              {"max_tokens", 200},
              {"temperature", 0},
              {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}},
              {"tools", {kWeather}}};
    body.update(extra);
    return body;
  }

  httplib::Result Post(const std::string& output, const Json& body) {
    backend_->Script(output);
    return client_->Post("/v1/chat/completions", body.dump(), "application/json");
  }

  // The whole reply's first choice.
  Json Whole(const std::string& output, Json extra = Json::object()) {
    httplib::Result r = Post(output, Body(std::move(extra)));
    EXPECT_TRUE(r);
    if (!r) return Json();
    EXPECT_EQ(r->status, 200) << r->body;
    return Json::parse(r->body).at("choices").at(0);
  }

  // The stream's chunks' choices, in order.
  std::vector<Json> Streamed(const std::string& output, Json extra = Json::object()) {
    extra["stream"] = true;
    httplib::Result r = Post(output, Body(std::move(extra)));
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    return StreamedChoices(r->body);
  }
};

void ExpectWeatherCall(const Json& call) {
  EXPECT_THAT(call.at("id").get<std::string>(), StartsWith("call_"));
  EXPECT_EQ(call.at("id").get<std::string>().size(), 29u);
  EXPECT_EQ(call.at("type"), "function");
  EXPECT_EQ(call.at("function").at("name"), "get_weather");
  EXPECT_EQ(call.at("function").at("arguments"), R"({"city":"Paris"})");
}

// The calls a stream's chunks make, joined as OpenAI's clients join them:
// a call's first piece has its id, type and name; each further one, its
// index and more of its arguments.
std::vector<Json> JoinedCalls(const std::vector<Json>& chunks) {
  std::vector<Json> calls;
  for (const Json& c : chunks) {
    if (!c.at("delta").contains("tool_calls")) continue;
    for (const Json& piece : c.at("delta").at("tool_calls")) {
      const size_t index = piece.at("index").get<size_t>();
      if (index == calls.size()) {
        EXPECT_TRUE(piece.contains("id")) << "a call begins with its id";
        calls.push_back(piece);
        calls.back().erase("index");
        continue;
      }
      EXPECT_EQ(index + 1, calls.size()) << "pieces come call after call";
      EXPECT_FALSE(piece.contains("id") || piece.at("function").contains("name"));
      if (index + 1 != calls.size()) continue;
      calls.back()["function"]["arguments"] =
          calls.back()["function"]["arguments"].get<std::string>() +
          piece.at("function").at("arguments").get<std::string>();
    }
  }
  return calls;
}

TEST_F(ToolCallsTest, TheAnswersCallsAreToolCalls) {
  Start();
  const Json choice = Whole(std::string("Let me look.\n") + kCall);
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  const Json& message = choice.at("message");
  EXPECT_EQ(message.at("content"), "Let me look.");
  ASSERT_EQ(message.at("tool_calls").size(), 1u);
  ExpectWeatherCall(message.at("tool_calls").at(0));

  // Only calls: the content is null, as OpenAI's.
  const Json two = Whole(std::string(kCall) + "\n" + kCall);
  EXPECT_TRUE(two.at("message").at("content").is_null());
  ASSERT_EQ(two.at("message").at("tool_calls").size(), 2u);
  EXPECT_NE(two.at("message").at("tool_calls").at(0).at("id"),
            two.at("message").at("tool_calls").at(1).at("id"));

  // No call: a plain answer, finish_reason "stop", no tool_calls.
  const Json plain = Whole("It is sunny.");
  EXPECT_EQ(plain.at("finish_reason"), "stop");
  EXPECT_EQ(plain.at("message").at("content"), "It is sunny.");
  EXPECT_FALSE(plain.at("message").contains("tool_calls"));
}

// Streamed, a call goes out in pieces as the model writes it: its id and
// name once its arguments open, then their text.
TEST_F(ToolCallsTest, StreamedACallComesInPiecesAsItIsWritten) {
  Start();
  const std::vector<Json> chunks = Streamed(std::string("Let me look.\n") + kCall + "\n" + kCall);
  std::string content;
  for (const Json& c : chunks) {
    const Json& delta = c.at("delta");
    if (delta.contains("content") && delta["content"].is_string()) content += delta["content"];
  }
  EXPECT_EQ(content, "Let me look.");
  const std::vector<Json> calls = JoinedCalls(chunks);
  ASSERT_EQ(calls.size(), 2u);
  for (const Json& call : calls) ExpectWeatherCall(call);
  EXPECT_NE(calls[0].at("id"), calls[1].at("id"));
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back().at("finish_reason"), "tool_calls");

  // A stream of calls alone starts with them, its content null.
  const std::vector<Json> only = Streamed(kCall);
  ASSERT_FALSE(only.empty());
  EXPECT_EQ(only.front().at("delta").at("role"), "assistant");
  EXPECT_TRUE(only.front().at("delta").at("content").is_null());
  ASSERT_EQ(only.front().at("delta").at("tool_calls").size(), 1u);
  EXPECT_EQ(only.back().at("finish_reason"), "tool_calls");
}

// parallel_tool_calls false: the answer ends where its first call's block
// closes; the second is never written.
TEST_F(ToolCallsTest, OneCallAtMost) {
  Start();
  const std::string output = std::string("Looking.\n") + kCall + "\n" + kCall;
  const Json body = Body({{"parallel_tool_calls", false}});
  httplib::Result r = Post(output, body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json reply = Json::parse(r->body);
  const Json& choice = reply["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "Looking.");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  ExpectWeatherCall(choice["message"]["tool_calls"][0]);
  EXPECT_LT(reply["usage"]["completion_tokens"].get<size_t>(), output.size() / 2 + 20);
  const std::vector<Json> chunks = Streamed(output, {{"parallel_tool_calls", false}});
  EXPECT_EQ(JoinedCalls(chunks).size(), 1u);
  EXPECT_EQ(chunks.back()["finish_reason"], "tool_calls");
}

TEST_F(ToolCallsTest, ReasoningThenACall) {
  Start();
  const Json choice = Whole(std::string("<think>\nThe weather tool.\n</think>\n\n") + kCall);
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  EXPECT_EQ(choice.at("message").at("reasoning"), "\nThe weather tool.\n");
  EXPECT_TRUE(choice.at("message").at("content").is_null());
  ASSERT_EQ(choice.at("message").at("tool_calls").size(), 1u);
}

// On a reasoning model (the think tags tokens of its vocabulary), a forced
// call follows the think block, as any JSON answer does there: the block is
// the reasoning, the call the rest.
TEST_F(ToolCallsTest, AForcedCallFollowsTheThinkBlock) {
  Start(cohost::testing::Qwen3ToolsTemplate(), /*think_tags=*/true);
  const Json choice =
      Whole("<think>\nThe weather tool.\n</think>\n\n{\"city\": \"Paris\"}",
            {{"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}});
  EXPECT_EQ(choice.at("message").at("reasoning"), "\nThe weather tool.\n");
  ASSERT_EQ(choice.at("message").at("tool_calls").size(), 1u);
  ExpectWeatherCall(choice.at("message").at("tool_calls").at(0));
}

// A function offered twice is refused in the body's terms (CheckTools says
// it of the chat's tools[1].name).
TEST_F(ToolCallsTest, AFunctionOfferedTwiceIsRefusedNamingItsField) {
  Start();
  httplib::Result r = Post("ok", Body({{"tools", {kWeather, kWeather}}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const Json error = Json::parse(r->body).at("error");
  EXPECT_EQ(error.at("param"), "tools[1].function.name");
  EXPECT_EQ(error.at("message"),
            "tools[1].function.name \"get_weather\" names a function already offered");
}

TEST_F(ToolCallsTest, ACallCutOffIsTextAndFinishesByLength) {
  Start();
  const std::string output = std::string("Sure.\n") + kCall;
  const Json choice = Whole(output, {{"max_tokens", 30}});
  EXPECT_EQ(choice.at("finish_reason"), "length");
  EXPECT_EQ(choice.at("message").at("content"), output.substr(0, 30));
  EXPECT_FALSE(choice.at("message").contains("tool_calls"));
  // Streamed, a block is a call once its arguments open (its pieces have
  // gone out): cut off inside them, the call has what was written of them.
  const size_t inside = output.find("Par") + 3;
  const std::vector<Json> chunks = Streamed(output, {{"max_tokens", inside}});
  const std::vector<Json> calls = JoinedCalls(chunks);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["function"]["arguments"], R"({"city":"Par)");
  EXPECT_EQ(chunks.back()["finish_reason"], "length");
}

TEST_F(ToolCallsTest, ToolChoiceNoneOffersNoToolsAndParsesNothing) {
  Start();
  httplib::Result offered = Post("ok", Body());
  httplib::Result none = Post(kCall, Body({{"tool_choice", "none"}}));
  ASSERT_TRUE(offered && none);
  ASSERT_EQ(offered->status, 200) << offered->body;
  ASSERT_EQ(none->status, 200) << none->body;
  const Json with = Json::parse(offered->body), without = Json::parse(none->body);
  // The tools' system turn is hundreds of bytes (a token each here).
  EXPECT_GT(with["usage"]["prompt_tokens"].get<int>(),
            without["usage"]["prompt_tokens"].get<int>() + 300);
  const Json& choice = without["choices"][0];
  EXPECT_EQ(choice["message"]["content"], kCall);
  EXPECT_EQ(choice["finish_reason"], "stop");
}

TEST_F(ToolCallsTest, ANamedChoiceIsOneCallOfItsArguments) {
  Start();
  const Json named = {
      {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}};
  const Json choice = Whole(R"({"city": "Paris"})", named);
  EXPECT_EQ(choice.at("finish_reason"), "stop") << "a named call's, as OpenAI's";
  EXPECT_TRUE(choice.at("message").at("content").is_null());
  ASSERT_EQ(choice.at("message").at("tool_calls").size(), 1u);
  ExpectWeatherCall(choice.at("message").at("tool_calls").at(0));

  const std::vector<Json> chunks = Streamed(R"({"city": "Paris"})", named);
  ASSERT_FALSE(chunks.empty());
  const std::vector<Json> calls = JoinedCalls(chunks);
  ASSERT_EQ(calls.size(), 1u);
  ExpectWeatherCall(calls[0]);
  EXPECT_EQ(chunks.back().at("finish_reason"), "stop");

  // "required": one call of any function, written as the model writes one.
  const Json required = Whole(R"({"name": "get_weather", "arguments": {"city": "Paris"}})",
                              {{"tool_choice", "required"}});
  EXPECT_EQ(required.at("finish_reason"), "tool_calls");
  ASSERT_EQ(required.at("message").at("tool_calls").size(), 1u);
  ExpectWeatherCall(required.at("message").at("tool_calls").at(0));
}

// A named function whose parameters the grammar cannot hold is refused in
// the body's terms (tool_choice and the function), not as a json_schema the
// client never sent: a malformed keyword always, a value bound it cannot
// hold (a multipleOf finer than 6 decimals) where the function is strict. Not strict, the bounds it
// cannot hold are left to the model and the call is held to the rest.
TEST_F(ToolCallsTest, AForcedCallsSchemaOutsideTheSubsetIsNamedAsTheFunctions) {
  Start();
  const Json named = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  const auto refusal = [&](const Json& tool) {
    httplib::Result r = Post("{}", Body({{"tools", {tool}}, {"tool_choice", named}}));
    EXPECT_TRUE(r);
    if (!r) return std::string();
    EXPECT_EQ(r->status, 400);
    const Json error = Json::parse(r->body)["error"];
    EXPECT_EQ(error["param"], "tool_choice");
    return error["message"].get<std::string>();
  };
  Json tool = kWeather;
  tool["function"]["parameters"]["properties"]["city"]["minLength"] = "two";
  EXPECT_THAT(
      refusal(tool),
      ::testing::StartsWith("tool_choice holds the answer to the parameters of get_weather at "));
  tool = kWeather;
  tool["function"]["parameters"]["properties"]["days"] = {{"type", "number"},
                                                          {"multipleOf", 0.0000001}};
  tool["function"]["strict"] = true;
  EXPECT_THAT(refusal(tool), ::testing::HasSubstr("multipleOf"));
  tool["function"]["strict"] = false;
  const Json choice = Whole(R"({"city": "Paris"})", {{"tools", {tool}}, {"tool_choice", named}});
  ASSERT_EQ(choice.at("message").at("tool_calls").size(), 1u);
  ExpectWeatherCall(choice.at("message").at("tool_calls").at(0));
}

TEST_F(ToolCallsTest, AModelWithoutToolsRefusesThem) {
  Start(cohost::testing::kQwen3Template);  // Qwen3's think switch, no tools
  httplib::Result r = Post(kCall, Body());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Json::parse(r->body)["error"]["message"].get<std::string>(),
              HasSubstr("chat template has no tool calling"));
  // Without them (tool_choice "none") the chat is served.
  r = Post("It is sunny.", Body({{"tool_choice", "none"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace cohost::server::http
