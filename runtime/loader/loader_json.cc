// JSON from model files, bounded: through a parser callback that sees every
// key and every nesting depth.
#include "runtime/loader/loader_json.h"

#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/loader/mapped_file.h"

namespace cohost::runtime {
namespace {

constexpr int kMaxJsonDepth = 64;

// nlohmann's parser keeps the last of duplicate keys silently; its callback
// sees every key, and every nesting depth.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view what,
                                         bool duplicates_are_errors) {
  using Event = nlohmann::json::parse_event_t;
  std::vector<absl::flat_hash_set<std::string>> keys;  // one set per open object
  std::string problem;
  auto callback = [&](int depth, Event event, nlohmann::json& parsed) -> bool {
    if (!problem.empty()) return false;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        if (depth >= kMaxJsonDepth) {
          problem = absl::StrCat("nested deeper than ", kMaxJsonDepth, " levels");
          return false;
        }
        if (event == Event::object_start) keys.emplace_back();
        break;
      case Event::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Event::key:
        if (duplicates_are_errors && !keys.empty() && parsed.is_string()) {
          const std::string& k = parsed.get_ref<const std::string&>();
          if (!keys.back().insert(k).second) {
            problem = absl::StrCat("duplicate key \"", k, "\"");
            return false;
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), callback,
                                           /*allow_exceptions=*/false);
  if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", problem));
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON"));
  return j;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonStrict(absl::string_view text, absl::string_view what) {
  return ParseJson(text, what, /*duplicates_are_errors=*/true);
}

absl::StatusOr<nlohmann::json> ParseJsonBounded(absl::string_view text, absl::string_view what) {
  return ParseJson(text, what, /*duplicates_are_errors=*/false);
}

std::optional<int64_t> JsonInt64(const nlohmann::json& j) {
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes) {
  absl::StatusOr<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  if (file->size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", file->size(), " bytes is larger than the limit of ", max_bytes));
  }
  return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

}  // namespace cohost::runtime
