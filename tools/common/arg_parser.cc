// Implementation of the subcommand flag parser.

#include "tools/common/arg_parser.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohost::tools {

std::vector<std::string> ParsedArgs::All(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

absl::StatusOr<std::optional<int64_t>> ParsedArgs::GetInt(const std::string& name, int64_t lo,
                                                          int64_t hi) const {
  std::optional<std::string> v = Get(name);
  if (!v) return std::optional<int64_t>();
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--%s: expected an integer in [%d, %d], got '%s'", name, lo, hi, *v));
  }
  return std::optional<int64_t>(x);
}

absl::StatusOr<std::optional<double>> ParsedArgs::GetDouble(const std::string& name) const {
  std::optional<std::string> v = Get(name);
  if (!v) return std::optional<double>();
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--%s: expected a number, got '%s'", name, *v));
  }
  return std::optional<double>(x);
}

namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, std::string_view name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// True when `arg` spells one of the command's own flags ("--chat", "--n=3").
bool IsKnownFlag(const std::vector<FlagSpec>& specs, std::string_view arg) {
  if (arg.size() <= 2 || arg.substr(0, 2) != "--") return false;
  std::string_view name = arg.substr(2);
  name = name.substr(0, name.find('='));
  return FindSpec(specs, name) != nullptr;
}

}  // namespace

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<FlagSpec>& specs, int argc, char** argv) {
  ParsedArgs out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    std::string value;
    if (spec->value_name.empty()) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      value = "true";
    } else if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc && IsKnownFlag(specs, argv[i + 1])) {
      // `--prompt --chat` almost always means a forgotten value, not the prompt "--chat".
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " needs a value (", spec->value_name, "), not the flag ", argv[i + 1],
          "; write --", name, "=", argv[i + 1], " to pass it as the value"));
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (", spec->value_name, ")"));
    }
    std::vector<std::string>& slot = out.values_[name];
    if (!slot.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given more than once"));
    }
    slot.push_back(std::move(value));
  }
  return out;
}

std::string FlagsHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("  --", s.name);
    if (!s.value_name.empty()) absl::StrAppend(&left, " ", s.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    absl::StrAppend(&out, left, " ", s.help, s.repeated ? " (repeatable)" : "", "\n");
  }
  return out;
}

}  // namespace cohost::tools
