#include "runtime/sampling/stop_checker.h"

#include <algorithm>
#include <utility>

namespace cohost::runtime {

StopChecker::StopChecker(std::vector<std::string> stop_strings)
    : stop_strings_(std::move(stop_strings)) {
  std::erase_if(stop_strings_, [](const std::string& s) { return s.empty(); });
}

size_t StopChecker::HeldBackLength() const {
  const std::string_view text = pending_;
  size_t longest = 0;
  for (const std::string& stop : stop_strings_) {
    // Only suffixes longer than the best so far can improve it.
    for (size_t len = std::min(stop.size() - 1, text.size()); len > longest; --len) {
      if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

StopChecker::Result StopChecker::Push(std::string_view delta) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    result.matched = matched_;
    return result;
  }
  if (stop_strings_.empty()) {
    result.text = delta;
    return result;
  }
  pending_.append(delta);

  // pending_ held no complete stop string before this delta, so any match ends in
  // the new text; the first occurrence of each string is its earliest end.
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  const std::string* best = nullptr;
  for (const std::string& stop : stop_strings_) {
    const size_t start = pending_.find(stop);
    if (start == std::string::npos) continue;
    const size_t end = start + stop.size();
    if (end < best_end || (end == best_end && start < best_start)) {
      best_end = end;
      best_start = start;
      best = &stop;
    }
  }
  if (best != nullptr) {
    stopped_ = true;
    matched_ = *best;
    result.text = pending_.substr(0, best_start);
    result.stopped = true;
    result.matched = matched_;
    pending_.clear();
    return result;
  }

  const size_t held = HeldBackLength();
  result.text = pending_.substr(0, pending_.size() - held);
  pending_.erase(0, pending_.size() - held);
  return result;
}

std::string StopChecker::Flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace cohost::runtime
