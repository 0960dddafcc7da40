// Strict JSON parsing for model files (safetensors headers, config.json,
// shard indexes): duplicate object keys and absurd nesting are errors, and
// nothing throws. The loader's, and the tokenizer's for its files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cohost::runtime {

// INVALID_ARGUMENT "<what>: ..." for malformed JSON or a duplicate key.
absl::StatusOr<nlohmann::json> ParseJsonStrict(absl::string_view text, absl::string_view what);
// The same, with duplicate keys taken as nlohmann does (the last wins), as
// Hugging Face's readers do for the files they write (tokenizer.json): only
// malformed or absurdly nested JSON (whose copies would recurse past the
// stack) is an error.
absl::StatusOr<nlohmann::json> ParseJsonBounded(absl::string_view text, absl::string_view what);

// An integer that fits int64 (signed or unsigned JSON number); nullopt otherwise.
std::optional<int64_t> JsonInt64(const nlohmann::json& j);

// Reads a whole (small) file; INVALID_ARGUMENT if it is larger than max_bytes.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes);

}  // namespace cohost::runtime
