// A reasoning model's think block over both front doors: the tiny model on a
// backend whose sampler writes a scripted output, with a Qwen3-style chat
// template. Over the OpenAI chat API the block comes back as the message's
// `reasoning` (and `reasoning_content`), apart from its content, whole and
// streamed; raw where the split is off, or on /v1/completions. Over gRPC it
// comes in GenerateResponse.reasoning when the request sets split_reasoning.

#include <httplib.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/http_front_door.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"
#include "tests/support/forwarding_backend.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

// Each sampled row takes the next byte of the script (the byte tokenizer's
// ids are the bytes), then the byte tokenizer's EOS.
class ScriptedBackend : public cohost::testing::ForwardingBackend {
 public:
  ScriptedBackend() : ForwardingBackend(kernels::MakeCpuBackend(1)) {}
  void Script(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(text.begin(), text.end());
    next_ = 0;
  }
  void SampleRows(const float* x, int32_t rows, int32_t width, const kernels::SampleSpec* specs,
                  int32_t* out) override {
    ForwardingBackend::SampleRows(x, rows, width, specs, out);
    std::lock_guard<std::mutex> lock(mu_);
    for (int32_t r = 0; r < rows; ++r) {
      out[r] = next_ < script_.size() ? static_cast<unsigned char>(script_[next_++]) : kEos;
    }
  }

 private:
  static constexpr int32_t kEos = 256;  // MakeByteTokenizerSpec's
  std::mutex mu_;
  std::vector<char> script_;
  size_t next_ = 0;
};

// What a Qwen3 template names: ChatML, the switch and the block.
constexpr char kQwen3Template[] =
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + message.role }}";

constexpr char kOutput[] = "<think>\nTwo and two.\n</think>\n\nIt is 4.";

// What DeepSeek-R1's template names: its markers, and a generation prompt
// that opens the block, so that its output starts inside it.
constexpr char kDeepSeekR1Template[] =
    "{{'<｜User｜>' + message['content']}}{%- if add_generation_prompt -%}"
    "{{'<｜Assistant｜><think>\\n'}}";
constexpr char kR1Output[] = "Two and two.\n</think>\n\nIt is 4.";

class ReasoningTest : public ::testing::Test {
 protected:
  void Start(bool split, const char* chat_template = kQwen3Template) {
    auto backend = std::make_unique<ScriptedBackend>();
    backend_ = backend.get();
    runtime::TokenizerSpec spec = runtime::testing::MakeByteTokenizerSpec();
    spec.chat_template = chat_template;
    absl::StatusOr<std::unique_ptr<cohost::testing::TinyRouter>> tiny =
        cohost::testing::MakeTinyRouterOn(std::move(backend), spec, {});
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    HttpOptions options;
    options.call.split_reasoning = split;
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<HttpFrontDoor>> door = HttpFrontDoor::Start(deps, options);
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", door_->port());
    client_->set_read_timeout(30, 0);
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
    client_.reset();
    door_.reset();
    tiny_.reset();
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
    size_t pos = 0;
    while ((pos = r->body.find("data: {", pos)) != std::string::npos) {
      const size_t end = r->body.find("\n\n", pos);
      const Json chunk = Json::parse(r->body.substr(pos + 6, end - pos - 6));
      pos = end;
      EXPECT_FALSE(chunk.contains("error")) << chunk.dump();
      if (!chunk.contains("choices") || chunk.at("choices").empty()) continue;
      const Json& delta = chunk.at("choices").at(0).at("delta");
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

  // The gRPC stream's text and reasoning, each joined, after the backend was
  // given `output` to write.
  struct Split {
    std::string text, reasoning;
    size_t tokens = 0;
    grpc::Status status;
  };
  Split Generate(const std::string& output, bool split, int max_tokens = 64) {
    backend_->Script(output);
    v1::GenerateRequest r;
    r.set_model("tiny");
    r.mutable_chat()->add_messages()->set_content("2+2?");
    r.mutable_chat()->mutable_messages(0)->set_role("user");
    r.mutable_sampling()->set_temperature(0);
    r.set_max_tokens(max_tokens);
    r.set_split_reasoning(split);
    const cohost::testing::StreamResult result = cohost::testing::Generate(*stub_, r);
    Split out{result.text, "", result.token_ids.size(), result.status};
    for (const v1::GenerateResponse& m : result.messages) out.reasoning += m.reasoning();
    return out;
  }

  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  ScriptedBackend* backend_ = nullptr;  // tiny_'s
  std::unique_ptr<cohost::testing::TinyRouter> tiny_;
  std::unique_ptr<HttpFrontDoor> door_;
  std::unique_ptr<httplib::Client> client_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
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

// gRPC splits only when asked: its text stays the model's own by default.
TEST_F(ReasoningTest, GrpcSplitsTheThinkBlockWhenTheRequestAsks) {
  Start(/*split=*/false);  // the HTTP API's setting does not apply
  const Split split = Generate(kOutput, /*split=*/true);
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.text, "It is 4.");
  EXPECT_EQ(split.reasoning, "\nTwo and two.\n");
  EXPECT_EQ(split.tokens, std::string(kOutput).size() + 1) << "the block's tokens go out too, "
                                                              "and the end-of-sequence";

  const Split raw = Generate(kOutput, /*split=*/false);
  EXPECT_EQ(raw.text, kOutput);
  EXPECT_EQ(raw.reasoning, "");
}

// Cut off inside the closing tag: what the splitter held back, a possible
// tag's start, goes out with the end, as reasoning (the block never closed).
TEST_F(ReasoningTest, GrpcSendsWhatTheSplitterHeldBackAtTheEnd) {
  Start(/*split=*/true);
  const std::string output = kOutput;
  const size_t cut = output.find("</think>") + 5;  // "...</thi"
  const Split split = Generate(kOutput, /*split=*/true, static_cast<int>(cut));
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.reasoning, "\nTwo and two.\n</thi");
  EXPECT_EQ(split.text, "");
}

// DeepSeek-R1's prompt opens the block: the output is reasoning until its
// "</think>", over both front doors (gRPC when asked).
TEST_F(ReasoningTest, AnOutputInsideABlockThePromptOpenedIsReasoningUntilItCloses) {
  Start(/*split=*/true, kDeepSeekR1Template);
  for (const bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    const Json reply = Chat(kR1Output, {{"stream", stream}});
    const Json& message = stream ? reply : reply.at("choices").at(0).at("message");
    EXPECT_EQ(message.at("reasoning"), "Two and two.\n");
    EXPECT_EQ(message.at("content"), "It is 4.");
  }
  const Split split = Generate(kR1Output, /*split=*/true);
  ASSERT_TRUE(split.status.ok()) << split.status.error_message();
  EXPECT_EQ(split.reasoning, "Two and two.\n");
  EXPECT_EQ(split.text, "It is 4.");
  // Text on /v1/completions is the client's own prompt: raw.
  EXPECT_EQ(Chat(kR1Output, Json::object(), "/v1/completions").at("choices").at(0).at("text"),
            kR1Output);
}

}  // namespace
}  // namespace cohost::server::http
