// A reasoning model's think block over gRPC: GenerateRequest.split_reasoning
// puts the block of a model whose template writes one in
// GenerateResponse.reasoning, the rest in text; unset, the text is raw. And
// split_tool_calls: the answer's calls in GenerateResponse.tool_calls (or
// their pieces, stream_tool_calls), and a tool_choice's forced call. The tiny model on a backend
// whose sampler writes a scripted output. (Apart from the HTTP front door's reasoning_test: gRPC's
// library is not instrumented, so its servers stay out of the ThreadSanitizer
// run.)

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/scripted_backend.h"

namespace cohost::server {
namespace {

using cohost::testing::kDeepSeekR1Template;
using cohost::testing::kOutput;
using cohost::testing::kQwen3Template;
using cohost::testing::kR1Output;
using cohost::testing::ScriptedBackend;

class GrpcReasoningTest : public ::testing::Test {
 protected:
  void Start(const std::string& chat_template = kQwen3Template,
             const runtime::testing::TinyModelOptions& model = {}, bool think_tags = false) {
    absl::StatusOr<std::unique_ptr<cohost::testing::TinyRouter>> tiny =
        cohost::testing::MakeScriptedRouter(chat_template, &backend_, model, think_tags);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(tiny_->router.get(), &metrics_, ServerOptions{});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Inference::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    tiny_.reset();
  }

  // The stream's text and reasoning, each joined, after the backend was
  // given `output` to write.
  struct Split {
    std::string text, reasoning;
    size_t tokens = 0;
    grpc::Status status;
  };
  Split Generate(const std::string& output, bool split, int max_tokens = 64,
                 v1::ResponseFormat format = v1::RESPONSE_FORMAT_TEXT) {
    backend_->Script(output);
    v1::GenerateRequest r;
    r.set_response_format(format);
    r.set_model("tiny");
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content("2+2?");
    r.mutable_sampling()->set_temperature(0);
    r.set_max_tokens(max_tokens);
    r.set_split_reasoning(split);
    const cohost::testing::StreamResult result = cohost::testing::Generate(*stub_, r);
    Split out{result.text, "", result.token_ids.size(), result.status};
    for (const v1::GenerateResponse& message : result.messages)
      out.reasoning += message.reasoning();
    return out;
  }

  // "Weather in Paris?", offering get_weather, greedy, up to 200 tokens.
  static v1::GenerateRequest WeatherChat() {
    v1::GenerateRequest r;
    r.set_model("tiny");
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content("Weather in Paris?");
    v1::Tool* tool = r.mutable_chat()->add_tools();
    tool->set_name("get_weather");
    tool->set_parameters(R"({"type": "object", "properties": {"city": {"type": "string"}}})");
    r.mutable_sampling()->set_temperature(0);
    r.set_max_tokens(200);
    return r;
  }
  // The stream's calls, in order.
  static std::vector<v1::ToolCall> CallsOf(const cohost::testing::StreamResult& result) {
    std::vector<v1::ToolCall> calls;
    for (const v1::GenerateResponse& message : result.messages) {
      calls.insert(calls.end(), message.tool_calls().begin(), message.tool_calls().end());
    }
    return calls;
  }

  ServerMetrics metrics_;
  ScriptedBackend* backend_ = nullptr;  // tiny_'s
  std::unique_ptr<cohost::testing::TinyRouter> tiny_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

// Split only when asked: the text stays the model's own by default.
TEST_F(GrpcReasoningTest, TheThinkBlockIsSplitWhenTheRequestAsks) {
  Start();
  const Split split = Generate(kOutput, /*split=*/true);
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.text, "It is 4.");
  EXPECT_EQ(split.reasoning, "\nTwo and two.\n");
  EXPECT_EQ(split.tokens, std::string(kOutput).size() + 1)
      << "the block's tokens go out too, and the end-of-sequence";

