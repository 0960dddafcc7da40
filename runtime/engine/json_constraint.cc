#include "runtime/engine/json_constraint.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace cohost::runtime {

std::vector<std::string> TextTokens(const Tokenizer& tokenizer) {
  std::vector<std::string> bytes(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    // An end of generation ends the request wherever it is drawn: allowed
    // only where the document may end, whatever text it spells.
    if (!tokenizer.IsSpecial(id) && !tokenizer.SkippedAsSpecial(id) &&
        !tokenizer.IsEndOfGeneration(id)) {
      bytes[id] = tokenizer.TokenBytes(id);
    }
  }
  return bytes;
}

JsonConstraint::JsonConstraint(const Tokenizer& tokenizer)
    : tokenizer_(tokenizer), mask_(TextTokens(tokenizer)) {
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.IsEndOfGeneration(id)) end_ids_.push_back(id);
  }
}

std::shared_ptr<const JsonConstraint::Allowed> JsonConstraint::AllowedAfter(
    const std::shared_ptr<const JsonSchema>& schema, const JsonGrammar& document) const {
  Key key(schema.get(), document.MaskKey(*schema, static_cast<uint32_t>(mask_.longest_token())));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      it->second.used = ++tick_;
      return it->second.allowed;
    }
    ++walks_;
  }
  // The walk, outside the lock (two threads may both walk a new state).
  thread_local std::vector<uint8_t> tokens;
  tokens.resize(mask_.vocab_size());
  const int32_t count = mask_.Allowed(*schema, document, absl::MakeSpan(tokens));
  auto allowed = std::make_shared<Allowed>();
  allowed->schema = schema;
  allowed->ends = document.Complete() || count == 0;
  if (allowed->ends) {
    for (const int32_t id : end_ids_) tokens[id] = 1;
  }
  allowed->bits.assign((tokens.size() + 63) / 64, 0);
  for (size_t id = 0; id < tokens.size(); ++id) {
    allowed->bits[id / 64] |= uint64_t{tokens[id]} << (id % 64);
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Another thread may have walked the same state meanwhile.
  if (auto it = cache_.find(key); it != cache_.end()) return it->second.allowed;
  if (cache_.size() >= kCachedMasks) EvictColdLocked();  // states documents left behind
  cache_.emplace(std::move(key), Cached{allowed, ++tick_});
  return allowed;
}

void JsonConstraint::EvictColdLocked() const {
  // A quarter at a time, so the sort over the ticks is paid once per
  // kCachedMasks / 4 walks.
  std::vector<uint64_t> ticks;
  ticks.reserve(cache_.size());
  for (const auto& [key, cached] : cache_) ticks.push_back(cached.used);
  const auto cut = ticks.begin() + static_cast<std::ptrdiff_t>(ticks.size() / 4);
  std::nth_element(ticks.begin(), cut, ticks.end());
  absl::erase_if(cache_, [&](const auto& entry) { return entry.second.used <= *cut; });
}

int64_t JsonConstraint::walks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return walks_;
}

void JsonConstraint::Mask(const std::shared_ptr<const JsonSchema>& schema,
                          const JsonGrammar& document, JsonPhase phase,
                          absl::Span<const int32_t> stop_ids, absl::Span<float> logits) const {
  // The row's bits, by the one rule of AppendMask (the ends, the stop ids,
  // the ids past the vocabulary), kept by the thread between tokens.
  thread_local std::vector<uint64_t> row;
  row.clear();
  AppendMask(schema, document, phase, stop_ids, static_cast<int32_t>(logits.size()), &row);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (((row[id / 64] >> (id % 64)) & 1) == 0) {
      logits[id] = -std::numeric_limits<float>::infinity();
    }
  }
}

void JsonConstraint::AppendMask(const std::shared_ptr<const JsonSchema>& schema,
                                const JsonGrammar& document, JsonPhase phase,
                                absl::Span<const int32_t> stop_ids, int32_t width,
                                std::vector<uint64_t>* masks) const {
  if (!Thinks()) phase = JsonPhase::kDocument;
  const size_t begin = masks->size();
  const size_t words = (static_cast<size_t>(width) + 63) / 64;
  masks->resize(begin + words, 0);
  uint64_t* row = masks->data() + begin;
  const auto set = [row](size_t id, bool on) {
    const uint64_t bit = uint64_t{1} << (id % 64);
    row[id / 64] = on ? row[id / 64] | bit : row[id / 64] & ~bit;
  };
  // Inside the block: any token, but never an end (the document follows).
  bool ends = false;
  if (phase == JsonPhase::kThinking) {
    std::fill_n(row, words, ~uint64_t{0});
    for (const int32_t id : end_ids_) {
      if (id < width) set(static_cast<size_t>(id), false);
    }
  } else {
    const std::shared_ptr<const Allowed> allowed = AllowedAfter(schema, document);
    std::copy_n(allowed->bits.begin(), std::min(words, allowed->bits.size()), row);
    ends = allowed->ends;
    // Before the document, the output may open the block instead.
    if (phase == JsonPhase::kMayThink && tokenizer_.think_open_id() < width) {
      set(static_cast<size_t>(tokenizer_.think_open_id()), true);
    }
  }
  // Ids past the vocabulary (a model's padded rows) and the row stay clear.
  for (size_t id = std::min(static_cast<size_t>(mask_.vocab_size()), static_cast<size_t>(width));
       id < words * 64; ++id) {
    set(id, false);
  }
  // The request's stop ids end it as the ends of generation do: allowed
  // where the document may end, nowhere else; inside the block, the closing
  // tag stays allowed even so (the request then ends with the block).
  for (const int32_t id : stop_ids) {
    if (id < 0 || id >= width) continue;
    const bool closes = phase == JsonPhase::kThinking && id == tokenizer_.think_close_id();
    set(static_cast<size_t>(id), ends || closes);
  }
}

void JsonConstraint::Advance(const JsonSchema& schema, int32_t token, JsonPhase* phase,
                             JsonGrammar* document) const {
  if (tokenizer_.IsEndOfGeneration(token)) return;
  if (!Thinks()) *phase = JsonPhase::kDocument;
  if (*phase == JsonPhase::kMayThink) {
    *phase = token == tokenizer_.think_open_id() ? JsonPhase::kThinking : JsonPhase::kDocument;
    if (*phase == JsonPhase::kThinking) return;
  }
  if (*phase == JsonPhase::kThinking) {
    if (token == tokenizer_.think_close_id()) *phase = JsonPhase::kDocument;
    return;
  }
  // Mask allowed it, so the grammar takes it whole (one that does not leaves
  // the document where its refused byte would have gone).
  document->FeedAll(schema, tokenizer_.TokenBytes(token));
}

}  // namespace cohost::runtime
