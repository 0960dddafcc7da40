// Internal to the tokenizer library: the model-specific half of a Tokenizer
// (byte-level BPE or SentencePiece BPE) that turns plain text, with special
// tokens already split out, into ids, and ids back into bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace cohost::runtime {

class BpeEncoder {
 public:
  virtual ~BpeEncoder() = default;
  // Appends the ids of `text` (well-formed UTF-8, no special tokens) to *out.
  // `at_text_start`: the fragment begins the caller's whole input (where a
  // SentencePiece model adds its space prefix).
  virtual absl::Status EncodeText(std::string_view text, bool at_text_start,
                                  std::vector<int32_t>* out) const = 0;
  // Bytes of token `id` (0 <= id < vocab size) as ordinary text.
  virtual std::string PieceBytes(int32_t id) const = 0;
};

}  // namespace cohost::runtime
