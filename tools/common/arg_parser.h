// A small command-line parser for `cohost SUBCOMMAND [flags]`: repeated flags,
// --name=value and --name value, booleans, and typed values with range errors.
// (absl::flags is process-global and keeps only the last of a repeated flag.)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohost::tools {

struct FlagSpec {
  std::string name;        // without dashes
  std::string value_name;  // empty: a boolean flag
  std::string help;
  bool repeated = false;
};

class ParsedArgs {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::vector<std::string> All(const std::string& name) const;
  std::optional<std::string> Get(const std::string& name) const;
  absl::StatusOr<std::optional<int64_t>> GetInt(const std::string& name, int64_t lo,
                                                int64_t hi) const;
  absl::StatusOr<std::optional<double>> GetDouble(const std::string& name) const;

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<FlagSpec>&, int, char**);
  std::map<std::string, std::vector<std::string>> values_;
};

// Parses argv[first..argc). INVALID_ARGUMENT for unknown flags, missing values,
// a non-repeatable flag given twice, or positional arguments. A separate value may
// start with dashes unless it spells one of `specs` (`--prompt --chat` is refused;
// `--prompt=--chat` passes "--chat").
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<FlagSpec>& specs, int argc, char** argv);

std::string FlagsHelp(const std::vector<FlagSpec>& specs);

}  // namespace cohost::tools
