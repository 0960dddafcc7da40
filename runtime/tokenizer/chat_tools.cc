// Qwen's Hermes-style tools as the chat templates write them. See chat_tools.h.

#include "runtime/tokenizer/chat_tools.h"

#include <optional>
#include <utility>

#include "runtime/tokenizer/json_rewrite.h"

namespace cohost::runtime {

std::string PythonJson(std::string_view json_text) {
  std::optional<std::string> out = RewriteJson(json_text, JsonStyle::kPython);
  return out ? *std::move(out) : std::string(json_text);
}

std::string ToolJson(const ChatTool& tool) {
  std::string out = R"({"type": "function", "function": {"name": )";
  AppendJsonString(tool.name, &out);
  if (!tool.description.empty()) {
    out.append(R"(, "description": )");
    AppendJsonString(tool.description, &out);
  }
  if (!tool.parameters.empty()) {
    out.append(R"(, "parameters": )");
    out.append(PythonJson(tool.parameters));
  }
  out.append("}}");
  return out;
}

}  // namespace cohost::runtime
