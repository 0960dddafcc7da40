#include "scheduler/tenant_config.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tenant_name.h"

namespace cohost::scheduler {
namespace {

using config_yaml::Describe;
using config_yaml::LineOf;
using config_yaml::Quote;
using config_yaml::SubPath;
using config_yaml::UnknownField;
using config_yaml::YamlReader;

constexpr std::array<absl::string_view, 6> kTenantFields = {
    "name",        "weight", "tokens_per_minute", "max_streams", "max_queued_prompt_tokens",
    "max_priority"};

// Applies one map of tenant fields to `limits` (and `name`, when a list
// entry); `defaults`: the tenant_defaults map, where name is not allowed.
absl::Status ApplyTenantFields(const YamlReader& reader, const YAML::Node& map, int map_line,
                               const std::string& path, bool defaults, TenantLimits& limits,
                               std::string* name, int* name_line) {
  if (!map.IsMap()) {
    return reader.Error(map_line, path,
                        absl::StrCat("expected a map of tenant fields, got ", Describe(map)));
  }
  std::vector<absl::string_view> allowed(kTenantFields.begin() + (defaults ? 1 : 0),
                                         kTenantFields.end());
  std::array<int, kTenantFields.size()> seen;
  seen.fill(-1);
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    const int line = LineOf(key, map_line);
    if (!key.IsScalar()) {
      return reader.Error(line, path,
                          absl::StrCat("expected field names, got ", Describe(key), " as a key"));
    }
    const std::string& field = key.Scalar();
    const std::string field_path = SubPath(path, field);
    const auto it = std::find(allowed.begin(), allowed.end(), field);
    if (it == allowed.end()) {
      return reader.Error(line, field_path,
                          field == "name" ? std::string("not allowed in tenant_defaults")
                                          : UnknownField(field, allowed));
    }
    int& first =
        seen[std::find(kTenantFields.begin(), kTenantFields.end(), field) - kTenantFields.begin()];
    if (first >= 0) {
      return reader.Error(line, field_path,
                          absl::StrCat("set twice (first on line ", first + 1, ")"));
    }
    first = line;
    const std::string budget = "an integer >= 0 (0: no limit)";
    if (field == "name") {
      ASSIGN_OR_RETURN(std::string n, reader.ParseString(value, line, field_path));
      if (n.empty()) return reader.Error(line, field_path, "the name is empty");
      if (absl::Status s = ValidateTenantName(n); !s.ok()) {
        return reader.Error(line, field_path, s.message());
      }
      *name = std::move(n);
      *name_line = line;
    } else if (field == "weight") {
      ASSIGN_OR_RETURN(limits.weight,
                       reader.ParsePositive(value, line, field_path, kMaxTenantWeight));
      if (limits.weight < kMinTenantWeight) {
        return reader.Error(
            line, field_path,
            absl::StrCat("a weight is at least ", kMinTenantWeight, ", got ", limits.weight));
      }
    } else if (field == "tokens_per_minute") {
      ASSIGN_OR_RETURN(limits.tokens_per_minute,
                       reader.ParseInt(value, line, field_path, 0, kMaxTenantBudget, budget));
    } else if (field == "max_streams") {
      ASSIGN_OR_RETURN(const int64_t n,
                       reader.ParseInt(value, line, field_path, 0, 1'000'000, budget));
      limits.max_streams = static_cast<int32_t>(n);
    } else if (field == "max_queued_prompt_tokens") {
      ASSIGN_OR_RETURN(limits.max_queued_prompt_tokens,
                       reader.ParseInt(value, line, field_path, 0, kMaxTenantBudget, budget));
    } else {
      ASSIGN_OR_RETURN(const int64_t p,
                       reader.ParseInt(value, line, field_path, -kMaxTenantPriority,
                                       kMaxTenantPriority, "an integer"));
      limits.max_priority = static_cast<int32_t>(p);
    }
  }
  if (!defaults && seen[0] < 0) return reader.Error(map_line, path, "missing name");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TenantPolicy> ParseTenantSections(const YamlReader& reader,
                                                 const YAML::Node& defaults, int defaults_line,
                                                 const YAML::Node& tenants, int tenants_line) {
  TenantPolicy policy;
  // An empty section (every line commented out) is no section.
  if (defaults_line >= 0 && !defaults.IsNull()) {
    RETURN_IF_ERROR(ApplyTenantFields(reader, defaults, defaults_line, "tenant_defaults",
                                      /*defaults=*/true, policy.defaults, nullptr, nullptr));
  }
  if (tenants_line < 0 || tenants.IsNull()) return policy;
  if (!tenants.IsSequence()) {
    return reader.Error(tenants_line, "tenants",
                        absl::StrCat("expected a list of tenants, got ", Describe(tenants)));
  }
  std::map<std::string, int> name_lines;
  size_t index = 0;
  for (const YAML::Node& item : tenants) {
    const std::string path = absl::StrCat("tenants[", index++, "]");
    TenantLimits limits = policy.defaults;
    std::string name;
    int name_line = -1;
    RETURN_IF_ERROR(ApplyTenantFields(reader, item, LineOf(item, tenants_line), path,
                                      /*defaults=*/false, limits, &name, &name_line));
    const auto [it, inserted] = name_lines.emplace(name, name_line);
    if (!inserted) {
      return reader.Error(name_line, absl::StrCat(path, ".name"),
                          absl::StrCat("duplicate tenant name ", Quote(name), " (first on line ",
                                       it->second + 1, ")"));
    }
    policy.named.emplace(std::move(name), limits);
  }
  return policy;
}

}  // namespace cohost::scheduler
