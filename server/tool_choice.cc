// A chat's tools: their checks, and what tool_choice asks. See tool_choice.h.

#include "server/tool_choice.h"

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/loader_json.h"
#include "runtime/sampling/json_schema.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/sampling/schema_values.h"

namespace cohost::server {
namespace {

using Json = nlohmann::json;

// Keywords of a non-strict function's parameters that its forced call
// leaves to the model (the prompt tells the model of them), as OpenAI's
// non-strict calls are not held to them, and a call that is not strict is
// refused for none of them. The grammar holds none of these:
constexpr std::string_view kUnheldBounds[] = {"minProperties", "maxProperties", "uniqueItems",
                                              "nullable"};
// and these only where it can (json_schema.h: number bounds and multiples
// to six decimals, some patterns and formats, enums and consts of scalars):
constexpr std::string_view kValueBounds[] = {"minimum",          "maximum",    "exclusiveMinimum",
                                             "exclusiveMaximum", "multipleOf", "pattern",
                                             "format",           "enum",       "const"};
// The keywords that hold schemas within a schema, or stand for it.
constexpr std::string_view kStructure[] = {"properties", "required", "additionalProperties",
                                           "items",      "$defs",    "definitions",
                                           "anyOf",      "oneOf",    "allOf",
                                           "$ref"};

// `schema` read as the request builder reads it (runtime::ParseJsonStrict's
// limits), where the grammar holds it; nullopt where not.
std::optional<Json> HeldSchema(const std::string& schema) {
  absl::StatusOr<Json> parsed = runtime::ParseJsonStrict(schema, "json_schema");
  if (!parsed.ok() || !runtime::JsonSchema::Compile(*parsed).ok()) return std::nullopt;
  return *std::move(parsed);
}

bool Compiles(const std::string& schema) { return HeldSchema(schema).has_value(); }

bool IsOneOf(std::string_view key, std::span<const std::string_view> keys) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// `schema`'s type is `name`, or a list with it.
bool NamesType(const Json& schema, const char* name) {
  const auto type = schema.find("type");
  if (type == schema.end()) return false;
  if (type->is_array()) return std::find(type->begin(), type->end(), Json(name)) != type->end();
  return *type == name;
}

// The grammar holds `schema`'s own value bounds as written: it compiles
// without the schemas within it, and a number's bounds need no rounding in
// (runtime::NumberBoundsOf's units). (Beside a combination or a $ref,
// bounds are refused.)
bool HoldsOwnBounds(const nlohmann::ordered_json& schema) {
  nlohmann::ordered_json own = nlohmann::ordered_json::object();
  for (const auto& [key, value] : schema.items()) {
    if (key == "anyOf" || key == "oneOf" || key == "allOf" || key == "$ref") return false;
    if (!IsOneOf(key, kStructure)) own[key] = value;
  }
  const std::optional<Json> probe = HeldSchema(own.dump());
  if (!probe) return false;
  for (const bool integer : {false, true}) {
    bool narrowed = false;
    if (NamesType(*probe, integer ? "integer" : "number") &&
        runtime::NumberBoundsOf(*probe, integer, &narrowed).ok() && narrowed) {
      return false;
    }
  }
  return true;
}

// An enum or const of strings alone: the grammar held those before it held
// any other value bound, so they are kept even where the rest are dropped.
bool IsStringValues(std::string_view key, const nlohmann::ordered_json& value) {
  if (key == "const") return value.is_string();
  return key == "enum" && value.is_array() &&
         std::all_of(value.begin(), value.end(), [](const auto& v) { return v.is_string(); });
}

// How LoosenBounds goes over a schema.
struct Loosening {
  bool keep_held = true;  // keep the value bounds the grammar holds where they are
  int visits = 0;         // schemas gone over, at most kMaxLooseningVisits
};
// Past the compiler's own bound on schemas: a schema that needs more is
// refused by it in any case.
constexpr int kMaxLooseningVisits = 4 * runtime::kMaxSchemaNodes;

// Drops from `schema` and the schemas within it the bounds above that are
// left to the model: every one the grammar never holds, and, at each
// schema, its value bounds where the grammar cannot hold them there (or
// everywhere, without keep_held), but for enums and consts of strings.
void DropLooseBounds(nlohmann::ordered_json& schema, int depth, Loosening& l) {
  if (!schema.is_object() || depth > runtime::kMaxSchemaDepth * 2) return;
  if (++l.visits > kMaxLooseningVisits) return;
  for (const std::string_view key : kUnheldBounds) schema.erase(std::string(key));
  const auto loose = [&](const std::string_view key) {
    const auto it = schema.find(std::string(key));
    return it != schema.end() && !IsStringValues(key, *it);
  };
  if (std::any_of(std::begin(kValueBounds), std::end(kValueBounds), loose)) {
    bool held = l.keep_held && HoldsOwnBounds(schema);
    // A multipleOf the grammar cannot hold (finer than its decimals) goes
    // alone where that keeps the rest held.
    if (!held && l.keep_held && schema.erase("multipleOf") > 0) held = HoldsOwnBounds(schema);
    if (!held) {
      for (const std::string_view key : kValueBounds) {
        if (loose(key)) schema.erase(std::string(key));
      }
    }
  }
  for (const char* each : {"properties", "$defs", "definitions"}) {
    auto it = schema.find(each);
    if (it == schema.end() || !it->is_object()) continue;
    for (auto& [name, sub] : it->items()) DropLooseBounds(sub, depth + 1, l);
  }
  for (const char* one : {"items", "additionalProperties"}) {
    if (auto it = schema.find(one); it != schema.end()) DropLooseBounds(*it, depth + 1, l);
  }
  for (const char* list : {"anyOf", "oneOf", "allOf"}) {
    auto it = schema.find(list);
    if (it == schema.end() || !it->is_array()) continue;
    for (auto& sub : *it) DropLooseBounds(sub, depth + 1, l);
  }
}

// DropLooseBounds over `root`. (A $ref's target is among the schemas gone
// over: the grammar takes no other place for one to point to.)
void LoosenBounds(nlohmann::ordered_json& root, bool keep_held) {
  Loosening l{.keep_held = keep_held};
  DropLooseBounds(root, 0, l);
}

// What REQUIRED holds the answer to where a function's parameters are
// outside the grammar's subset: one call of an offered function, its
// arguments any object.
std::string AnyCallSchema(const google::protobuf::RepeatedPtrField<v1::Tool>& tools) {
  Json names = Json::array();
  for (const v1::Tool& t : tools) names.push_back(t.name());
  const Json schema = {{"type", "object"},
                       {"properties",
                        {{"name", {{"type", "string"}, {"enum", std::move(names)}}},
                         {"arguments", {{"type", "object"}, {"additionalProperties", true}}}}},
                       {"required", {"name", "arguments"}},
                       {"additionalProperties", false}};
  return schema.dump();
}

// The schema a forced call's arguments are held to: a strict function's
// parameters as written; another's without the bounds it leaves to the
// model (each schema's held where the grammar holds them there, and all of
// them where it cannot hold them all together: its limits on patterns); null
// where they are no schema at all (none, {}, or only such bounds: any object).
// (`keep_held` false: all of them.) `fallback` is set where they all went
// though some were to be kept.
nlohmann::ordered_json HeldArguments(const v1::Tool& tool, bool keep_held,
                                     ForcedFallback* fallback) {
  nlohmann::ordered_json schema =
      nlohmann::ordered_json::parse(tool.parameters(), nullptr, /*allow_exceptions=*/false);
  if (!tool.strict() && schema.is_object()) {
    nlohmann::ordered_json held = schema;
    LoosenBounds(held, keep_held);
    if (keep_held && !Compiles(held.dump())) {
      held = schema;  // they cannot be held together: all of them go
      LoosenBounds(held, /*keep_held=*/false);
      *fallback = ForcedFallback::kNoValueBounds;
    }
    schema = std::move(held);
  }
  if (!schema.is_object() || schema.empty()) return nullptr;
  return schema;
}

// `schema` or a schema within it has a $ref (bounded: CheckTools parsed it
// within its depth limit).
bool HasRef(const nlohmann::ordered_json& schema) {
  if (schema.is_object()) {
    if (schema.contains("$ref")) return true;
    for (const auto& [key, value] : schema.items()) {
      if (HasRef(value)) return true;
    }
  }
  if (schema.is_array()) {
    for (const auto& value : schema) {
      if (HasRef(value)) return true;
    }
  }
  return false;
}

// Points each $ref within `schema` ("#", "#/$defs/A", ...) to the same
// place once `schema` is moved to `base` ("#/$defs/f"). A $ref that is no
// pointer into the schema ("#anchor", another document) is left for the
// grammar to refuse.
void RebaseRefs(nlohmann::ordered_json& schema, std::string_view base) {
  if (schema.is_object()) {
    for (auto& [key, value] : schema.items()) {
      if (key != "$ref" || !value.is_string()) {
        RebaseRefs(value, base);
        continue;
      }
      const std::string& path = value.get_ref<const std::string&>();
      if (path == "#" || path.starts_with("#/")) value = std::string(base) + path.substr(1);
    }
  }
  if (schema.is_array()) {
    for (auto& value : schema) RebaseRefs(value, base);
  }
}

// The calls' schema of CallSchema, where the grammar holds it (each
// non-strict function's value bounds kept where the grammar holds them,
// or, without `keep_held`, none; `fallback` as HeldArguments sets it).
std::optional<std::string> HeldCallsSchema(
    const google::protobuf::RepeatedPtrField<v1::Tool>& tools, bool keep_held,
    ForcedFallback* fallback) {
  nlohmann::ordered_json calls = nlohmann::ordered_json::array();
  nlohmann::ordered_json defs = nlohmann::ordered_json::object();
  for (const v1::Tool& t : tools) {
    nlohmann::ordered_json arguments = HeldArguments(t, keep_held, fallback);
    if (arguments.is_null()) arguments = {{"type", "object"}, {"additionalProperties", true}};
    if (HasRef(arguments)) {
      const std::string base = absl::StrCat("#/$defs/", t.name());
      RebaseRefs(arguments, base);
      defs[t.name()] = std::move(arguments);
      arguments = {{"$ref", base}};
    }
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", t.name()}}}, {"arguments", arguments}}},
                     {"required", {"name", "arguments"}},
                     {"additionalProperties", false}});
  }
  nlohmann::ordered_json schema =
      calls.size() == 1 ? calls[0] : nlohmann::ordered_json{{"anyOf", calls}};
  if (!defs.empty()) schema["$defs"] = std::move(defs);
  std::string text = schema.dump();
  if (!Compiles(text)) return std::nullopt;
  return text;
}

