// Readers that turn Hugging Face tokenizer files into a TokenizerSpec:
// tokenizer.json (byte-level BPE, or SentencePiece-converted BPE with
// byte_fallback), tokenizer_config.json / generation_config.json (chat
// template, BOS/EOS), and SentencePiece's tokenizer.model protobuf.
// LoadTokenizerSpecFromDirectory (tokenizer.h) combines them.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/loader/tokenizer_spec.h"

namespace cohost::runtime {

// Parses the text of a tokenizer.json. Pre-tokenizers are recognised by shape
// (ByteLevel, Digits + ByteLevel, or a Split with a known family regex);
// anything else is UNIMPLEMENTED rather than approximated.
absl::StatusOr<TokenizerSpec> ParseTokenizerJson(std::string_view json_text);

// Applies a tokenizer_config.json: chat_template, add_bos_token,
// add_eos_token, bos_token, eos_token, unk_token, pad_token.
absl::Status ApplyTokenizerConfig(std::string_view json_text, TokenizerSpec* spec);

// Applies a generation_config.json: every eos_token_id it lists ends
// generation (Llama 3 lists several).
absl::Status ApplyGenerationConfig(std::string_view json_text, TokenizerSpec* spec);

// Reads a SentencePiece tokenizer.model (a BPE model; Unigram models and
// normalizers other than "identity" without whitespace folding are
// UNIMPLEMENTED because encoding could not match sentencepiece).
absl::StatusOr<TokenizerSpec> ReadSentencePieceModel(const std::string& path);

}  // namespace cohost::runtime
