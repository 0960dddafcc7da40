// Parses `cohost serve --config` files with yaml-cpp. yaml-cpp reports errors
// by throwing; cohost does not otherwise use exceptions, so every call into it
// (here, config_yaml.cc, tenant_config.cc) happens under the one try in
// ParseServeConfig and nothing escapes this file.
#include "scheduler/model_config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "scheduler/config_yaml.h"
#include "scheduler/model_name.h"
#include "scheduler/model_path.h"
#include "scheduler/tenant_config.h"

namespace cohost::scheduler {
namespace {

using config_yaml::AsAbsl;
using config_yaml::Describe;
using config_yaml::DocumentCounter;
using config_yaml::LineOf;
using config_yaml::Quote;
using config_yaml::SubPath;
using config_yaml::UnknownField;
using config_yaml::YamlReader;

enum class Field {
  kName,
  kPath,
  kLoad,
  kKeepAlive,
  kKvFloor,
  kKvCap,
  kTtftTarget,
  kTpotTarget,
  kAdmitMargin,
  kPriority,
  kDevice,
  kChatTemplate,
};

struct FieldInfo {
  absl::string_view key;
  Field field;
  bool per_model_only;  // not allowed under `defaults`
};

constexpr std::array<FieldInfo, 12> kFields = {{
    {"name", Field::kName, true},
    {"path", Field::kPath, true},
    {"load", Field::kLoad, false},
    {"keep_alive_s", Field::kKeepAlive, false},
    {"kv_floor_mb", Field::kKvFloor, false},
    {"kv_cap_mb", Field::kKvCap, false},
    {"ttft_target_ms", Field::kTtftTarget, false},
    {"tpot_target_ms", Field::kTpotTarget, false},
    {"ttft_admit_margin_pct", Field::kAdmitMargin, false},
    {"priority", Field::kPriority, false},
    {"device", Field::kDevice, true},
    {"chat_template", Field::kChatTemplate, true},
}};

constexpr std::array<absl::string_view, 4> kTopLevelKeys = {"defaults", "models", "tenant_defaults",
                                                            "tenants"};

// The 0-based line of each field's key in one map, -1 where it is not set.
using FieldLines = std::array<int, kFields.size()>;

constexpr FieldLines kNoFieldLines = [] {
  FieldLines lines{};
  lines.fill(-1);
  return lines;
}();

size_t FieldIndex(Field field) { return static_cast<size_t>(field); }

bool ValidDevice(absl::string_view device) {
  return device == "cpu" || ParseCudaDevice(std::string_view(device.data(), device.size()));
}

class ConfigParser : public YamlReader {
 public:
  explicit ConfigParser(absl::string_view file) : YamlReader(file) {}

  // May throw YAML::Exception (or bad_alloc); the caller catches.
  absl::StatusOr<ServeConfig> Parse(absl::string_view text);