  const Split raw = Generate(kOutput, /*split=*/false);
  EXPECT_EQ(raw.text, kOutput);
  EXPECT_EQ(raw.reasoning, "");
}

// Cut off inside the closing tag: what the splitter held back, a possible
// tag's start, goes out with the end, as reasoning (the block never closed).
TEST_F(GrpcReasoningTest, WhatTheSplitterHeldBackGoesOutAtTheEnd) {
  Start();
  const std::string output = kOutput;
  const size_t cut = output.find("</think>") + 5;  // "...</thi"
  const Split split = Generate(kOutput, /*split=*/true, static_cast<int>(cut));
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.reasoning, "\nTwo and two.\n</thi");
  EXPECT_EQ(split.text, "");
}

// A JSON response format follows the think block where the reasoning is
// split off (and the vocabulary has the tags as tokens); unsplit, the output
// is the document alone, as text.
TEST_F(GrpcReasoningTest, AJsonAnswerFollowsItsThinkBlockWhenSplit) {
  Start(kQwen3Template, {}, /*think_tags=*/true);
  const std::string output = "<think>\nAn object.\n</think>\n\n{\"a\": 1}";
  const Split split = Generate(output, /*split=*/true, 64, v1::RESPONSE_FORMAT_JSON_OBJECT);
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.reasoning, "\nAn object.\n");
  EXPECT_EQ(split.text, "{\"a\": 1}");
  const Split raw = Generate("{\"a\": 1}", /*split=*/false, 64, v1::RESPONSE_FORMAT_JSON_OBJECT);
  EXPECT_EQ(raw.text, "{\"a\": 1}");
  EXPECT_EQ(raw.reasoning, "");
}

// A chat with tools: split_tool_calls gives the answer's calls as
// GenerateResponse.tool_calls, apart from its text (and its reasoning);
// unset, the text is the model's own.
TEST_F(GrpcReasoningTest, ToolCallsAreSplitWhenTheRequestAsks) {
  Start(cohost::testing::Qwen3ToolsTemplate(), cohost::testing::LongContext());
  const std::string output =
      std::string("<think>\nA tool.\n</think>\n\nLet me look.\n") + cohost::testing::kWeatherCall;
  for (const bool split : {true, false}) {
    backend_->Script(output);
    v1::GenerateRequest r = WeatherChat();
    r.set_split_reasoning(true);
    r.set_split_tool_calls(split);
    const cohost::testing::StreamResult result = cohost::testing::Generate(*stub_, r);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    std::string reasoning;
    for (const v1::GenerateResponse& message : result.messages) reasoning += message.reasoning();
    const std::vector<v1::ToolCall> calls = CallsOf(result);
    EXPECT_EQ(reasoning, "\nA tool.\n");
    if (!split) {
      EXPECT_EQ(result.text, std::string("Let me look.\n") + cohost::testing::kWeatherCall);
      EXPECT_TRUE(calls.empty());
      continue;
    }
    EXPECT_EQ(result.text, "Let me look.");
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].id().substr(0, 5), "call_");
    EXPECT_EQ(calls[0].id().size(), 29u);
    EXPECT_EQ(calls[0].name(), "get_weather");
    EXPECT_EQ(calls[0].arguments(), R"({"city":"Paris"})");
    EXPECT_EQ(result.token_ids.size(), output.size() + 1) << "every token goes out";
  }
}

