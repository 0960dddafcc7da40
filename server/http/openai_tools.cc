// OpenAI's tools and tool turns -> ChatInput. See openai_tools.h.

#include "server/http/openai_tools.h"

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/json_rewrite.h"
#include "server/http/request_fields.h"

namespace cohost::server::http {
namespace {

using Json = nlohmann::json;

// The body's objects that keep the client's key order (Json sorts them):
// the tools' parameters, and calls' arguments given as objects.
struct OrderedTexts {
  std::map<int64_t, std::string> parameters;                     // by tool
  std::map<std::pair<int64_t, int64_t>, std::string> arguments;  // by message and call
};

OrderedTexts ReadOrdered(std::string_view text) {
  OrderedTexts out;
  auto is = [](const runtime::JsonStep& step, std::string_view key) { return step.key == key; };
  runtime::RewriteJsonValues(
      text, runtime::JsonStyle::kCompact,
      [&](runtime::JsonPath p) {
        return (p.size() == 4 && is(p[0], "tools") && p[1].index >= 0 && is(p[2], "function") &&
                is(p[3], "parameters")) ||
               (p.size() == 6 && is(p[0], "messages") && p[1].index >= 0 &&
                is(p[2], "tool_calls") && p[3].index >= 0 && is(p[4], "function") &&
                is(p[5], "arguments"));
      },
      [&](runtime::JsonPath p, std::string value) {
        if (p[0].key == "tools") {
          out.parameters[p[1].index] = std::move(value);
        } else {
          out.arguments[{p[1].index, p[3].index}] = std::move(value);
        }
      });
  return out;
}

bool NonEmpty(const Json* v) { return v != nullptr && !(v->is_array() && v->empty()); }

// An optional string field of `object`, into *out.
absl::Status OptionalString(const Json& object, const char* name, const std::string& where,
                            std::string* out) {
  const Json* v = Field(object, name);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return Bad(absl::StrCat(where, ".", name), "must be a string");
  *out = v->get<std::string>();
  return absl::OkStatus();
}

// messages[i].tool_calls (an assistant's) and tool_call_id (a tool's result,
// which the known templates do not write).
absl::Status ParseMessageTools(const Json& messages, const OrderedTexts& ordered,
                               v1::ChatInput* chat) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    std::string unused_id;
    if (absl::Status s = OptionalString(m, "tool_call_id", field, &unused_id); !s.ok()) return s;
    const Json* calls = Field(m, "tool_calls");
    if (calls == nullptr) continue;
    if (!calls->is_array()) return Bad(field + ".tool_calls", "must be a list");
    v1::ChatMessage* message = chat->mutable_messages(static_cast<int>(i));
    for (size_t k = 0; k < calls->size(); ++k) {
      const Json& call = (*calls)[k];
      const std::string where = absl::StrCat(field, ".tool_calls[", k, "]");
      if (!call.is_object()) return Bad(where, "must be an object");
      const Json* type = Field(call, "type");
      if (type != nullptr && *type != "function")
        return Bad(where + ".type", "must be \"function\"");
      const Json* function = Field(call, "function");
      if (function == nullptr || !function->is_object()) {
        return Bad(where + ".function", "is required (an object of name and arguments)");
      }
      v1::ToolCall* out = message->add_tool_calls();
      if (absl::Status s = OptionalString(call, "id", where, out->mutable_id()); !s.ok()) return s;
      const Json* name = Field(*function, "name");
      if (name == nullptr || !name->is_string())
        return Bad(where + ".function.name", "is required");
      out->set_name(name->get<std::string>());
      // OpenAI's is the object's text; an object is taken too, as vLLM takes it.
      const Json* arguments = Field(*function, "arguments");
      if (arguments == nullptr) {
        out->set_arguments("{}");
      } else if (arguments->is_string()) {
        out->set_arguments(arguments->get<std::string>());  // BuildGenerateRequest parses it
      } else if (arguments->is_object()) {
        auto it = ordered.arguments.find({static_cast<int64_t>(i), static_cast<int64_t>(k)});
        if (it == ordered.arguments.end())
          return Bad(where + ".function.arguments", "is malformed");
        out->set_arguments(it->second);
      } else {
        return Bad(where + ".function.arguments", "must be a JSON object's text");
      }
    }
  }
  return absl::OkStatus();
}