 private:
  absl::Status ApplyFields(const YAML::Node& map, int map_line, absl::string_view path,
                           bool defaults, ModelSpec& spec, FieldLines& lines) const;
  absl::Status ApplyField(Field field, const YAML::Node& value, int line, const std::string& path,
                          ModelSpec& spec) const;
  // Sets `name_line` to the 0-based line of the model's name.
  absl::StatusOr<ModelSpec> ParseModel(const YAML::Node& item, int line, const std::string& path,
                                       const ModelSpec& defaults, int& name_line) const;
};

absl::Status ConfigParser::ApplyField(Field field, const YAML::Node& value, int line,
                                      const std::string& path, ModelSpec& spec) const {
  switch (field) {
    case Field::kName: {
      ASSIGN_OR_RETURN(std::string name, ParseString(value, line, path));
      if (absl::Status s = ValidateModelName(name); !s.ok()) return Error(line, path, s.message());
      spec.name = std::move(name);
      return absl::OkStatus();
    }
    case Field::kPath:
    case Field::kChatTemplate: {
      ASSIGN_OR_RETURN(std::string file, ParseString(value, line, path));
      if (absl::Status s = CheckFilePath(file); !s.ok()) return Error(line, path, s.message());
      (field == Field::kPath ? spec.path : spec.chat_template) = std::move(file);
      return absl::OkStatus();
    }
    case Field::kLoad: {
      if (value.IsScalar() && value.Scalar() == "startup") {
        spec.load = LoadPolicy::kStartup;
      } else if (value.IsScalar() && value.Scalar() == "lazy") {
        spec.load = LoadPolicy::kLazy;
      } else {
        return Error(line, path, absl::StrCat("expected startup or lazy, got ", Describe(value)));
      }
      return absl::OkStatus();
    }
    case Field::kKeepAlive: {
      if (value.IsScalar() && value.Scalar() == "forever") {
        spec.keep_alive = std::nullopt;
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(int64_t seconds, ParseInt(value, line, path, 0, kMaxKeepAliveSeconds,
                                                 "an integer >= 0 or \"forever\""));
      spec.keep_alive = std::chrono::seconds(seconds);
      return absl::OkStatus();
    }
    case Field::kKvFloor:
    case Field::kKvCap: {
      ASSIGN_OR_RETURN(int64_t mb, ParseInt(value, line, path, 0, kMaxKvMb, "an integer >= 0"));
      // kMaxKvMb * 2^20 = 2^60: no overflow.
      (field == Field::kKvFloor ? spec.kv_floor_bytes : spec.kv_cap_bytes) = mb << 20;
      return absl::OkStatus();
    }
    case Field::kTtftTarget:
    case Field::kTpotTarget: {
      ASSIGN_OR_RETURN(int64_t ms, ParseInt(value, line, path, 1, kMaxTargetMs, "an integer >= 1"));
      (field == Field::kTtftTarget ? spec.ttft_target : spec.tpot_target) =
          std::chrono::milliseconds(ms);
      return absl::OkStatus();
    }
    case Field::kAdmitMargin: {
      const std::string expected = absl::StrFormat("an integer in [0, %d]", kMaxAdmitMarginPct);
      ASSIGN_OR_RETURN(int64_t pct, ParseInt(value, line, path, 0, kMaxAdmitMarginPct, expected));
      spec.ttft_admit_margin_pct = static_cast<int32_t>(pct);
      return absl::OkStatus();
    }
    case Field::kPriority: {
      const std::string expected =
          absl::StrFormat("an integer in [%d, %d]", -kMaxPriority, kMaxPriority);
      ASSIGN_OR_RETURN(int64_t priority,
                       ParseInt(value, line, path, -kMaxPriority, kMaxPriority, expected));
      spec.priority = static_cast<int32_t>(priority);
      return absl::OkStatus();
    }
    case Field::kDevice: {
      const std::string expected =
          absl::StrFormat("expected cpu or cuda:N with N in [0, %d], got ", kMaxCudaDevice);
      if (!value.IsScalar()) return Error(line, path, absl::StrCat(expected, Describe(value)));
      const std::string& device = value.Scalar();
      if (!ValidDevice(device)) return Error(line, path, absl::StrCat(expected, Describe(value)));
      spec.device = device;
      return absl::OkStatus();
    }
  }
  return Error(line, path, "internal error: unhandled field");
}

absl::Status ConfigParser::ApplyFields(const YAML::Node& map, int map_line, absl::string_view path,
                                       bool defaults, ModelSpec& spec, FieldLines& lines) const {
  std::vector<absl::string_view> allowed;
  for (const FieldInfo& info : kFields) {
    if (!defaults || !info.per_model_only) allowed.push_back(info.key);
  }
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    const int line = LineOf(key, map_line);
    if (!key.IsScalar()) {
      return Error(line, path,
                   absl::StrCat("expected field names, got ", Describe(key), " as a key"));
    }
    const std::string& name = key.Scalar();
    const std::string field_path = SubPath(path, name);
    const auto info = std::find_if(kFields.begin(), kFields.end(),
                                   [&](const FieldInfo& f) { return f.key == name; });
    if (info == kFields.end()) return Error(line, field_path, UnknownField(name, allowed));
    if (defaults && info->per_model_only) {
      return Error(line, field_path, "not allowed in defaults; set it per model");
    }
    int& first_line = lines[FieldIndex(info->field)];
    if (first_line >= 0) {
      return Error(line, field_path,
                   absl::StrCat("set twice (first on line ", first_line + 1, ")"));
    }
    first_line = line;
    // Errors about the value point at the key's line: a null value's mark is
    // on the next line, and an alias's is at its anchor.
    RETURN_IF_ERROR(ApplyField(info->field, entry.second, line, field_path, spec));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ConfigParser::ParseModel(const YAML::Node& item, int line,
                                                   const std::string& path,
                                                   const ModelSpec& defaults,
                                                   int& name_line) const {
  if (!item.IsMap()) {
    return Error(line, path, absl::StrCat("expected a map of model fields, got ", Describe(item)));
  }
  ModelSpec spec = defaults;
  FieldLines lines = kNoFieldLines;
  RETURN_IF_ERROR(ApplyFields(item, line, path, /*defaults=*/false, spec, lines));
  name_line = lines[FieldIndex(Field::kName)];
  if (name_line < 0) return Error(line, path, "missing name");
  if (lines[FieldIndex(Field::kPath)] < 0) return Error(line, path, "missing path");
  if (spec.kv_cap_bytes > 0 && spec.kv_floor_bytes > spec.kv_cap_bytes) {
    // Point at whichever of the two this model sets itself.
    int at = lines[FieldIndex(Field::kKvFloor)];
    if (at < 0) at = lines[FieldIndex(Field::kKvCap)];
    if (at < 0) at = line;
    return Error(at, path,
                 absl::StrCat("kv_floor_mb (", spec.kv_floor_bytes >> 20, ") is above kv_cap_mb (",
                              spec.kv_cap_bytes >> 20, ")"));
  }
  return spec;
}

absl::StatusOr<ServeConfig> ConfigParser::Parse(absl::string_view text) {
  const std::string owned(text);
  // Load would silently drop a second document; LoadAll never returns on some
  // junk (see DocumentCounter). So count first, then Load.
  {
    std::istringstream stream(owned);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    while (counter.documents() < 2 && parser.HandleNextDocument(counter)) continue;
    if (counter.documents() == 0) {
      return Error(0, "", "expected a map with a models list, got an empty document");
    }
    if (counter.documents() > 1) {
      return Error(counter.second_line(), "", "expected one YAML document, got a second one");
    }
  }
  const YAML::Node root = YAML::Load(owned);
  const int root_line = LineOf(root, 0);
  if (!root.IsMap()) {
    return Error(root_line, "",
                 absl::StrCat("expected a map with a models list, got ", Describe(root)));
  }

  // Defaults may come after the models in the file, so find every section first.
  std::array<YAML::Node, kTopLevelKeys.size()> nodes;
  std::array<int, kTopLevelKeys.size()> node_lines;
  node_lines.fill(-1);
  const std::vector<absl::string_view> top_keys(kTopLevelKeys.begin(), kTopLevelKeys.end());
  for (const auto& entry : root) {
    const YAML::Node& key = entry.first;
    const int line = LineOf(key, root_line);
    if (!key.IsScalar()) {
      return Error(line, "",
                   absl::StrCat("expected field names, got ", Describe(key), " as a key"));
    }
    const std::string& name = key.Scalar();
    const auto known = std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), name);
    if (known == kTopLevelKeys.end()) {
      return Error(line, SubPath("", name), UnknownField(name, top_keys));
    }
    const size_t section = static_cast<size_t>(known - kTopLevelKeys.begin());
    int* seen = &node_lines[section];
    if (*seen >= 0) {
      return Error(line, name, absl::StrCat("set twice (first on line ", *seen + 1, ")"));
    }
    *seen = line;
    nodes[section] = entry.second;
  }
  const YAML::Node& defaults_node = nodes[0];
  const YAML::Node& models_node = nodes[1];
  const int defaults_line = node_lines[0];
  const int models_line = node_lines[1];

  ServeConfig config;
  ASSIGN_OR_RETURN(config.tenants,
                   ParseTenantSections(*this, nodes[2], node_lines[2], nodes[3], node_lines[3]));

  ModelSpec defaults;
  if (defaults_line >= 0) {
    // An empty `defaults:` (every line commented out) is no defaults.
    if (!defaults_node.IsNull() && !defaults_node.IsMap()) {
      return Error(defaults_line, "defaults",
                   absl::StrCat("expected a map of model fields, got ", Describe(defaults_node)));
    }
    if (defaults_node.IsMap()) {
      FieldLines lines = kNoFieldLines;
      RETURN_IF_ERROR(ApplyFields(defaults_node, defaults_line, "defaults", /*defaults=*/true,
                                  defaults, lines));
    }
  }

  constexpr absl::string_view kExpectedModels = "expected a non-empty list of models";
  if (models_line < 0) {
    return Error(root_line, "models", absl::StrCat("missing; ", kExpectedModels));
  }
  if (!models_node.IsSequence()) {
    return Error(models_line, "models",
                 absl::StrCat(kExpectedModels, ", got ", Describe(models_node)));
  }
  if (models_node.size() == 0) {
    return Error(models_line, "models", absl::StrCat(kExpectedModels, ", got an empty list"));
  }

  absl::flat_hash_map<std::string, int> name_lines;  // 0-based
  size_t index = 0;
  for (const YAML::Node& item : models_node) {
    const std::string path = absl::StrCat("models[", index++, "]");
    const int line = LineOf(item, models_line);
    int name_line = -1;
    ASSIGN_OR_RETURN(ModelSpec spec, ParseModel(item, line, path, defaults, name_line));
    const auto [it, inserted] = name_lines.emplace(spec.name, name_line);
    if (!inserted) {
      return Error(name_line, absl::StrCat(path, ".name"),
                   absl::StrCat("duplicate model name ", Quote(spec.name), " (first on line ",
                                it->second + 1, ")"));
    }
    config.models.push_back(std::move(spec));
  }
  return config;
}

// YAML allows no C0 controls but tab, LF and CR, nor DEL; yaml-cpp 0.7 drops
// some silently (0x04 inside a quoted string) and misreports others (NUL), so
// they are refused here with their position.
absl::Status CheckControlBytes(absl::string_view text, const ConfigParser& parser) {
  int line = 0;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      line_start = i + 1;
    } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
      return parser.Error(
          line, "",
          absl::StrFormat("invalid YAML: control byte 0x%02x at column %d", c, i - line_start + 1));
    }
  }
  return absl::OkStatus();
}

