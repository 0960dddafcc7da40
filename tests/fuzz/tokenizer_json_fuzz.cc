// A Hugging Face tokenizer.json (a model directory's: untrusted), parsed and
// made into a tokenizer that formats and encodes a chat and decodes it
// (model_file_checks.h); then the input's own text encoded by it.

#include <string_view>

#include "runtime/tokenizer/tokenizer_json.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/model_file_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cohost::runtime::TokenizerSpec> spec = cohost::runtime::ParseTokenizerJson(text);
  if (!spec.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(spec.status()) || absl::IsUnimplemented(spec.status()), "%s",
               spec.status().ToString().c_str());
    return 0;
  }
  cohost::fuzz::UseTokenizer(*spec);
  return 0;
}
