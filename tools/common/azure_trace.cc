// ParseAzureTraceCsv: the Azure LLM inference trace's rows, checked.
#include "tools/common/azure_trace.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cohost::tools {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil algorithm), so traces spanning midnight or a month end work.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t DaysInMonth(int64_t y, int64_t m) {
  static constexpr int64_t kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// "YYYY-MM-DD HH:MM:SS[.fraction]" -> seconds since the epoch (no time zone).
std::optional<double> ParseTimestamp(absl::string_view s) {
  std::vector<absl::string_view> date_time = absl::StrSplit(s, ' ');
  if (date_time.size() != 2) return std::nullopt;
  std::vector<absl::string_view> ymd = absl::StrSplit(date_time[0], '-');
  std::vector<absl::string_view> hms = absl::StrSplit(date_time[1], ':');
  if (ymd.size() != 3 || hms.size() != 3) return std::nullopt;
  int64_t y, mo, d, h, mi;
  double sec;
  if (!absl::SimpleAtoi(ymd[0], &y) || !absl::SimpleAtoi(ymd[1], &mo) ||
      !absl::SimpleAtoi(ymd[2], &d) || !absl::SimpleAtoi(hms[0], &h) ||
      !absl::SimpleAtoi(hms[1], &mi) || !absl::SimpleAtod(hms[2], &sec)) {
    return std::nullopt;
  }
  // Years of four digits: the day count's arithmetic stays far from overflow.
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) || h < 0 ||
      h > 23 || mi < 0 || mi > 59 || !(sec >= 0 && sec < 61)) {
    return std::nullopt;
  }
  return DaysFromCivil(y, mo, d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
}

absl::Status TraceError(size_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("trace line ", line, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<TraceRow>> ParseAzureTraceCsv(std::string_view content) {
  std::vector<TraceRow> rows;
  size_t line_no = 0;
  double first = 0, prev = 0;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(content.data(), content.size()), '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line_no == 1) {
      if (line != "TIMESTAMP,ContextTokens,GeneratedTokens") {
        return TraceError(1, "expected the header TIMESTAMP,ContextTokens,GeneratedTokens");
      }
      continue;
    }
    if (line.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ',');
    if (f.size() != 3) return TraceError(line_no, "expected 3 comma-separated fields");
    std::optional<double> t = ParseTimestamp(f[0]);
    if (!t) {
      return TraceError(line_no, absl::StrCat("bad TIMESTAMP '", f[0],
                                              "' (expected YYYY-MM-DD HH:MM:SS.fraction)"));
    }
    int64_t context = 0, generated = 0;
    if (!absl::SimpleAtoi(f[1], &context) || context < 0 ||
        context > std::numeric_limits<int32_t>::max()) {
      return TraceError(line_no, absl::StrCat("bad ContextTokens '", f[1], "'"));
    }
    if (!absl::SimpleAtoi(f[2], &generated) || generated < 0 ||
        generated > std::numeric_limits<int32_t>::max()) {
      return TraceError(line_no, absl::StrCat("bad GeneratedTokens '", f[2], "'"));
    }
    if (rows.empty()) first = prev = *t;
    if (*t < prev) return TraceError(line_no, "TIMESTAMP goes backwards");
    prev = *t;
    rows.push_back({*t - first, static_cast<int32_t>(context), static_cast<int32_t>(generated)});
  }
  if (rows.empty()) return absl::InvalidArgumentError("trace has no rows");
  return rows;
}

}  // namespace cohost::tools
