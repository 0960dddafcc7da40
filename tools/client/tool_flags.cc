// `cohost generate`'s tool flags. See tool_flags.h.

#include "tools/client/tool_flags.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/common/json_file.h"

namespace cohost::tools {
namespace {

// Ordered: a tool's parameters keep the file's key order, as the prompt
// shows them.
using Json = nlohmann::ordered_json;

// One of OpenAI's tools ({"type": "function", "function": {...}}, or the
// function alone) as the chat's.
absl::Status ReadTool(const Json& t, size_t i, v1::Tool* out) {
  const std::string where = absl::StrCat("--tools: [", i, "]");
  const Json& f = t.is_object() && t.contains("function") ? t["function"] : t;
  if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) {
    return absl::InvalidArgumentError(where + " is not a function with a name");
  }
  out->set_name(f["name"].get<std::string>());
  if (f.contains("description") && !f["description"].is_null()) {
    if (!f["description"].is_string()) {
      return absl::InvalidArgumentError(where + ".description is not a string");
    }
    out->set_description(f["description"].get<std::string>());
  }
  if (f.contains("strict") && !f["strict"].is_null()) {
    if (!f["strict"].is_boolean()) {
      return absl::InvalidArgumentError(where + ".strict is not true or false");
    }
    out->set_strict(f["strict"].get<bool>());
  }
  if (f.contains("parameters") && !f["parameters"].is_null()) {
    if (!f["parameters"].is_object()) {
      return absl::InvalidArgumentError(where + ".parameters is not a JSON schema (an object)");
    }
    out->set_parameters(f["parameters"].dump());
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<FlagSpec> ToolFlagSpecs() {
  return {
      {"tools", "FILE", "offer the functions in FILE (OpenAI's tools list) to --chat's chat"},
      {"tool-choice", "C", "auto, none, required, or the name of the function to call (--chat)"},
      {"no-parallel-tool-calls", "", "at most one call: the answer ends as it closes (--chat)"},
  };
}

absl::Status AddToolsFromArgs(const ParsedArgs& args, v1::GenerateRequest* request) {
  const std::optional<std::string> path = args.Get("tools");
  const std::optional<std::string> choice = args.Get("tool-choice");
  const bool one_call = args.Has("no-parallel-tool-calls");
  if (!path && !choice && !one_call) return absl::OkStatus();
  if (!request->has_chat()) {
    return absl::InvalidArgumentError(
        "--tools, --tool-choice and --no-parallel-tool-calls need --chat");
  }
  v1::ChatInput* chat = request->mutable_chat();
  if (path) {
    ASSIGN_OR_RETURN(const std::string text, ReadFlagFile("--tools", *path));
    ASSIGN_OR_RETURN(const Json list, ParseFlagJson<Json>("--tools", *path, text));
    if (!list.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tools ", *path, ": not a JSON list of functions"));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (absl::Status s = ReadTool(list[i], i, chat->add_tools()); !s.ok()) return s;
    }
  }
  if (choice && choice->empty()) {
    return absl::InvalidArgumentError("--tool-choice: auto, none, required or a function's name");
  }
  if (choice == "none") {
    chat->set_tool_choice(v1::TOOL_CHOICE_NONE);
  } else if (choice == "required") {
    chat->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  } else if (choice && *choice != "auto") {
    chat->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
    chat->set_tool_choice_function(*choice);
  }
  if (one_call) chat->set_parallel_tool_calls(false);
  return absl::OkStatus();
}

}  // namespace cohost::tools
