// A backend whose sampler writes a scripted output, and the chat templates
// and outputs of the reasoning and tool-call tests of both front doors
// (reasoning_test.cc, tool_calls_test.cc, grpc_reasoning_test.cc).
#pragma once

#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/server/tiny_router.h"
#include "tests/support/forwarding_backend.h"

namespace cohost::testing {

// Each sampled row takes the next byte of the script (the byte tokenizer's
// ids are the bytes), then the byte tokenizer's EOS.
class ScriptedBackend : public ForwardingBackend {
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
inline constexpr char kQwen3Template[] =
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + message.role }}";

inline constexpr char kOutput[] = "<think>\nTwo and two.\n</think>\n\nIt is 4.";

// What DeepSeek-R1's template names: its markers, and a generation prompt
// that opens the block, so that its output starts inside it.
inline constexpr char kDeepSeekR1Template[] =
    "{{'<｜User｜>' + message['content']}}{%- if add_generation_prompt -%}"
    "{{'<｜Assistant｜><think>\\n'}}";
inline constexpr char kR1Output[] = "Two and two.\n</think>\n\nIt is 4.";

// Qwen3's own template (tests/data/chat_templates/qwen3.jinja), which offers
// tools, and a call as it has the model write one. Its tools' system turn
// takes more than the tiny model's default context: kLongContext.
inline std::string Qwen3ToolsTemplate() {
  std::ifstream in(std::string(COHOST_SOURCE_DIR) + "/tests/data/chat_templates/qwen3.jinja");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
inline constexpr char kWeatherCall[] =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
inline runtime::testing::TinyModelOptions LongContext() {
  runtime::testing::TinyModelOptions model;
  model.max_position_embeddings = 2048;
  return model;
}

// The tiny model on a ScriptedBackend (`*backend` is set to it), with the
// byte tokenizer and `chat_template`; `model`: its shape (a long template
// needs a longer context than the default); `think_tags`: the vocabulary has
// "<think>" and "</think>" as tokens, as a reasoning model's does (the
// script still writes bytes).
inline absl::StatusOr<std::unique_ptr<TinyRouter>> MakeScriptedRouter(
    const std::string& chat_template, ScriptedBackend** backend,
    const runtime::testing::TinyModelOptions& model = {}, bool think_tags = false) {
  auto owned = std::make_unique<ScriptedBackend>();
  *backend = owned.get();
  runtime::TokenizerSpec spec = think_tags ? runtime::testing::MakeThinkingTokenizerSpec()
                                           : runtime::testing::MakeByteTokenizerSpec();
  spec.chat_template = chat_template;
  return MakeTinyRouterOn(std::move(owned), spec, {}, {}, {}, model);
}

}  // namespace cohost::testing
