// A progress line on stderr for long operations (model loading, benchmarks):
// redrawn in place on a terminal, a few plain lines otherwise.
#pragma once

#include <cstdint>
#include <string>

namespace cohost::tools {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void Update(uint64_t done, uint64_t total);  // thread-compatible, not thread-safe
  void Finish();

 private:
  std::string label_;
  bool tty_;
  int last_percent_ = -1;
  bool finished_ = false;
};

}  // namespace cohost::tools
