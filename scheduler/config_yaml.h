// What the parsers of `cohost serve --config` share (scheduler-internal):
// reading yaml-cpp nodes strictly (decimal integers only, quoted numbers
// refused, strings only where strings belong) and wording errors as
// `FILE:LINE: FIELD.PATH: what`. yaml-cpp throws; callers run these under the
// one try in model_config_file.cc.
#pragma once

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/quote.h"

namespace cohost::scheduler::config_yaml {

// Debian's absl::string_view is its own type, not std::string_view; the
// public API takes std's, everything inside works in absl's.
inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Operator text quoted for an error (common/quote.h).
using ::cohost::Quote;
// What an unexpected value is, in an error (never walks into a list or map).
std::string Describe(const YAML::Node& node);
// A node's 0-based line, or `fallback` where yaml-cpp has none for it.
int LineOf(const YAML::Node& node, int fallback);
// "unknown field", with the nearest known name when the key looks like one.
std::string UnknownField(absl::string_view key, const std::vector<absl::string_view>& known);
// A field path with a key appended; odd keys are escaped.
std::string SubPath(absl::string_view path, absl::string_view key);

// Counts the documents in a stream and notes where the second starts.
// yaml-cpp 0.7 sees endless empty documents after some junk (`{},`), so
// LoadAll allocates until it runs out of memory; a caller of this stops at two.
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }
  int second_line() const { return second_line_; }  // 0-based; -1 if unknown

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ == 2) second_line_ = mark.is_null() ? -1 : mark.line;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  int documents_ = 0;
  int second_line_ = -1;
};

// Reads values out of one file's nodes; every error names the file.
class YamlReader {
 public:
  explicit YamlReader(absl::string_view file) : file_(file) {}

  // `FILE:LINE: PATH: what`, LINE 1-based; without LINE where yaml-cpp gave none.
  absl::Status Error(int line, absl::string_view path, absl::string_view what) const;
  // A plain decimal integer in [min, max]; `expected` words the range.
  absl::StatusOr<int64_t> ParseInt(const YAML::Node& value, int line, const std::string& path,
                                   int64_t min, int64_t max, absl::string_view expected) const;
  // A plain decimal number (1, 0.5, 2.25) in (0, max].
  absl::StatusOr<double> ParsePositive(const YAML::Node& value, int line, const std::string& path,
                                       double max) const;
  absl::StatusOr<std::string> ParseString(const YAML::Node& value, int line,
                                          const std::string& path) const;

 private:
  absl::string_view file_;
};

}  // namespace cohost::scheduler::config_yaml
