// Unicode Normalization Form C, as the "NFC" normalizer of a tokenizer.json
// (Qwen2's and Qwen3's) puts text before it is encoded: "e" + U+0301 is
// encoded as "é". Through ICU.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cohost::runtime {

// `text` (valid UTF-8) in NFC; nullopt where it already is (most text: the
// check is a pass over it, and nothing is copied). INTERNAL where ICU
// fails (its data missing: a broken install).
absl::StatusOr<std::optional<std::string>> NfcIfChanged(std::string_view text);

}  // namespace cohost::runtime