// stream_tool_calls: each call comes in pieces as the model writes it, the
// first with its index, id and name, the rest with its index and more of
// its arguments; joined by index, they are the calls split_tool_calls
// gives whole. A call the output is cut inside comes with the arguments
// written so far (split_tool_calls alone leaves it text).
TEST_F(GrpcReasoningTest, StreamedToolCallsComeInPiecesThatJoinIntoTheCalls) {
  Start(cohost::testing::Qwen3ToolsTemplate(), cohost::testing::LongContext());
  const std::string output = std::string("Let me look.\n") + cohost::testing::kWeatherCall +
                             "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                             "{\"city\": \"Oslo\", \"days\": [1, 2]}}\n</tool_call>";
  backend_->Script(output);
  v1::GenerateRequest r = WeatherChat();
  r.set_split_tool_calls(true);
  const cohost::testing::StreamResult whole = cohost::testing::Generate(*stub_, r);
  ASSERT_TRUE(whole.status.ok()) << whole.status.error_message();
  const std::vector<v1::ToolCall> want = CallsOf(whole);
  ASSERT_EQ(want.size(), 2u);
  EXPECT_EQ(want[0].index(), 0u);
  EXPECT_EQ(want[1].index(), 1u);
  EXPECT_EQ(want[1].arguments(), R"({"city":"Oslo","days":[1,2]})");

  backend_->Script(output);
  r = WeatherChat();
  r.set_stream_tool_calls(true);  // split_tool_calls unset: implied
  const cohost::testing::StreamResult streamed = cohost::testing::Generate(*stub_, r);
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  EXPECT_EQ(streamed.text, "Let me look.");
  std::vector<v1::ToolCall> joined;
  for (const v1::ToolCall& piece : CallsOf(streamed)) {
    if (piece.index() == joined.size()) {
      EXPECT_EQ(piece.id().substr(0, 5), "call_") << "a call's first piece has its id";
      EXPECT_EQ(piece.name(), "get_weather");
      joined.push_back(piece);
      continue;
    }
    ASSERT_EQ(piece.index() + 1, joined.size()) << "a further piece is of the last call begun";
    EXPECT_EQ(piece.id(), "");
    EXPECT_EQ(piece.name(), "");
    joined.back().mutable_arguments()->append(piece.arguments());
  }
  ASSERT_EQ(joined.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(joined[i].arguments(), want[i].arguments());
  EXPECT_EQ(streamed.token_ids.size(), output.size() + 1) << "every token goes out";

  // Cut inside the first call's arguments.
  const size_t cut = std::string(output).find("Paris") + 2;
  for (const bool stream : {true, false}) {
    backend_->Script(output);
    r = WeatherChat();
    r.set_split_tool_calls(true);
    r.set_stream_tool_calls(stream);
    r.set_max_tokens(static_cast<uint32_t>(cut));
    const cohost::testing::StreamResult result = cohost::testing::Generate(*stub_, r);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.last().finish_reason(), v1::FINISH_REASON_LENGTH);
    if (!stream) {
      EXPECT_TRUE(CallsOf(result).empty());
      EXPECT_EQ(result.text, output.substr(0, cut));
      continue;
    }
    EXPECT_EQ(result.text, "Let me look.");
    std::string arguments;
    for (const v1::ToolCall& piece : CallsOf(result)) arguments += piece.arguments();
    EXPECT_EQ(arguments, R"({"city":"Pa)");
  }
}

// tool_choice over gRPC: a named function's call is the whole answer, given
// as one tool_calls entry (split_tool_calls) or as its arguments' text;
// "required"'s is the call's JSON. A choice the chat cannot take is
// INVALID_ARGUMENT naming the field.
TEST_F(GrpcReasoningTest, AForcedCallIsTheWholeAnswer) {
  Start(cohost::testing::Qwen3ToolsTemplate(), cohost::testing::LongContext());
  auto request = [](v1::ToolChoice choice, const std::string& function, bool split) {
    v1::GenerateRequest r = WeatherChat();
    r.mutable_chat()->set_tool_choice(choice);
    r.mutable_chat()->set_tool_choice_function(function);
    r.set_split_tool_calls(split);
    return r;
  };
  const std::string arguments = R"({"city": "Paris"})";
  backend_->Script(arguments);
  cohost::testing::StreamResult result = cohost::testing::Generate(
      *stub_, request(v1::TOOL_CHOICE_FUNCTION, "get_weather", /*split=*/true));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.text, "");
  std::vector<v1::ToolCall> calls = CallsOf(result);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name(), "get_weather");
  EXPECT_EQ(calls[0].arguments(), R"({"city":"Paris"})");
  EXPECT_EQ(calls[0].id().substr(0, 5), "call_");

  backend_->Script(arguments);
  result = cohost::testing::Generate(
      *stub_, request(v1::TOOL_CHOICE_FUNCTION, "get_weather", /*split=*/false));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.text, arguments);
  EXPECT_TRUE(CallsOf(result).empty());

  // Streamed: the arguments from their first byte, in pieces of one call.
  backend_->Script(arguments);
  v1::GenerateRequest streamed = request(v1::TOOL_CHOICE_FUNCTION, "get_weather", true);
  streamed.set_stream_tool_calls(true);
  result = cohost::testing::Generate(*stub_, streamed);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.text, "");
  calls = CallsOf(result);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls[0].name(), "get_weather");
  std::string joined;
  for (const v1::ToolCall& piece : calls) {
    EXPECT_EQ(piece.index(), 0u);
    joined += piece.arguments();
  }
  EXPECT_EQ(joined, R"({"city":"Paris"})");

  const std::string call = R"({"name": "get_weather", "arguments": {"city": "Paris"}})";
  backend_->Script(call);
  result = cohost::testing::Generate(*stub_, request(v1::TOOL_CHOICE_REQUIRED, "", true));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  calls = CallsOf(result);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name(), "get_weather");

  result = cohost::testing::Generate(*stub_, request(v1::TOOL_CHOICE_FUNCTION, "nope", true));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(result.status.error_message(),
            "tool_choice names a function that tools does not offer");
}

// DeepSeek-R1's chat prompt opens the block: the output is reasoning until
// its "</think>".
TEST_F(GrpcReasoningTest, AnOutputInsideABlockThePromptOpenedIsReasoningUntilItCloses) {
  Start(kDeepSeekR1Template);
  const Split split = Generate(kR1Output, /*split=*/true);
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.reasoning, "Two and two.\n");
  EXPECT_EQ(split.text, "It is 4.");
}

}  // namespace
}  // namespace cohost::server
