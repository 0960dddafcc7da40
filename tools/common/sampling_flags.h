// The sampling flags shared by `cohost run` and (later) `cohost generate`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/sampling/sampling_params.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {

std::vector<FlagSpec> SamplingFlagSpecs();

// The text of --json-schema's file, if the flag is given; NOT_FOUND naming the
// path if it cannot be read.
absl::StatusOr<std::optional<std::string>> JsonSchemaText(const ParsedArgs& args);

// Range checks beyond parsing are SamplingParams::Validate's job, done where the
// vocabulary is known.
absl::StatusOr<runtime::SamplingParams> SamplingParamsFromArgs(const ParsedArgs& args);

}  // namespace cohost::tools
