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
// `at_text_start`: the ids begin the text, so a SentencePiece space prefix on
// the first text token is dropped (Tokenizer::Decode's rule). Not so for a
// continuation: a completion after a prompt's text keeps it (" Paris"), as
// llama.cpp's and vLLM's servers do.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& t, bool skip_special = true,
                                  bool at_text_start = true);
  std::string Push(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool at_start_;        // no text token seen yet, at the text's start
  std::string pending_;  // bytes of an incomplete UTF-8 sequence (<= 3)
};

}  // namespace cohost::runtime
