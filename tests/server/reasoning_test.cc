// A reasoning model's think block over the OpenAI chat API: the tiny model on
// a backend whose sampler writes a scripted output, with a Qwen3-style chat
// template. The block comes back as the message's `reasoning` (and
// `reasoning_content`), apart from its content, whole and streamed; raw where
// the split is off, or on /v1/completions. (gRPC's: grpc_reasoning_test.cc.)

#include <httplib.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/scripted_http.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

using cohost::testing::kDeepSeekR1Template;
using cohost::testing::kOutput;
using cohost::testing::kQwen3Template;
using cohost::testing::kR1Output;

class ReasoningTest : public ScriptedHttpTest {
 protected:
  void Start(bool split, const char* chat_template = kQwen3Template, bool think_tags = false) {
    HttpOptions options;
    options.call.split_reasoning = split;
    StartServer(chat_template, options, {}, think_tags);
  }

  // The reply's JSON, after the backend was given `output` to write.
  Json Chat(const std::string& output, Json extra = Json::object(),
            const std::string& path = "/v1/chat/completions") {
    backend_->Script(output);
    Json body{{"model", "tiny"}, {"max_tokens", 64}, {"temperature", 0}};
    if (path == "/v1/chat/completions") {
      body["messages"] = {{{"role", "user"}, {"content", "2+2?"}}};
    } else {
      body["prompt"] = "2+2?";
    }
    body.update(extra);
    httplib::Result r = client_->Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return Json();
    EXPECT_EQ(r->status, 200) << r->body;
    if (!body.value("stream", false)) return Json::parse(r->body);
    // Streamed: the chunks' deltas, joined, as a message.
    Json joined{{"content", ""}, {"reasoning", ""}, {"reasoning_content", ""}};
    for (const Json& choice : StreamedChoices(r->body)) {
      const Json& delta = choice.at("delta");
      for (const char* key : {"content", "reasoning", "reasoning_content"}) {
        if (delta.contains(key))
          joined[key] = joined[key].get<std::string>() + delta[key].get<std::string>();
      }
      if (delta.contains("reasoning")) {
        EXPECT_EQ(delta.at("reasoning"), delta.at("reasoning_content"));
      }
    }
    return joined;
  }
};

TEST_F(ReasoningTest, TheThinkBlockIsTheReasoningWholeAndStreamed) {
  Start(/*split=*/true);
  const Json whole = Chat(kOutput);
  const Json& message = whole.at("choices").at(0).at("message");
  EXPECT_EQ(message.at("content"), "It is 4.");
  EXPECT_EQ(message.at("reasoning"), "\nTwo and two.\n");
  EXPECT_EQ(message.at("reasoning_content"), "\nTwo and two.\n");
  EXPECT_EQ(whole.at("choices").at(0).at("finish_reason"), "stop");
  // Every token counts, the block's too.
  EXPECT_EQ(whole.at("usage").at("completion_tokens"), std::string(kOutput).size() + 1);

  const Json streamed = Chat(kOutput, {{"stream", true}});
  EXPECT_EQ(streamed.at("content"), "It is 4.");
  EXPECT_EQ(streamed.at("reasoning"), "\nTwo and two.\n");
  EXPECT_EQ(streamed.at("reasoning_content"), "\nTwo and two.\n");
}

TEST_F(ReasoningTest, AnAnswerWithoutABlockHasNoReasoning) {
  Start(/*split=*/true);
  const Json whole = Chat("It is 4.", {{"chat_template_kwargs", {{"enable_thinking", false}}}});
  const Json& message = whole.at("choices").at(0).at("message");
  EXPECT_EQ(message.at("content"), "It is 4.");
  EXPECT_TRUE(message.at("reasoning").is_null());
  EXPECT_TRUE(message.at("reasoning_content").is_null());
}

TEST_F(ReasoningTest, ACutOffBlockIsAllReasoning) {
  Start(/*split=*/true);
  const Json whole = Chat(kOutput, {{"max_tokens", 12}});  // "<think>\nTwo "
  const Json& message = whole.at("choices").at(0).at("message");
  EXPECT_EQ(message.at("content"), "");
  EXPECT_EQ(message.at("reasoning"), "\nTwo ");
  EXPECT_EQ(whole.at("choices").at(0).at("finish_reason"), "length");
}