// What REQUIRED holds the answer to: one call of an offered function, its
// arguments held as a forced call of that function is (objects told apart
// by their "name", runtime/sampling/json_schema.h). A function's
// parameters with a $ref move under the root's $defs, named for the
// function, so that its references still point into them. Where the
// grammar cannot hold the calls' schema with the non-strict functions'
// value bounds (their patterns together past its limit), without them;
// where not even so (a strict function's keyword outside its subset, its
// limits), AnyCallSchema. `fallback`: which of those it came to.
std::string CallSchema(const google::protobuf::RepeatedPtrField<v1::Tool>& tools,
                       ForcedFallback* fallback) {
  for (const bool keep_held : {true, false}) {
    ForcedFallback held_fallback =
        keep_held ? ForcedFallback::kNone : ForcedFallback::kNoValueBounds;
    if (std::optional<std::string> held = HeldCallsSchema(tools, keep_held, &held_fallback)) {
      *fallback = held_fallback;
      return *held;
    }
  }
  *fallback = ForcedFallback::kAnyArguments;
  return AnyCallSchema(tools);
}

}  // namespace

std::string_view ForcedFallbackName(ForcedFallback fallback) {
  switch (fallback) {
    case ForcedFallback::kNoValueBounds:
      return "no_value_bounds";
    case ForcedFallback::kAnyArguments:
      return "any_arguments";
    case ForcedFallback::kNone:
      break;
  }
  return "";
}

