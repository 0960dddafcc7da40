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

// Range checks beyond parsing are SamplingParams::Validate's job, done where the
// vocabulary is known. --json-schema's file is read once (NOT_FOUND naming the
// path if it cannot be): compiled into the parameters' json_schema, and, where
// `json_schema_text` is given, its text there (what a gRPC request carries).
absl::StatusOr<runtime::SamplingParams> SamplingParamsFromArgs(
    const ParsedArgs& args, std::string* json_schema_text = nullptr);

}  // namespace cohost::tools
