// A four-piece SentencePiece vocabulary, "<unk>" "<s>" "▁Paris" "▁is", for
// tests of the space prefix's rules.
#pragma once

#include "runtime/loader/tokenizer_spec.h"

namespace cohost::testing {

inline runtime::TokenizerSpec ParisSentencePieceSpec() {
  using runtime::TokenType;
  runtime::TokenizerSpec s;
  s.kind = runtime::TokenizerKind::kSentencePiece;
  s.tokens = {"<unk>", "<s>", "\xE2\x96\x81Paris", "\xE2\x96\x81is"};
  s.scores = {0, 0, -1, -2};
  s.token_types = {TokenType::kUnknown, TokenType::kControl, TokenType::kNormal,
                   TokenType::kNormal};
  s.unk_id = 0;
  s.bos_id = 1;
  s.add_space_prefix = true;
  return s;
}

}  // namespace cohost::testing
