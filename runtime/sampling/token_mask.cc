#include "runtime/sampling/token_mask.h"

#include <algorithm>
#include <string_view>

namespace cohost::runtime {

TokenMask::TokenMask(absl::Span<const std::string> token_bytes)
    : vocab_size_(static_cast<int32_t>(token_bytes.size())) {
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (!token_bytes[id].empty()) ids_.push_back(id);
  }
  std::sort(ids_.begin(), ids_.end(),
            [&](int32_t a, int32_t b) { return token_bytes[a] < token_bytes[b]; });
  offsets_.reserve(ids_.size() + 1);
  shared_.reserve(ids_.size());
  std::string_view previous;
  for (const int32_t id : ids_) {
    const std::string& bytes = token_bytes[id];
    const auto [mismatch, unused] =
        std::mismatch(previous.begin(), previous.end(), bytes.begin(), bytes.end());
    shared_.push_back(static_cast<uint32_t>(mismatch - previous.begin()));
    longest_ = std::max(longest_, static_cast<int32_t>(bytes.size()));
    offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
    bytes_ += bytes;
    previous = token_bytes[id];
  }
  offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
}

int32_t TokenMask::Allowed(const JsonSchema& schema, const JsonGrammar& state,
                           absl::Span<uint8_t> allowed) const {
  std::fill(allowed.begin(), allowed.end(), uint8_t{0});
  // states[d]: the state after the current token's first d bytes. Valid up to
  // where the last walk got, which is at least the next token's shared prefix
  // (the tokens that share a refused prefix are skipped).
  thread_local std::vector<JsonGrammar> states;
  states.assign(1, state);
  int32_t count = 0;
  const size_t n = ids_.size();
  for (size_t i = 0; i < n;) {
    const uint32_t begin = offsets_[i];
    const uint32_t length = offsets_[i + 1] - begin;
    uint32_t depth = shared_[i];
    states.resize(std::max<size_t>(states.size(), length + 1));
    while (depth < length) {
      states[depth + 1] = states[depth];
      if (!states[depth + 1].Feed(schema, static_cast<uint8_t>(bytes_[begin + depth]))) break;
      ++depth;
    }
    ++i;
    if (depth == length) {
      allowed[ids_[i - 1]] = 1;
      ++count;
      continue;
    }
    // Refused at byte `depth`: so is every token that shares bytes [0, depth].
    while (i < n && shared_[i] > depth) ++i;
  }
  return count;
}

}  // namespace cohost::runtime