// Closes a descriptor on every return path.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

absl::StatusOr<ServeConfig> ParseServeConfig(std::string_view text, std::string_view file_name) {
  ConfigParser parser(AsAbsl(file_name));
  if (text.size() > kMaxModelConfigBytes) {
    return parser.Error(-1, "",
                        absl::StrFormat("the file is %d bytes; at most %d are allowed", text.size(),
                                        kMaxModelConfigBytes));
  }
  RETURN_IF_ERROR(CheckControlBytes(AsAbsl(text), parser));
  try {
    return parser.Parse(AsAbsl(text));
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp 0.7 words this "bad file".
    return parser.Error(e.mark.line, "", "invalid YAML: nested too deeply");
  } catch (const YAML::ParserException& e) {
    return parser.Error(e.mark.line, "",
                        absl::StrCat("invalid YAML: ", e.msg, " (column ", e.mark.column + 1, ")"));
  } catch (const YAML::Exception& e) {
    return parser.Error(e.mark.is_null() ? -1 : e.mark.line, "", absl::StrCat("YAML: ", e.msg));
  } catch (const std::bad_alloc&) {
    return parser.Error(-1, "", "out of memory parsing the YAML");
  } catch (const std::exception& e) {
    return parser.Error(-1, "", absl::StrCat("YAML: ", e.what()));
  } catch (...) {
    return parser.Error(-1, "", "YAML: unknown error");
  }
}