TEST_F(ReasoningTest, AStopStringInsideTheBlockEndsTheReasoning) {
  Start(/*split=*/true);
  for (const bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    const Json reply = Chat(kOutput, {{"stop", {"and"}}, {"stream", stream}});
    const Json& message = stream ? reply : reply.at("choices").at(0).at("message");
    EXPECT_EQ(message.at("reasoning"), "\nTwo ");
    EXPECT_EQ(message.at("content"), "");
  }
}

TEST_F(ReasoningTest, CompletionsAndASplitTurnedOffGiveTheRawText) {
  Start(/*split=*/true);
  const Json text = Chat(kOutput, Json::object(), "/v1/completions");
  EXPECT_EQ(text.at("choices").at(0).at("text"), kOutput);
  TearDown();
  Start(/*split=*/false);
  const Json whole = Chat(kOutput);
  const Json& message = whole.at("choices").at(0).at("message");
  EXPECT_EQ(message.at("content"), kOutput);
  EXPECT_FALSE(message.contains("reasoning"));
  const Json streamed = Chat(kOutput, {{"stream", true}});
  EXPECT_EQ(streamed.at("content"), kOutput);
  EXPECT_EQ(streamed.at("reasoning"), "");
}

// A JSON response format on a reasoning model: the document follows the
// think block (JsonPhase), so the block is the reasoning and the document
// the content. Where the vocabulary has no think tags as tokens, or the
// reasoning is not split off, the document starts at once and the output is
// all content.
TEST_F(ReasoningTest, AJsonAnswerFollowsItsThinkBlock) {
  const std::string output = "<think>\nAn object.\n</think>\n\n{\"a\": 1}";
  const Json json = {{"response_format", {{"type", "json_object"}}}};
  for (const char* chat_template : {kQwen3Template, cohost::testing::kDeepSeekR1Template}) {
    SCOPED_TRACE(chat_template);
    const bool r1 = chat_template != std::string(kQwen3Template);
    const std::string written = r1 ? output.substr(std::string("<think>").size()) : output;
    Start(/*split=*/true, chat_template, /*think_tags=*/true);
    for (const bool stream : {false, true}) {
      SCOPED_TRACE(stream);
      Json extra = json;
      extra["stream"] = stream;
      const Json reply = Chat(written, extra);
      const Json& message = stream ? reply : reply.at("choices").at(0).at("message");
      EXPECT_EQ(message.at("reasoning_content"), "\nAn object.\n");
      EXPECT_EQ(message.at("content"), "{\"a\": 1}");
    }
    TearDown();
    Start(/*split=*/true, chat_template, /*think_tags=*/false);
    const Json plain = Chat("{\"a\": 1}", json);
    const Json& at_once = plain.at("choices").at(0).at("message");
    EXPECT_EQ(at_once.at("content"), "{\"a\": 1}");
    EXPECT_FALSE(at_once.contains("reasoning_content")) << "no block to split";
    TearDown();
  }
}

// DeepSeek-R1's prompt opens the block: the output is reasoning until its
// "</think>".
TEST_F(ReasoningTest, AnOutputInsideABlockThePromptOpenedIsReasoningUntilItCloses) {
  Start(/*split=*/true, kDeepSeekR1Template);
  for (const bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    const Json reply = Chat(kR1Output, {{"stream", stream}});
    const Json& message = stream ? reply : reply.at("choices").at(0).at("message");
    EXPECT_EQ(message.at("reasoning"), "Two and two.\n");
    EXPECT_EQ(message.at("content"), "It is 4.");
  }
  // Text on /v1/completions is the client's own prompt: raw.
  EXPECT_EQ(Chat(kR1Output, Json::object(), "/v1/completions").at("choices").at(0).at("text"),
            kR1Output);
}

}  // namespace
}  // namespace cohost::server::http
