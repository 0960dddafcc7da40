// The reasoning/answer split of a streamed output. See reasoning_split.h.

#include "runtime/tokenizer/reasoning_split.h"

#include "runtime/tokenizer/tag_scan.h"

namespace cohost::runtime {

ReasoningSplitter::Parts ReasoningSplitter::Push(std::string_view delta) {
  Parts out;
  held_.append(delta);
  std::string_view text = held_;
  // Each pass either changes state or gives out all it can and stops.
  while (true) {
    if (state_ == State::kStart) {
      // The whitespace held is not read again: a reply opening with many
      // whitespace tokens costs each one its own bytes only.
      size_t start = space_held_;
      while (start < text.size() && IsBlockSpace(text[start])) ++start;
      space_held_ = start;
      const std::string_view rest = text.substr(start);
      if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
        text = rest.substr(kThinkOpen.size());
        state_ = State::kReasoning;
        continue;
      }
      // Whitespace, or the start of "<think>": wait for more.
      if (rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) break;
      state_ = State::kContent;  // no block: all of it is the answer
      continue;
    }
    if (state_ == State::kReasoning) {
      if (const size_t close = text.find(kThinkClose); close != std::string_view::npos) {
        out.reasoning.append(text.substr(0, close));
        text.remove_prefix(close + kThinkClose.size());
        state_ = State::kAfterBlock;
        continue;
      }
      const size_t keep = PartialTagSuffix(text, kThinkClose);
      out.reasoning.append(text.substr(0, text.size() - keep));
      text.remove_prefix(text.size() - keep);
      break;
    }
    if (state_ == State::kAfterBlock) {
      while (!text.empty() && IsBlockSpace(text.front())) text.remove_prefix(1);
      if (text.empty()) break;
      state_ = State::kContent;
      continue;
    }
    out.content.append(text);  // kContent
    text = {};
    break;
  }
  // Kept as it is when nothing was given out (no copy of all it holds).
  if (text.data() != held_.data() || text.size() != held_.size()) held_ = std::string(text);
  return out;
}

ReasoningSplitter::Parts ReasoningSplitter::Finish() {
  Parts out;
  if (state_ == State::kReasoning) {
    out.reasoning = std::move(held_);
  } else if (state_ != State::kAfterBlock) {
    out.content = std::move(held_);
  }
  held_.clear();
  state_ = State::kContent;
  return out;
}

}  // namespace cohost::runtime
