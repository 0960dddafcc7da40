// The OpenAI front door on the tiny model whose sampler writes a scripted
// output (scripted_backend.h): the fixture of the reasoning and tool-call
// tests of the HTTP API (reasoning_test.cc, tool_calls_test.cc).
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/http_front_door.h"
#include "tests/server/scripted_backend.h"

namespace cohost::server::http {

class ScriptedHttpTest : public ::testing::Test {
 protected:
  // Serves "tiny" with `chat_template`; client_ talks to it.
  void StartServer(const std::string& chat_template, const HttpOptions& options = {},
                   const runtime::testing::TinyModelOptions& model = {}, bool think_tags = false) {
    absl::StatusOr<std::unique_ptr<cohost::testing::TinyRouter>> tiny =
        cohost::testing::MakeScriptedRouter(chat_template, &backend_, model, think_tags);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<HttpFrontDoor>> door = HttpFrontDoor::Start(deps, options);
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", door_->port());
    client_->set_read_timeout(30, 0);
  }
  // A stream's chunks' choices, in order (an error event fails the test).
  static std::vector<nlohmann::json> StreamedChoices(const std::string& body) {
    std::vector<nlohmann::json> choices;
    size_t pos = 0;
    while ((pos = body.find("data: {", pos)) != std::string::npos) {
      const size_t end = body.find("\n\n", pos);
      const nlohmann::json chunk = nlohmann::json::parse(body.substr(pos + 6, end - pos - 6));
      pos = end;
      EXPECT_FALSE(chunk.contains("error")) << chunk.dump();
      for (const nlohmann::json& c : chunk.value("choices", nlohmann::json::array())) {
        choices.push_back(c);
      }
    }
    return choices;
  }

  void TearDown() override {
    client_.reset();
    door_.reset();
    tiny_.reset();
  }

  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  cohost::testing::ScriptedBackend* backend_ = nullptr;  // tiny_'s
  std::unique_ptr<cohost::testing::TinyRouter> tiny_;
  std::unique_ptr<HttpFrontDoor> door_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace cohost::server::http