std::optional<runtime::ToolCallSplitter> ToolOutput::Splitter(bool stream) const {
  if (forced) return runtime::ToolCallSplitter::Forced(*forced, stream);
  if (calls) return runtime::ToolCallSplitter(stream);
  return std::nullopt;
}

bool IsToolName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

absl::Status CheckJsonObject(const std::string& text, const std::string& what) {
  ASSIGN_OR_RETURN(const Json parsed, runtime::ParseJsonStrict(text, what));
  if (!parsed.is_object()) return absl::InvalidArgumentError(what + " must be a JSON object");
  return absl::OkStatus();
}

absl::Status CheckTools(const v1::ChatInput& chat) {
  if (chat.tools_size() > kMaxTools) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat input has ", chat.tools_size(), " tools, at most ", kMaxTools));
  }
  absl::flat_hash_set<std::string_view> names;
  for (int i = 0; i < chat.tools_size(); ++i) {
    const v1::Tool& tool = chat.tools(i);
    const std::string where = absl::StrCat("tools[", i, "]");
    if (!IsToolName(tool.name())) {
      return absl::InvalidArgumentError(where + ".name must be 1-64 of [A-Za-z0-9_-]");
    }
    if (!names.insert(tool.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name \"", tool.name(), "\" names a function already offered"));
    }
    if (!tool.parameters().empty()) {
      RETURN_IF_ERROR(CheckJsonObject(tool.parameters(), where + ".parameters"));
    }
  }
  return absl::OkStatus();
}

