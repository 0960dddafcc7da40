// Turns a stream of token ids into UTF-8 text deltas that never split a
// character, with the tokenizer's rules for special tokens and the leading space.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {

// Incremental detokenizer: Push(id) returns the newly complete UTF-8 text,
// never a split UTF-8 sequence; Flush() returns what is held back (invalid
// bytes -> U+FFFD). Control tokens are dropped when skip_special.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& t, bool skip_special = true);
  std::string Push(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool at_start_ = true;  // no text token seen yet (for the leading space)
  std::string pending_;   // bytes of an incomplete UTF-8 sequence (<= 3)
};

}  // namespace cohost::runtime
