// Finding a tag in streamed text whose deltas may cut it anywhere: what the
// reasoning and tool-call splitters hold back until the next delta.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace cohost::runtime {

// The whitespace the splitters drop around their blocks (JSON's).
inline bool IsBlockSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
inline size_t PartialTagSuffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace cohost::runtime
