#include "scheduler/model_name.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

namespace cohost::scheduler {

absl::Status ValidateModelName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("the model name is empty");
  if (name.size() > kMaxModelNameLength) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the model name is %d characters long; at most %d are allowed", name.size(),
                        kMaxModelNameLength));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the model name \"%s\" may only contain letters, digits, '.', '_' and '-'",
          absl::CHexEscape(absl::string_view(name.data(), name.size()))));
    }
  }
  return absl::OkStatus();
}

}  // namespace cohost::scheduler
