// PCRE2 as the reference for a JSON Schema `pattern` (ECMA-262, as
// runtime/sampling/string_pattern.h reads it): JavaScript's \u and \x, a
// '$' that ends only at the end, "[]" matching nothing and "[^]" anything,
// and a match limit. Where the two dialects read a pattern differently
// (POSIX classes "[:digit:]", PCRE2's \v for all vertical space, "{,n}"
// which PCRE2 10.43 reads as a quantifier), EcmaComparable says no.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace cohost::fuzz {

inline bool EcmaComparable(std::string_view pattern) {
  for (const std::string_view differs : {"[:", "[.", "[=", "\\v", "{,"}) {
    if (pattern.find(differs) != std::string_view::npos) return false;
  }
  return true;
}

// PCRE2's search of `pattern` in `text` (`flags`: PCRE2_UTF for UTF-8
// text); nullopt where it refuses the pattern or gives up (its match limit).
inline std::optional<bool> Pcre2Search(std::string_view pattern, std::string_view text,
                                       uint32_t flags = 0) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_ALLOW_EMPTY_CLASS | flags, &error,
                    &offset, nullptr);
  if (code == nullptr) return std::nullopt;
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(context, 100000);
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  // Never a null subject (PCRE2 before 10.43 refuses one, even empty).
  const char* subject = text.empty() ? "" : text.data();
  const int rc =
      pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject), text.size(), 0, 0, data, context);
  pcre2_match_data_free(data);
  pcre2_match_context_free(context);
  pcre2_code_free(code);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  return std::nullopt;
}

}  // namespace cohost::fuzz
