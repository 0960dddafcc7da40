// Stop-string matching over streamed text: holds back text that could still become a
// stop string, so a stop string is never partially emitted to the client.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cohost::runtime {

// When several stop strings complete in the same text, the one that ends first wins
// (ties: the one that starts first), so the result does not depend on how the text
// was split into deltas. Held-back text is at most (longest stop string - 1) bytes.
// Deltas of whole UTF-8 characters give emitted text of whole characters.
class StopChecker {
 public:
  // Empty strings are ignored (SamplingParams::Validate rejects them).
  explicit StopChecker(std::vector<std::string> stop_strings);

  struct Result {
    std::string text;  // safe to emit now
    bool stopped = false;
    std::string matched;  // the stop string that completed, when stopped
  };

  // text: what is safe to emit now; when a stop string completed, stopped is set and
  // text excludes the stop string and everything after it. After a stop every call
  // returns stopped with no text.
  Result Push(std::string_view delta);
  // At the end of generation: the held-back text (empty after a stop).
  std::string Flush();

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of a stop string.
  size_t HeldBackLength() const;

  std::vector<std::string> stop_strings_;
  std::string pending_;  // held back: a possible start of a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace cohost::runtime
