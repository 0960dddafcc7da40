// ProgressBar on a pipe (a log): a line at the start, then one each quarter.

#include "tools/common/progress.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

TEST(ProgressBarTest, OnAPipeItPrintsTheStartThenEachQuarter) {
  ::testing::internal::CaptureStderr();  // stderr a file: no terminal
  {
    ProgressBar bar("loading m");
    for (uint64_t done = 0; done <= 100; done += 5) bar.Update(done * 1'000'000, 100'000'000);
    bar.Finish();
  }
  const std::string out = ::testing::internal::GetCapturedStderr();
  std::vector<std::string> percents;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    const size_t end = line.find('%');
    ASSERT_NE(end, absl::string_view::npos) << line;
    percents.emplace_back(absl::StripLeadingAsciiWhitespace(line.substr(end - 3, 3)));
  }
  EXPECT_THAT(percents, ::testing::ElementsAre("0", "25", "50", "75", "100")) << out;
}

}  // namespace
}  // namespace cohost::tools
