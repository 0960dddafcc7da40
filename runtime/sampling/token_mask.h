// Which tokens of a vocabulary a JsonGrammar state may take next. The
// tokens' bytes are kept sorted, each with how many leading bytes it shares
// with the one before (a trie laid flat): a walk feeds each token only the
// bytes past that shared prefix, from the state the earlier token reached
// there, and once a byte is refused it skips every token that shares the
// refused prefix. Its cost is the trie's size at most (the bytes of the
// vocabulary less what neighbours share), and far less where the grammar
// allows few bytes (between values, inside numbers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "runtime/sampling/json_grammar.h"

namespace cohost::runtime {

class TokenMask {
 public:
  // token_bytes: id -> the bytes the token decodes to; empty for an id no
  // grammar may choose (control tokens, unused ids: the caller decides).
  explicit TokenMask(absl::Span<const std::string> token_bytes);

  int32_t vocab_size() const { return vocab_size_; }
  // The most bytes a token has: what one token can add to a document.
  int32_t longest_token() const { return longest_; }

  // allowed: [vocab_size()], set to 1 at every id whose bytes `state` takes
  // whole under `schema`, and 0 elsewhere. Returns how many are allowed.
  // End-of-generation tokens are the caller's (allowed where state.Complete()).
  int32_t Allowed(const JsonSchema& schema, const JsonGrammar& state,
                  absl::Span<uint8_t> allowed) const;

 private:
  int32_t vocab_size_ = 0;
  int32_t longest_ = 0;
  std::vector<int32_t> ids_;       // sorted by their bytes
  std::vector<uint32_t> offsets_;  // [ids_.size() + 1] into bytes_
  std::vector<uint32_t> shared_;   // with the token before, in bytes
  std::string bytes_;              // the tokens' bytes, in sorted order
};

}  // namespace cohost::runtime
