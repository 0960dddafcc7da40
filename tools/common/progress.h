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
  // Like Update, for counts: shows "(DONE / TOTAL UNIT)", e.g. "(37 / 100 requests)".
  void UpdateCount(uint64_t done, uint64_t total, const std::string& unit);
  void Finish();

 private:
  // Redraws the bar at done / total with `detail` after it, when the percent moved.
  void Draw(uint64_t done, uint64_t total, const std::string& detail);

  std::string label_;
  bool tty_;
  int last_percent_ = -1;
  bool finished_ = false;
};

}  // namespace cohost::tools
