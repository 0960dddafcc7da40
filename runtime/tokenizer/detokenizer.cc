#include "runtime/tokenizer/detokenizer.h"

#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& t, bool skip_special,
                                               bool at_text_start)
    : tokenizer_(t), skip_special_(skip_special), at_start_(at_text_start) {}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) return "";
  const bool control = tokenizer_.SkippedAsSpecial(id);
  if (control && skip_special_) return "";
  std::string bytes = tokenizer_.TokenBytes(id);
  if (!control) {
    // Same rule as Tokenizer::Decode: the space prefix of the first text token.
    if (at_start_ && tokenizer_.strips_leading_space() && !bytes.empty() && bytes[0] == ' ') {
      bytes.erase(0, 1);
    }
    at_start_ = false;
  }
  pending_ += bytes;
  std::string out;
  const size_t used = ConsumeCompleteUtf8(pending_, &out);
  pending_.erase(0, used);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace cohost::runtime
