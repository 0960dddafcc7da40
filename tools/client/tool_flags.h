// `cohost generate`'s tool flags: functions offered to a chat (OpenAI's
// `tools` list, from a file) and what the answer may do with them
// (ChatInput.tool_choice, parallel_tool_calls). The server checks and applies
// them (server/chat_tools.h); the model's calls come back in the text as it
// writes them ("<tool_call>...</tool_call>", or a forced call's JSON).
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "cohost/v1/inference.pb.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {

std::vector<FlagSpec> ToolFlagSpecs();

// --tools FILE, --tool-choice and --no-parallel-tool-calls into `request`'s
// chat: INVALID_ARGUMENT for a file that is not a list of functions or a
// flag without --chat's chat; NOT_FOUND for a file that cannot be read.
absl::Status AddToolsFromArgs(const ParsedArgs& args, v1::GenerateRequest* request);

}  // namespace cohost::tools
