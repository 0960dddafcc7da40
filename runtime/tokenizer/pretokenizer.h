// Regex pre-tokenizers of byte-level BPE families (GPT-2, SmolLM/StarCoder,
// Llama 3, Qwen2): split text into the words that BPE merges never cross.
// Implemented with PCRE2 (UTF + Unicode properties, JIT-compiled).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cohost::runtime {

class PreTokenizer {
 public:
  // `family` as in TokenizerSpec::pre_tokenizer: "gpt2", "smollm" (and its
  // twins "starcoder", "refact", "codeshell"), "llama3" / "llama-bpe",
  // "qwen2". Unknown names are INVALID_ARGUMENT.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create(std::string_view family);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits well-formed UTF-8 `text` into consecutive pieces that cover it
  // exactly; the views point into `text`. Thread-safe.
  absl::StatusOr<std::vector<std::string_view>> Split(std::string_view text) const;

  // Whether a word found whole in the vocabulary skips the merges (Llama 3's
  // "ignore_merges").
  bool ignore_merges() const { return ignore_merges_; }

 private:
  struct Pass;
  PreTokenizer() = default;
  // Each pass splits every piece of the previous one: matches and the gaps
  // between them both become pieces (HF's "Isolated" split behaviour).
  std::vector<std::unique_ptr<Pass>> passes_;
  bool ignore_merges_ = false;
};

}  // namespace cohost::runtime
