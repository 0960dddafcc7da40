// The tokenizer as a model file describes it, independent of where it came from
// (GGUF metadata, tokenizer.json, tokenizer.model). Tokenizer::Create builds
// the runtime tokenizer from this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cohost::runtime {

enum class TokenizerKind : uint8_t {
  kByteLevelBpe,   // GPT-2 style: bytes mapped to printable code points, ranked merges
  kSentencePiece,  // SentencePiece BPE with scores, "▁" for spaces, <0xNN> byte fallback
};

// GGUF token types (llama.cpp's llama_token_type numbering).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct TokenizerSpec {
  TokenizerKind kind = TokenizerKind::kByteLevelBpe;
  // Pre-tokenizer family for byte-level BPE: "gpt2", "llama3" (aka "llama-bpe"),
  // "qwen2", "smollm", ... Unknown names are an error, never a silent fallback.
  std::string pre_tokenizer = "gpt2";
  std::vector<std::string> tokens;     // id -> token text (byte-level or "▁" form)
  std::vector<float> scores;           // SentencePiece piece scores; empty for BPE
  std::vector<TokenType> token_types;  // empty means all kNormal
  std::vector<std::string> merges;     // "left right", rank order; byte-level BPE only
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  std::vector<int32_t> extra_eos_ids;  // e.g. <|eot_id|>, <|im_end|>
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SentencePiece: prepend "▁" to the input
  // SentencePiece with add_space_prefix: to each run of text after a special
  // token too (llama.cpp's rule, and Hugging Face's legacy Llama tokenizers:
  // "<s>[INST]" encodes "▁[" as they do), not to the text's start alone
  // (Hugging Face's prepend_scheme "first").
  bool space_prefix_after_special = false;
  // tokenizer.json's "NFC" normalizer (Qwen2's, Qwen3's): each run of text
  // between added tokens is put in Unicode NFC before it is encoded.
  bool normalize_nfc = false;
  std::string chat_template;  // Jinja source from the model; used to pick a format
};

}  // namespace cohost::runtime
