// Hermes-style tool calling as Qwen2.5's, Qwen3's and QwQ's chat templates write it
// (ChatTemplate::hermes_tools): the system turn lists the functions, one
// `tool | tojson` line each, between the templates' own header and footer;
// an assistant's calls are <tool_call> blocks, their arguments parsed and
// written again by `tojson` (as vLLM passes them); the results of
// consecutive "tool" messages share one user turn of <tool_response> blocks.
// A tool's description and parameters are written where the client gave
// them (as transformers and llama.cpp's server render a client's tools;
// vLLM's pydantic dump writes them as null).
#pragma once

#include <string>
#include <string_view>

#include "runtime/tokenizer/chat_template.h"

namespace cohost::runtime {

// What the system turn has before its tools' lines, and after them.
inline constexpr std::string_view kToolsHeader =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
inline constexpr std::string_view kToolsFooter =
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

// A tool as the template's `tool | tojson` writes the OpenAI tool a server
// passes it: {"type": "function", "function": {"name": ..., "description":
// ..., "parameters": ...}} (description and parameters where given), the
// parameters in the client's key order.
std::string ToolJson(const ChatTool& tool);

// JSON text as transformers' `tojson` (Python's json.dumps, ensure_ascii
// off) writes it: ", " and ": " between items, keys in their order, floats
// as Python's repr (an integer past 64 bits is read as a float); the text as
// it is where it is not JSON or nests past 64. Linear in the text.
std::string PythonJson(std::string_view json_text);

}  // namespace cohost::runtime
