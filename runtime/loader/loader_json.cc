// JSON from model files, bounded: a first pass (nlohmann's SAX interface)
// sees every key, every nesting depth and counts the values; only then is the
// document built.
#include "runtime/loader/loader_json.h"

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/loader/mapped_file.h"

namespace cohost::runtime {
namespace {

constexpr int kMaxJsonDepth = 64;
// A built document costs 16 bytes and more a value, so a file of tiny
// values takes ~20x its size; a Llama 3 tokenizer.json (the largest of these
// files) holds ~1.2M values.
constexpr size_t kMaxJsonValues = size_t{8} << 20;

// The first pass. nlohmann's parser keeps the last of duplicate keys
// silently; this sees every key. (Its callback parser would too, but in
// nlohmann 3.11 a callback makes parsing quadratic in an object's members.)
class BoundsCheck : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit BoundsCheck(bool duplicates_are_errors)
      : duplicates_are_errors_(duplicates_are_errors) {}
  const std::string& problem() const { return problem_; }

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(/*object=*/true); }
  bool key(string_t& k) override {
    if (duplicates_are_errors_ && !keys_.back().insert(k).second) {
      problem_ = absl::StrCat("duplicate key \"", k.substr(0, 64), "\"");
      return false;
    }
    return true;
  }
  bool end_object() override { return Close(/*object=*/true); }
  bool start_array(std::size_t) override { return Open(/*object=*/false); }
  bool end_array() override { return Close(/*object=*/false); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    problem_ = "malformed JSON";
    return false;
  }

 private:
  bool Value() {
    if (++values_ <= kMaxJsonValues) return true;
    problem_ = absl::StrCat("more than ", kMaxJsonValues, " values");
    return false;
  }
  bool Open(bool object) {
    if (!Value()) return false;
    if (++depth_ > kMaxJsonDepth) {
      problem_ = absl::StrCat("nested deeper than ", kMaxJsonDepth, " levels");
      return false;
    }
    if (object && duplicates_are_errors_) keys_.emplace_back();
    return true;
  }
  bool Close(bool object) {
    --depth_;
    if (object && duplicates_are_errors_) keys_.pop_back();
    return true;
  }

  bool duplicates_are_errors_;
  int depth_ = 0;
  size_t values_ = 0;
  std::vector<absl::flat_hash_set<std::string>> keys_;  // one set per open object
  std::string problem_;
};

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view what,
                                         bool duplicates_are_errors) {
  BoundsCheck check(duplicates_are_errors);
  if (!nlohmann::json::sax_parse(text.begin(), text.end(), &check,
                                 nlohmann::json::input_format_t::json, /*strict=*/true)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", check.problem().empty() ? "malformed JSON" : check.problem()));
  }
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                                           /*allow_exceptions=*/false);
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