bool AsksToolChoice(const v1::GenerateRequest& request) {
  if (!request.has_chat()) return false;
  const v1::ChatInput& chat = request.chat();
  return chat.tool_choice() != v1::TOOL_CHOICE_AUTO || !chat.tool_choice_function().empty() ||
         (chat.has_parallel_tool_calls() && !chat.parallel_tool_calls());
}

absl::StatusOr<ToolOutput> ApplyToolChoice(v1::GenerateRequest* request) {
  ToolOutput out;
  if (!request->has_chat()) return out;
  v1::ChatInput* chat = request->mutable_chat();
  const v1::ToolChoice choice = chat->tool_choice();
  if (!v1::ToolChoice_IsValid(choice)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tool_choice must be AUTO (0), NONE (1), REQUIRED (2) or FUNCTION (3), got %d", choice));
  }
  const std::string named = chat->tool_choice_function();
  if ((choice == v1::TOOL_CHOICE_FUNCTION) == named.empty()) {
    return absl::InvalidArgumentError(
        "tool_choice FUNCTION names its function in tool_choice_function, and only it does");
  }
  const bool one_call = chat->has_parallel_tool_calls() && !chat->parallel_tool_calls();
  chat->set_tool_choice(v1::TOOL_CHOICE_AUTO);
  chat->clear_tool_choice_function();
  chat->clear_parallel_tool_calls();

  const bool forced = choice == v1::TOOL_CHOICE_REQUIRED || choice == v1::TOOL_CHOICE_FUNCTION;
  if (chat->tools_size() == 0) {
    if (forced) return absl::InvalidArgumentError("tool_choice needs tools to choose from");
    return out;
  }
  // NONE: the model is not told of them (checked all the same), so that it
  // answers in text.
  if (choice == v1::TOOL_CHOICE_NONE) {
    chat->clear_tools();
    return out;
  }
  out.calls = true;
  if (!forced) {
    // At most one call: the answer ends where its block closes (the closing
    // tag a stop string, so the block the splitter reads is unclosed, its
    // JSON whole).
    if (one_call) {
      if (request->stop_size() >= runtime::kMaxStopStrings) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parallel_tool_calls false ends the answer at a stop string: give at most ",
            runtime::kMaxStopStrings - 1, " others"));
      }
      request->add_stop(std::string(runtime::kToolCallClose));
    }
    return out;
  }
  if (request->response_format() != v1::RESPONSE_FORMAT_TEXT || !request->json_schema().empty()) {
    return absl::InvalidArgumentError(
        "tool_choice cannot force a call with a response_format or json_schema (the call's "
        "arguments are its JSON)");
  }
  if (choice == v1::TOOL_CHOICE_REQUIRED) {
    // The grammar's enum of names has room for so many.
    if (chat->tools_size() > runtime::kMaxSchemaEnum) {
      return absl::InvalidArgumentError(
          absl::StrCat("tool_choice \"required\" takes at most ", runtime::kMaxSchemaEnum,
                       " tools (", chat->tools_size(), " given); name the function instead"));
    }
    request->set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
    request->set_json_schema(CallSchema(chat->tools(), &out.fallback));
    out.forced = "";
    return out;
  }
  const auto chosen = std::find_if(chat->tools().begin(), chat->tools().end(),
                                   [&](const v1::Tool& tool) { return tool.name() == named; });
  if (chosen == chat->tools().end()) {
    return absl::InvalidArgumentError("tool_choice names a function that tools does not offer");
  }
  // A function's arguments are an object: parameters of no schema at all
  // hold them to any object, not to any JSON value. A strict function's
  // schema goes as the client wrote it.
  const nlohmann::ordered_json schema = HeldArguments(*chosen, /*keep_held=*/true, &out.fallback);
  if (schema.is_null()) {
    request->set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
  } else {
    request->set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
    request->set_json_schema(chosen->strict() ? chosen->parameters() : schema.dump());
  }
  out.forced = named;
  return out;
}

absl::Status InToolTerms(const ToolOutput& tools, absl::Status status) {
  constexpr std::string_view kSchema = "json_schema";
  const std::string_view message(status.message().data(), status.message().size());
  if (!tools.forced || !message.starts_with(kSchema)) return status;
  const std::string whose = tools.forced->empty()
                                ? "the call's schema"
                                : absl::StrCat("the parameters of ", *tools.forced);
  return absl::Status(status.code(), absl::StrCat("tool_choice holds the answer to ", whose,
                                                  std::string(message.substr(kSchema.size()))));
}

}  // namespace cohost::server