// tools[i]: {"type": "function", "function": {"name", "description",
// "parameters", "strict"}}.
absl::Status ParseTool(const Json& tool, size_t i, const OrderedTexts& ordered, v1::Tool* out) {
  const std::string where = absl::StrCat("tools[", i, "]");
  if (!tool.is_object()) return Bad(where, "must be an object");
  const Json* type = Field(tool, "type");
  if (type == nullptr || *type != "function") {
    return Bad(where + ".type", "must be \"function\" (the only kind of tool served)");
  }
  const Json* function = Field(tool, "function");
  if (function == nullptr || !function->is_object()) {
    return Bad(where + ".function", "is required (an object with a name)");
  }
  const Json* name = Field(*function, "name");
  if (name == nullptr || !name->is_string()) return Bad(where + ".function.name", "is required");
  out->set_name(name->get<std::string>());
  if (absl::Status s =
          OptionalString(*function, "description", where + ".function", out->mutable_description());
      !s.ok()) {
    return s;
  }
  if (const Json* parameters = Field(*function, "parameters")) {
    if (!parameters->is_object()) {
      return Bad(where + ".function.parameters", "must be a JSON schema (an object)");
    }
    auto it = ordered.parameters.find(static_cast<int64_t>(i));
    if (it == ordered.parameters.end()) return Bad(where + ".function.parameters", "is malformed");
    out->set_parameters(it->second);
  }
  // `strict` asks that calls keep to the whole schema: only a forced call is
  // held to one here (server/tool_choice.h).
  if (const Json* strict = Field(*function, "strict")) {
    if (!strict->is_boolean()) return Bad(where + ".function.strict", "must be true or false");
    out->set_strict(strict->get<bool>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseChatTools(const Json& body, std::string_view text, v1::GenerateRequest* out) {
  const Json* list = Field(body, "tools");
  if (list != nullptr && !list->is_array()) return Bad("tools", "must be a list of functions");
  const Json& messages = body.at("messages");  // a list, as ParseMessages found
  bool any_calls = false;
  for (const Json& m : messages) any_calls = any_calls || NonEmpty(Field(m, "tool_calls"));
  const OrderedTexts ordered = NonEmpty(list) || any_calls ? ReadOrdered(text) : OrderedTexts{};
  v1::ChatInput* chat = out->mutable_chat();
  if (absl::Status s = ParseMessageTools(messages, ordered, chat); !s.ok()) return s;

  // tool_choice: a mode's name, or the function named.
  if (const Json* c = Field(body, "tool_choice")) {
    const Json* function = c->is_object() ? Field(*c, "function") : nullptr;
    const Json* name =
        function != nullptr && function->is_object() ? Field(*function, "name") : nullptr;
    if (*c == "none") {
      chat->set_tool_choice(v1::TOOL_CHOICE_NONE);
    } else if (*c == "required") {
      chat->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
    } else if (c->is_object() && Field(*c, "type") != nullptr && (*c)["type"] == "function" &&
               name != nullptr && name->is_string() &&
               !name->get_ref<const std::string&>().empty()) {
      chat->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
      chat->set_tool_choice_function(name->get<std::string>());
    } else if (*c != "auto") {
      return Bad("tool_choice",
                 "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                 "\"function\": {\"name\": ...}}");
    }
  }
  if (const Json* parallel = Field(body, "parallel_tool_calls")) {
    if (!parallel->is_boolean()) return Bad("parallel_tool_calls", "must be true or false");
    chat->set_parallel_tool_calls(parallel->get<bool>());
  }
  if (list == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < list->size(); ++i) {
    if (absl::Status s = ParseTool((*list)[i], i, ordered, chat->add_tools()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status InBodyTerms(absl::Status status) {
  const std::string_view message(status.message().data(), status.message().size());
  for (const std::string_view field : {"tool_choice", "parallel_tool_calls"}) {
    if (message.starts_with(field) && message.substr(field.size()).starts_with(' ')) {
      return WithParam(std::move(status), field);
    }
  }
  // The chat's paths (CheckTools', ChatFrom's) in the body's words: a tool's
  // "tools[i].name" / ".parameters" and a call's
  // "messages[i].tool_calls[k].name" / ".arguments" are under "function.".
  const auto text = [](std::string_view v) { return absl::string_view(v.data(), v.size()); };
  const auto index = [&](size_t at) {  // past "[digits]" at `at`, or npos
    size_t i = at;
    if (i >= message.size() || message[i] != '[') return std::string_view::npos;
    while (++i < message.size() && absl::ascii_isdigit(static_cast<unsigned char>(message[i]))) {
    }
    return i > at + 1 && i < message.size() && message[i] == ']' ? i + 1 : std::string_view::npos;
  };
  size_t path_end = std::string_view::npos;
  if (message.starts_with("tools[")) {
    path_end = index(5);
  } else if (message.starts_with("messages[")) {
    const size_t m = index(8);
    constexpr std::string_view kCalls = ".tool_calls";
    if (m != std::string_view::npos && message.substr(m).starts_with(kCalls)) {
      path_end = index(m + kCalls.size());
    }
  }
  if (path_end == std::string_view::npos || !message.substr(path_end).starts_with(".")) {
    return status;
  }
  const std::string_view rest = message.substr(path_end + 1);
  for (const std::string_view field : {"name", "parameters", "arguments"}) {
    if (!rest.starts_with(field)) continue;
    const std::string param =
        absl::StrCat(text(message.substr(0, path_end + 1)), "function.", text(field));
    return WithParam(
        absl::Status(status.code(), absl::StrCat(param, text(rest.substr(field.size())))), param);
  }
  return status;
}

}  // namespace cohost::server::http
