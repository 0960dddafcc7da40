// The runtime tokenizer: text <-> token ids for byte-level BPE (GPT-2, Llama 3,
// Qwen2, SmolLM2) and SentencePiece BPE (Llama 2, Mistral), special tokens,
// streaming detokenization and the model's chat format. Built from a
// TokenizerSpec (GGUF metadata, tokenizer.json or tokenizer.model).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/loader/tokenizer_spec.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/special_token_trie.h"

namespace cohost::runtime {

class BpeEncoder;

// Immutable after Create; every method is safe to call from many threads.
class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(const TokenizerSpec& spec);
  ~Tokenizer();

  // add_special: prepend BOS / append EOS per the model's rules (spec.add_bos,
  // spec.add_eos). parse_special: text spelling a control or user-defined
  // token becomes that id (leftmost, longest match); otherwise such text is
  // encoded as ordinary text. Invalid UTF-8 -> INVALID_ARGUMENT.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special = true,
                                              bool parse_special = true) const;

  // Raw bytes of the tokens (may end mid UTF-8 sequence). skip_special drops
  // control tokens. Ids outside the vocabulary are skipped. SentencePiece
  // models with a space prefix lose the leading space of the first text token.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special = true) const;

  // Decoded bytes of one token; empty for ids outside the vocabulary.
  std::string TokenBytes(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // Whether Encode(add_special) prepends BOS / appends EOS.
  bool adds_bos() const { return add_bos_; }
  bool adds_eos() const { return add_eos_; }
  // EOS, spec.extra_eos_ids, and control tokens spelled as a known end of
  // turn/text marker (<|im_end|>, <|eot_id|>, <|endoftext|>, ...).
  bool IsEndOfGeneration(int32_t id) const;
  // Control and user-defined tokens.
  bool IsSpecial(int32_t id) const;
  bool IsControl(int32_t id) const;
  // The chat template offers tools (ChatTemplate::hermes_tools).
  bool OffersTools() const { return chat_template_.ok() && chat_template_->hermes_tools; }
  // The chat template writes think blocks before its answers (Qwen3's,
  // Qwen3-Thinking-2507's, QwQ's, DeepSeek-R1's): what a chat's output starts
  // with may be reasoning (ReasoningSplitter).
  bool WritesThinkBlocks() const {
    return chat_template_.ok() && chat_template_->writes_think_blocks();
  }
  // Its generation prompt opens the block (DeepSeek-R1's,
  // Qwen3-Thinking-2507's, QwQ's): a chat's output starts inside it.
  bool OpensThinkBlock() const { return chat_template_.ok() && chat_template_->opens_think_block; }
  // "<think>"'s and "</think>"'s ids where each is one user-defined token of
  // the vocabulary (as in every reasoning model's: added tokens that decode
  // as text), else -1: what a JSON document that follows the block needs
  // (JsonConstraint).
  int32_t think_open_id() const { return think_open_; }
  int32_t think_close_id() const { return think_close_; }
  // What Decode(skip_special) and the streaming detokenizer leave out:
  // control tokens, the unknown token and unused ones (HF's skip_special_tokens,
  // vLLM's default, drops the first two, llama.cpp's token_to_piece all three;
  // a sampled <unk> or <unused0> is no text).
  bool SkippedAsSpecial(int32_t id) const;
  // Whether Decode drops the first text token's leading space (SentencePiece
  // with add_space_prefix).
  bool strips_leading_space() const { return strips_leading_space_; }

  // Formats messages with the model's own chat format (picked from
  // spec.chat_template; see chat_template.h, not a Jinja engine). NOT_FOUND or
  // UNIMPLEMENTED if the model has no template or an unknown one;
  // FAILED_PRECONDITION for tools on a template without tool calling
  // (CheckToolsServed).
  absl::StatusOr<std::string> ApplyChatTemplate(absl::Span<const ChatMessage> messages,
                                                const ChatOptions& options = {}) const;

  // The chat's prompt ids: ApplyChatTemplate's text, encoded with BOS/EOS per
  // the model and special-token spellings parsed, except that within a
  // message's role or content a control token's spelling is ordinary text. A
  // client's message (or text it quotes: a retrieved page, an e-mail) cannot
  // close its turn and open a system one with "<|im_end|><|im_start|>system".
  // OpenAI's API never parses them; HF's apply_chat_template and vLLM do.
  // User-defined added tokens (HF's special: false, e.g. Qwen's <tool_call>)
  // still parse, as in HF; a GGUF that types its turn markers user-defined
  // rather than control leaves them parsed too. Formats whose turn markers
  // are plain text, not tokens (Llama 2's and Mistral v0.1's "[INST]" and
  // "[/INST]"), cannot be protected so: a client's "[/INST]" encodes as the
  // template's does, as in HF.
  absl::StatusOr<std::vector<int32_t>> EncodeChat(absl::Span<const ChatMessage> messages,
                                                  const ChatOptions& options = {}) const;

 private:
  Tokenizer() = default;
  TokenType TypeOf(int32_t id) const { return types_[id]; }
  bool InVocab(int32_t id) const { return id >= 0 && id < vocab_size(); }
  // Encode, where no control token is parsed at a byte inside `plain`
  // (ascending, disjoint).
  absl::StatusOr<std::vector<int32_t>> EncodeWithPlainSpans(std::string_view text, bool add_special,
                                                            bool parse_special,
                                                            absl::Span<const TextSpan> plain) const;

  // Of the spec only what Encode needs is kept: the encoder owns the vocabulary
  // (a copy of a 150k-token vocabulary and its merges is megabytes).
  int32_t bos_id_ = -1, eos_id_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::unique_ptr<BpeEncoder> encoder_;
  std::vector<std::string> token_bytes_;  // id -> decoded bytes
  std::vector<TokenType> types_;          // id -> type, never empty
  std::vector<bool> end_of_generation_;
  SpecialTokenTrie specials_;  // control and user-defined tokens' spellings
  bool strips_leading_space_ = false;
  int32_t think_open_ = -1, think_close_ = -1;
  bool prefix_after_special_ = false;  // TokenizerSpec::space_prefix_after_special
  bool nfc_ = false;                   // TokenizerSpec::normalize_nfc
  absl::StatusOr<ChatTemplate> chat_template_;
};

// Load a TokenizerSpec from a Hugging Face directory: tokenizer.json (BPE
// models with a ByteLevel pre-tokenizer, or SentencePiece-converted BPE with
// byte_fallback) and tokenizer_config.json (chat_template, add_bos_token,
// bos/eos tokens), or tokenizer.model (SentencePiece BPE).
absl::StatusOr<TokenizerSpec> LoadTokenizerSpecFromDirectory(const std::string& dir);

}  // namespace cohost::runtime
