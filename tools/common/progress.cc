// Progress rendering.

#include "tools/common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace cohost::tools {

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}

void ProgressBar::Update(uint64_t done, uint64_t total) {
  char detail[64];
  std::snprintf(detail, sizeof detail, "(%.1f / %.1f MB)", done / 1e6, total / 1e6);
  Draw(done, total, detail);
}

void ProgressBar::UpdateCount(uint64_t done, uint64_t total, const std::string& unit) {
  Draw(done, total, absl::StrCat("(", done, " / ", total, " ", unit, ")"));
}

void ProgressBar::Draw(uint64_t done, uint64_t total, const std::string& detail) {
  if (finished_ || total == 0) return;
  const int percent = static_cast<int>(std::min(done, total) * 100 / total);
  // On a pipe, print the start and then every 25% so logs stay short.
  if (percent == last_percent_ ||
      (!tty_ && last_percent_ >= 0 && percent / 25 == last_percent_ / 25)) {
    return;
  }
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               percent, detail.c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && last_percent_ >= 0) std::fputc('\n', stderr);
}

}  // namespace cohost::tools
