#include "runtime/tokenizer/bpe.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/quote.h"
#include "runtime/tokenizer/string_view_compat.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {
namespace {

// Maps raw bytes to their GPT-2 alphabet spelling.
std::string ToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += ByteToUnicode(static_cast<uint8_t>(c));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ByteLevelBpe>> ByteLevelBpe::Create(
    const TokenizerSpec& spec, absl::Span<const TokenType> types) {
  auto pre = PreTokenizer::Create(spec.pre_tokenizer);
  if (!pre.ok()) return pre.status();
  auto bpe = std::unique_ptr<ByteLevelBpe>(new ByteLevelBpe());
  bpe->pre_ = *std::move(pre);
  bpe->tokens_ = spec.tokens;
  bpe->unk_id_ = spec.unk_id;
  const auto n = static_cast<int32_t>(spec.tokens.size());
  bpe->token_to_id_.reserve(n);
  for (int32_t id = 0; id < n; ++id) {
    // Control and user-defined tokens are matched by the special-token
    // splitter, never produced by merges; the first id of a duplicate wins.
    const TokenType type = id < static_cast<int32_t>(types.size()) ? types[id] : TokenType::kNormal;
    if (type == TokenType::kControl || type == TokenType::kUserDefined) continue;
    bpe->token_to_id_.emplace(bpe->tokens_[id], id);
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = bpe->token_to_id_.find(ByteToUnicode(static_cast<uint8_t>(b)));
    bpe->byte_ids_[b] = it == bpe->token_to_id_.end() ? -1 : it->second;
  }
  bpe->merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const std::string& merge = spec.merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= merge.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer merge ", rank, " is not \"left right\": ", Quote(merge)));
    }
    const std::string left = merge.substr(0, space), right = merge.substr(space + 1);
    const auto l = bpe->token_to_id_.find(left);
    const auto r = bpe->token_to_id_.find(right);
    const auto m = bpe->token_to_id_.find(left + right);
    // A merge naming tokens outside the vocabulary can never apply; skip it.
    if (l == bpe->token_to_id_.end() || r == bpe->token_to_id_.end() ||
        m == bpe->token_to_id_.end()) {
      continue;
    }
    // The first (lowest-rank) occurrence of a pair wins.
    bpe->merges_.emplace(PairKey(l->second, r->second),
                         Merge{static_cast<int32_t>(rank), m->second});
  }
  return bpe;
}

absl::Status ByteLevelBpe::EncodeText(std::string_view text, bool /*at_text_start*/,
                                      std::vector<int32_t>* out) const {
  auto words = pre_->Split(text);
  if (!words.ok()) return words.status();
  for (std::string_view word : *words) EncodeWord(word, out);
  return absl::OkStatus();
}

void ByteLevelBpe::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (word.size() == 1 && !pre_->ignore_merges()) {
    MergeWord(word, out);
    return;
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    const auto it = cache_.find(AsAbsl(word));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (pre_->ignore_merges()) {
    const auto it = token_to_id_.find(ToByteLevel(word));
    if (it != token_to_id_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) MergeWord(word, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (!cacheable) return;
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::string(word), std::move(ids));
}

size_t ByteLevelBpe::cached_words() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_.size();
}

void ByteLevelBpe::MergeWord(std::string_view word, std::vector<int32_t>* out) const {
  struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour
    int32_t prev, next;
  };
  struct Candidate {
    int32_t rank, left, right, left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  const auto n = static_cast<int32_t>(word.size());
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(word[i])];
    // A byte the vocabulary lacks becomes <unk> (or is dropped without one).
    symbols[i] = {id >= 0 ? id : unk_id_, i - 1, i + 1 < n ? i + 1 : -1};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t l = symbols[left].id, r = symbols[right].id;
    if (l < 0 || r < 0) return;
    const auto it = merges_.find(PairKey(l, r));
    if (it == merges_.end()) return;
    heap.push({it->second.rank, left, right, l, r});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.left];
    // Stale: either side changed since the candidate was queued (a symbol's
    // id only ever grows into a longer token, so equal ids mean unchanged).
    if (left.id != c.left_id || left.next != c.right || symbols[c.right].id != c.right_id) {
      continue;
    }
    Symbol& right = symbols[c.right];
    left.id = merges_.at(PairKey(c.left_id, c.right_id)).merged_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -1;
    right.next = right.prev = -1;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) {
    if (symbols[i].id >= 0) out->push_back(symbols[i].id);
  }
}

std::string ByteLevelBpe::PieceBytes(int32_t id) const {
  const std::string& token = tokens_[id];
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    uint32_t cp = 0;
    const size_t len = DecodeUtf8(token, pos, &cp);
    if (len == 0) {  // not UTF-8: a malformed vocabulary; keep the byte
      out.push_back(token[pos++]);
      continue;
    }
    const int b = UnicodeToByte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(token, pos, len);  // outside the alphabet: literal text
    }
    pos += len;
  }
  return out;
}

}  // namespace cohost::runtime
