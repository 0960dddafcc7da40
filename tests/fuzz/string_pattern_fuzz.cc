// A schema's `pattern` (client input) and a string held to it: the
// pattern, a NUL, then the string. Compile answers OK or INVALID_ARGUMENT;
// stepping an ASCII string's characters agrees with Matches, a state that
// accepts ends within no more characters, and on a printable ASCII string
// Matches agrees with PCRE2's search (pcre2_search.h: where the two
// dialects agree on the pattern).

#include <algorithm>
#include <optional>
#include <string_view>

#include "runtime/sampling/string_pattern.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/pcre2_search.h"

namespace cohost::fuzz {
namespace {

using runtime::StringPattern;

void Run(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string_view pattern = input.substr(0, nul);
  const std::string_view text =
      nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  absl::StatusOr<StringPattern> compiled = StringPattern::Compile(pattern);
  if (!compiled.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(compiled.status()), "%s",
               compiled.status().ToString().c_str());
    return;
  }
  const bool matches = compiled->Matches(text);
  uint64_t state = StringPattern::kStart;
  bool ascii = true;
  for (const char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    if (byte >= 128) {
      ascii = false;
      break;
    }
    state = compiled->Step(state, byte);
    if (state != 0) {
      (void)compiled->EndsWithin(state, 0, StringPattern::kMaxExactLength);
    }
  }
  if (!ascii) return;
  FUZZ_CHECK(matches == compiled->Accepts(state), "Matches %d, the steps %d", matches,
             compiled->Accepts(state));
  if (compiled->Accepts(state)) {
    FUZZ_CHECK(compiled->EndsWithin(state, 0, 0), "accepts, yet does not end within 0");
  }
  // On printable ASCII its language is ECMA-262's (searched: JSON Schema's
  // patterns are not anchored).
  const bool printable =
      std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (!printable || !EcmaComparable(pattern)) return;
  const std::optional<bool> want = Pcre2Search(pattern, text);
  if (want) FUZZ_CHECK(matches == *want, "Matches %d, PCRE2 %d", matches, *want);
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::fuzz::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
