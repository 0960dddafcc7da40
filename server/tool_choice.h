// A chat's tools (cohost.v1.ChatInput): the one home of their checks and of
// what tool_choice and parallel_tool_calls ask of the answer, for both front
// doors (the HTTP one reads OpenAI's fields into the chat;
// BuildGenerateRequest calls what is here).
//
//   AUTO      the tools are offered; the answer's calls are the model's;
//   NONE      the tools are checked but left out of the prompt: the answer
//             is text (vLLM offers them and leaves the answer unparsed);
//   REQUIRED  the answer is one call of an offered function, held by the
//             JSON grammar to {"name": <one of them>, "arguments": <its
//             arguments, held as FUNCTION holds them>}, with several tools
//             the name first (so at most runtime::kMaxSchemaEnum tools);
//             a function's parameters with a $ref move under the root's
//             $defs, named for it; where the grammar cannot hold the calls'
//             schema with the non-strict functions' value bounds, they go;
//             where not even so, every call's arguments are any object;
//   FUNCTION  the answer is the arguments of one call of the function named,
//             held to its parameters, as vLLM does: all of them where the
//             tool is strict; else but for the value bounds the grammar
//             cannot hold, which the model is told of in the prompt and
//             OpenAI's non-strict calls are not held to (such a call is
//             refused for none): those it never holds (min/maxProperties,
//             uniqueItems, OpenAPI's nullable) at every schema in it
//             (properties so named kept), a multipleOf it cannot hold alone
//             where the rest hold, and a schema's others (number bounds,
//             multipleOf, pattern, format, an enum or const of other values
//             than strings) where the grammar cannot hold them there, or
//             everywhere where it cannot hold them together. Parameters of
//             no schema at all (none, {}, or only such bounds) hold it to
//             any object.
// A forced call (REQUIRED, FUNCTION) needs tools and takes no
// response_format beside it. parallel_tool_calls false ends the answer as
// its first call's block closes (runtime::kToolCallClose a stop string).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cohost/v1/inference.pb.h"
#include "runtime/tokenizer/tool_call_split.h"

namespace cohost::server {

// OpenAI's limits on a chat's tools: at most 128, each named by 1-64 of
// [A-Za-z0-9_-].
inline constexpr int kMaxTools = 128;
bool IsToolName(std::string_view name);

// A tool's parameters' or a call's arguments' text: a JSON object, or
// INVALID_ARGUMENT naming `what`.
absl::Status CheckJsonObject(const std::string& text, const std::string& what);

// The chat's tools: at most kMaxTools, each well named, no name twice, and
// parameters (where given) a JSON object. INVALID_ARGUMENT naming the tool.
absl::Status CheckTools(const v1::ChatInput& chat);

// Where the grammar could not hold a forced call's schema as the rules
// above ask, what the call was held to instead (counted by the front doors:
// ServerMetrics::RecordForcedCallFallback).
enum class ForcedFallback {
  kNone,
  kNoValueBounds,  // every value bound of a non-strict function left to the model
  kAnyArguments,   // REQUIRED: every call's arguments any object
};
// "no_value_bounds", "any_arguments" ("" for kNone).
std::string_view ForcedFallbackName(ForcedFallback fallback);

// What the chat's tool_choice asks of the answer.
struct ToolOutput {
  bool calls = false;  // its calls are the answer's to give out (tools were offered)
  // Set: the whole output is one call: the arguments of this function, or
  // (empty) a call's {"name", "arguments"} object.
  std::optional<std::string> forced;
  ForcedFallback fallback = ForcedFallback::kNone;  // of a forced call's schema
  // OpenAI's finish_reason "tool_calls" after a call (not after a named one's).
  bool calls_finish() const { return calls && !(forced && !forced->empty()); }
  // What finds the calls in the output (`stream`: each given out in pieces
  // as it is written); none where it makes none.
  std::optional<runtime::ToolCallSplitter> Splitter(bool stream = false) const;
};

// Whether `request`'s chat asks anything of its tools but the default
// (AUTO, any number of calls), so that ApplyToolChoice has work to do (a
// copy of the request to do it on, in BuildGenerateRequest).
bool AsksToolChoice(const v1::GenerateRequest& request);

// Applies the chat's tool_choice and parallel_tool_calls to `request`: drops
// the tools from the prompt (NONE), sets the response format and schema a
// forced call is held to, or adds the stop string that ends one call; then
// resets both fields, so that applying it again changes nothing. Returns what
// the answer's calls are. INVALID_ARGUMENT, its message starting with the
// field's name, for a choice this chat cannot take. The chat's tools have
// passed CheckTools (BuildGenerateRequest checks them first, once).
absl::StatusOr<ToolOutput> ApplyToolChoice(v1::GenerateRequest* request);

// `status`, from building a request that ApplyToolChoice gave `tools`, in the
// chat's terms: a forced call's schema is the function's parameters, not a
// json_schema the client sent.
absl::Status InToolTerms(const ToolOutput& tools, absl::Status status);

}  // namespace cohost::server
