#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/bpe_encoder.h"
#include "runtime/tokenizer/nfc.h"
#include "runtime/tokenizer/sentencepiece_bpe.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {
namespace {

// Control tokens that end a turn or a text in the families we run; a model
// emitting one is done even when its metadata names another EOS.
constexpr std::string_view kEndMarkers[] = {
    "<|endoftext|>", "<|im_end|>", "<|eot_id|>",    "<|eom_id|>", "<|end_of_text|>",
    "<|end|>",       "</s>",       "<end_of_turn>", "<|return|>",
};

}  // namespace

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(const TokenizerSpec& spec) {
  const auto n = static_cast<int32_t>(spec.tokens.size());
  if (n == 0) return absl::InvalidArgumentError("tokenizer has an empty vocabulary");
  if (!spec.token_types.empty() && spec.token_types.size() != spec.tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer has ", n, " tokens but ", spec.token_types.size(), " token types"));
  }
  for (const auto& [name, id] : {std::pair<const char*, int32_t>{"bos", spec.bos_id},
                                 {"eos", spec.eos_id},
                                 {"unk", spec.unk_id},
                                 {"pad", spec.pad_id}}) {
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer ", name, " id ", id, " is outside the vocabulary of ", n));
    }
  }
  if (spec.add_bos && spec.bos_id < 0) {
    return absl::InvalidArgumentError("tokenizer adds BOS but has no BOS id");
  }
  if (spec.add_eos && spec.eos_id < 0) {
    return absl::InvalidArgumentError("tokenizer adds EOS but has no EOS id");
  }

  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->bos_id_ = spec.bos_id;
  t->eos_id_ = spec.eos_id;
  t->add_bos_ = spec.add_bos;
  t->add_eos_ = spec.add_eos;
  t->types_ = spec.token_types;
  if (t->types_.empty()) {
    // No types given: the ids the spec names as special are control tokens.
    t->types_.assign(n, TokenType::kNormal);
    for (int32_t id : {spec.bos_id, spec.eos_id, spec.pad_id}) {
      if (id >= 0) t->types_[id] = TokenType::kControl;
    }
    for (int32_t id : spec.extra_eos_ids) {
      if (id >= 0 && id < n) t->types_[id] = TokenType::kControl;
    }
    if (spec.unk_id >= 0) t->types_[spec.unk_id] = TokenType::kUnknown;
    // Byte pieces are known by their text then, as llama.cpp knows them.
    if (spec.kind == TokenizerKind::kSentencePiece) {
      for (int32_t id = 0; id < n; ++id) {
        uint8_t byte = 0;
        if (t->types_[id] == TokenType::kNormal && ParseBytePiece(spec.tokens[id], &byte)) {
          t->types_[id] = TokenType::kByte;
        }
      }
    }
  }
  if (spec.kind == TokenizerKind::kByteLevelBpe) {
    ASSIGN_OR_RETURN(t->encoder_, ByteLevelBpe::Create(spec, t->types_));
  } else {
    ASSIGN_OR_RETURN(t->encoder_, SentencePieceBpe::Create(spec, t->types_));
    t->strips_leading_space_ = spec.add_space_prefix;
    t->prefix_after_special_ = spec.space_prefix_after_special;
  }
  t->nfc_ = spec.normalize_nfc;

  t->token_bytes_.resize(n);
  t->end_of_generation_.assign(n, false);
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = t->types_[id];
    const bool special = type == TokenType::kControl || type == TokenType::kUserDefined;
    // Special tokens are literal text in every vocabulary format.
    t->token_bytes_[id] = special ? spec.tokens[id] : t->encoder_->PieceBytes(id);
    // The think tags as text the detokenizer writes (user-defined, as every
    // reasoning model's are), so that the output's splitter sees them.
    if (type == TokenType::kUserDefined) {
      if (spec.tokens[id] == "<think>" && t->think_open_ < 0) t->think_open_ = id;
      if (spec.tokens[id] == "</think>" && t->think_close_ < 0) t->think_close_ = id;
    }
    if (special && !spec.tokens[id].empty()) {
      t->specials_.Add(spec.tokens[id], id, type == TokenType::kControl);
    } else if (type == TokenType::kUnknown && spec.kind == TokenizerKind::kSentencePiece &&
               !spec.token_types.empty() && spec.tokens[id].size() > 1) {
      // A SentencePiece vocabulary's "<unk>", typed so by its file, is the
      // unknown token where a prompt spells it, as in llama.cpp and HF (an
      // added special token there); like a control token, it stays text
      // inside a chat message. (A byte-level vocabulary's, or one whose type
      // was only inferred, may be spelled like ordinary text.)
      t->specials_.Add(spec.tokens[id], id, /*control=*/true);
    }
    if (type == TokenType::kControl && std::find(std::begin(kEndMarkers), std::end(kEndMarkers),
                                                 spec.tokens[id]) != std::end(kEndMarkers)) {
      t->end_of_generation_[id] = true;
    }
  }
  if (spec.eos_id >= 0) t->end_of_generation_[spec.eos_id] = true;
  for (int32_t id : spec.extra_eos_ids) {
    if (id >= 0 && id < n) t->end_of_generation_[id] = true;
  }
  const std::string bos_text = spec.bos_id >= 0 ? spec.tokens[spec.bos_id] : "";
  const std::string eos_text = spec.eos_id >= 0 ? spec.tokens[spec.eos_id] : "";
  t->chat_template_ = ParseChatTemplate(spec.chat_template, bos_text, eos_text, spec.add_bos);
  return t;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special,
                                                       bool parse_special) const {
  return EncodeWithPlainSpans(text, add_special, parse_special, {});
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodeWithPlainSpans(
    std::string_view text, bool add_special, bool parse_special,
    absl::Span<const TextSpan> plain) const {
  const size_t bad = FirstInvalidUtf8(text);
  if (bad != text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is not valid UTF-8 (at byte ", bad, " of ", text.size(), ")"));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_) ids.push_back(bos_id_);
  size_t fragment_start = 0;
  auto flush_text = [&](size_t end) -> absl::Status {
    if (end <= fragment_start) return absl::OkStatus();
    std::string_view run = text.substr(fragment_start, end - fragment_start);
    // The normalizer runs on each run of text between added tokens, as
    // Hugging Face's does for those matched in the raw text.
    std::optional<std::string> normalized;
    if (nfc_) {
      ASSIGN_OR_RETURN(normalized, NfcIfChanged(run));
    }
    if (normalized) run = *normalized;
    // A run after a special token starts a text for the space prefix too,
    // where the spec says so.
    return encoder_->EncodeText(run, fragment_start == 0 || prefix_after_special_, &ids);
  };
  if (parse_special) {
    size_t next_plain = 0;  // the first span not wholly before pos
    for (size_t pos = 0; pos < text.size();) {
      while (next_plain < plain.size() && plain[next_plain].end <= pos) ++next_plain;
      // A control token (or the unknown token) may not touch a plain span:
      // neither start in one nor run into the next.
      const size_t plain_from =
          next_plain < plain.size() ? plain[next_plain].begin : std::string_view::npos;
      // The longest special token spelled here (its bytes are its literal
      // text).
      int32_t match = -1;
      specials_.ForEachPrefix(text.substr(pos), [&](int32_t id, size_t length) {
        if (TypeOf(id) != TokenType::kUserDefined && pos + length > plain_from) return;
        match = id;
      });
      if (match < 0) {
        ++pos;
        continue;
      }
      RETURN_IF_ERROR(flush_text(pos));
      ids.push_back(match);
      pos += token_bytes_[match].size();
      fragment_start = pos;
    }
  }
  RETURN_IF_ERROR(flush_text(text.size()));
  if (add_special && add_eos_) ids.push_back(eos_id_);
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    if (!InVocab(id)) continue;
    const bool control = SkippedAsSpecial(id);
    if (control && skip_special) continue;
    std::string_view bytes = token_bytes_[id];
    if (!control) {
      if (at_start && strips_leading_space_ && !bytes.empty() && bytes[0] == ' ') {
        bytes.remove_prefix(1);
      }
      at_start = false;
    }
    out.append(bytes);
  }
  return out;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  return InVocab(id) ? token_bytes_[id] : std::string();
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return InVocab(id) && end_of_generation_[id];
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return InVocab(id) &&
         (TypeOf(id) == TokenType::kControl || TypeOf(id) == TokenType::kUserDefined);
}

bool Tokenizer::SkippedAsSpecial(int32_t id) const {
  if (!InVocab(id)) return false;
  const TokenType t = TypeOf(id);
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUnused;
}

bool Tokenizer::IsControl(int32_t id) const {
  return InVocab(id) && TypeOf(id) == TokenType::kControl;
}

absl::StatusOr<std::string> Tokenizer::ApplyChatTemplate(absl::Span<const ChatMessage> messages,
                                                         const ChatOptions& options) const {
  if (!chat_template_.ok()) return chat_template_.status();
  RETURN_IF_ERROR(CheckToolsServed(*chat_template_, messages, options));
  return FormatChat(*chat_template_, messages, options);
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodeChat(absl::Span<const ChatMessage> messages,
                                                           const ChatOptions& options) const {
  if (!chat_template_.ok()) return chat_template_.status();
  RETURN_IF_ERROR(CheckToolsServed(*chat_template_, messages, options));
  std::vector<TextSpan> from_messages;
  const std::string text = FormatChat(*chat_template_, messages, options, &from_messages);
  return EncodeWithPlainSpans(text, /*add_special=*/true, /*parse_special=*/true, from_messages);
}

}  // namespace cohost::runtime