absl::StatusOr<std::vector<ModelSpec>> ParseModelConfig(std::string_view text,
                                                        std::string_view file_name) {
  ASSIGN_OR_RETURN(ServeConfig config, ParseServeConfig(text, file_name));
  return std::move(config.models);
}

absl::StatusOr<ServeConfig> LoadServeConfigFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; the
  // regular-file check below then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  const FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot stat"));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const auto too_large = [&](int64_t size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the file is %d bytes; at most %d are allowed", path, size, kMaxModelConfigBytes));
  };
  if (static_cast<uint64_t>(st.st_size) > kMaxModelConfigBytes) return too_large(st.st_size);
  // Read one byte past the limit, in case the file grew since fstat.
  std::string text(kMaxModelConfigBytes + 1, '\0');
  size_t size = 0;
  while (size < text.size()) {
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot read"));
    }
    size += static_cast<size_t>(n);
  }
  if (size > kMaxModelConfigBytes) return too_large(static_cast<int64_t>(size));
  text.resize(size);
  return ParseServeConfig(text, path);
}

absl::StatusOr<ModelSpec> ModelSpecFromFlag(std::string_view name_eq_path) {
  const auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model ", Quote(AsAbsl(name_eq_path)), ": ", what));
  };
  // Names cannot contain '=', so the first one ends the name.
  const size_t eq = name_eq_path.find('=');
  if (eq == std::string_view::npos) return error("expected NAME=PATH");
  ModelSpec spec;
  spec.name = std::string(name_eq_path.substr(0, eq));
  spec.path = std::string(name_eq_path.substr(eq + 1));
  if (absl::Status s = ValidateModelName(spec.name); !s.ok()) return error(s.message());
  if (spec.path.empty()) return error("the path after '=' is empty");
  if (absl::Status s = CheckFilePath(spec.path); !s.ok()) return error(s.message());
  return spec;
}

}  // namespace cohost::scheduler
