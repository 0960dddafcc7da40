// Progress rendering.

#include "tools/progress.h"

#include <unistd.h>

#include <cstdio>

namespace cohost::tools {

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}

void ProgressBar::Update(uint64_t done, uint64_t total) {
  if (finished_ || total == 0) return;
  const int percent = static_cast<int>(done * 100 / total);
  // On a pipe, print every 25% so logs stay short.
  if (percent == last_percent_ || (!tty_ && percent / 25 == last_percent_ / 25)) return;
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% (%.1f / %.1f MB)%s", tty_ ? "\r" : "", label_.c_str(),
               bar.c_str(), percent, done / 1e6, total / 1e6, tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && last_percent_ >= 0) std::fputc('\n', stderr);
}

}  // namespace cohost::tools
