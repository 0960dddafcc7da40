#include "runtime/tokenizer/sentencepiece_bpe.h"

#include <cmath>
#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/quote.h"
#include "runtime/tokenizer/string_view_compat.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool ParseBytePiece(std::string_view piece, uint8_t* byte) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return false;
  const int hi = HexValue(piece[3]), lo = HexValue(piece[4]);
  if (hi < 0 || lo < 0) return false;
  *byte = static_cast<uint8_t>(hi * 16 + lo);
  return true;
}

absl::StatusOr<std::unique_ptr<SentencePieceBpe>> SentencePieceBpe::Create(
    const TokenizerSpec& spec, absl::Span<const TokenType> types) {
  const auto n = static_cast<int32_t>(spec.tokens.size());
  if (spec.merges.empty() && spec.scores.size() != spec.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("SentencePiece tokenizer has ", n,
                                                   " tokens but ", spec.scores.size(),
                                                   " scores (and no merges)"));
  }
  // A NaN would order against no other score, so which pieces merge would
  // depend on the heap's order: a broken file, said so.
  for (size_t i = 0; i < spec.scores.size(); ++i) {
    if (std::isnan(spec.scores[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("SentencePiece tokenizer: the score of token ", i, " is NaN"));
    }
  }
  auto sp = std::unique_ptr<SentencePieceBpe>(new SentencePieceBpe());
  sp->tokens_ = spec.tokens;
  sp->scores_ = spec.scores;
  sp->types_.assign(types.begin(), types.end());
  sp->types_.resize(n, TokenType::kNormal);
  sp->add_space_prefix_ = spec.add_space_prefix;
  sp->by_merge_rank_ = !spec.merges.empty();
  sp->unk_id_ = spec.unk_id;
  sp->byte_ids_.fill(-1);
  sp->pieces_.reserve(n);
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = sp->types_[id];
    uint8_t byte = 0;
    const bool looks_byte = ParseBytePiece(spec.tokens[id], &byte);
    if (type == TokenType::kByte || (types.empty() && looks_byte)) {
      if (looks_byte && sp->byte_ids_[byte] < 0) sp->byte_ids_[byte] = id;
      sp->types_[id] = TokenType::kByte;
      continue;
    }
    if (type == TokenType::kControl || type == TokenType::kUnknown) continue;
    sp->pieces_.emplace(sp->tokens_[id], id);
  }
  for (int32_t id : sp->byte_ids_) sp->byte_fallback_ |= id >= 0;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const std::string& merge = spec.merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer merge ", rank, " is not \"left right\": ", Quote(merge)));
    }
    const int32_t l = sp->Find(std::string_view(merge).substr(0, space));
    const int32_t r = sp->Find(std::string_view(merge).substr(space + 1));
    if (l < 0 || r < 0) continue;  // can never apply
    sp->merge_ranks_.emplace(PairKey(l, r), static_cast<int32_t>(rank));
  }
  return sp;
}

int32_t SentencePieceBpe::Find(std::string_view piece) const {
  const auto it = pieces_.find(AsAbsl(piece));
  return it == pieces_.end() ? -1 : it->second;
}

absl::Status SentencePieceBpe::EncodeText(std::string_view text, bool at_text_start,
                                          std::vector<int32_t>* out) const {
  if (text.empty()) return absl::OkStatus();
  std::string normalized;
  if (at_text_start && add_space_prefix_) normalized = std::string(kSpaceSymbol);
  normalized += absl::StrReplaceAll(AsAbsl(text), {{" ", AsAbsl(kSpaceSymbol)}});
  const std::string_view s = normalized;

  struct Symbol {
    uint32_t begin, len;  // byte span in `s`; len 0 once merged away
    int32_t prev, next;
  };
  struct Candidate {
    double priority;  // larger merges first
    int32_t left, right;
    uint32_t len;
    bool operator<(const Candidate& o) const {
      return priority != o.priority ? priority < o.priority : left > o.left;
    }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    size_t len = DecodeUtf8(s, pos);
    if (len == 0) len = 1;  // the caller validated; stay safe regardless
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1,
                       pos + len < s.size() ? index + 1 : -1});
    pos += len;
  }
  auto span = [&](const Symbol& sym) { return s.substr(sym.begin, sym.len); };
  std::priority_queue<Candidate> heap;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t merged = Find(s.substr(l.begin, l.len + r.len));
    if (merged < 0) return;
    double priority;
    if (!by_merge_rank_) {
      priority = scores_[merged];
    } else {
      const auto it = merge_ranks_.find(PairKey(Find(span(l)), Find(span(r))));
      if (it == merge_ranks_.end()) return;
      priority = -static_cast<double>(it->second);
    }
    heap.push({priority, left, right, l.len + r.len});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    // Stale: a side was merged away or grew since the candidate was queued.
    if (left.len == 0 || right.len == 0 || left.len + right.len != c.len) continue;
    left.len += right.len;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.len = 0;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  bool last_was_unk = false;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = span(symbols[i]);
    const int32_t id = Find(piece);
    if (id >= 0) {
      out->push_back(id);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      for (char c : piece) {
        const int32_t b = byte_ids_[static_cast<uint8_t>(c)];
        if (b >= 0) {
          out->push_back(b);
        } else if (unk_id_ >= 0) {
          out->push_back(unk_id_);
        }
      }
      continue;
    }
    // Without byte fallback, sentencepiece folds a run of unknowns into one.
    if (unk_id_ >= 0 && !last_was_unk) out->push_back(unk_id_);
    last_was_unk = true;
  }
  return absl::OkStatus();
}

std::string SentencePieceBpe::PieceBytes(int32_t id) const {
  const std::string& token = tokens_[id];
  switch (types_[id]) {
    case TokenType::kByte: {
      uint8_t byte = 0;
      return ParseBytePiece(token, &byte) ? std::string(1, static_cast<char>(byte)) : token;
    }
    case TokenType::kControl:
    case TokenType::kUnknown:
      return token;
    default:
      return absl::StrReplaceAll(token, {{AsAbsl(kSpaceSymbol), " "}});
  }
}

}  // namespace cohost::runtime
