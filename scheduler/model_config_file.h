// The per-model configuration of a multi-model server: `cohost serve --config
// models.yaml` (YAML or JSON) and `--model NAME=PATH`, turned into ModelSpecs.
// Only parsing and validation live here; nothing is opened or loaded.
//
// The file:
//   defaults:            # optional; any model field but name/path/device
//     keep_alive_s: 600
//   models:              # required, a non-empty list
//     - name: smol                      # ValidateModelName's rule
//       path: models/smol.gguf          # non-empty
//       load: lazy                      # startup (default) | lazy
//       keep_alive_s: 300               # integer >= 0, or "forever"
//       kv_floor_mb: 0                  # integer >= 0
//       kv_cap_mb: 512                  # integer >= 0; 0 or unset: the pool less the
//                                       # floors of the other models there (KvPool::Join)
//       ttft_target_ms: 1000            # integer >= 1
//       tpot_target_ms: 200             # integer >= 1
//       ttft_admit_margin_pct: 50       # integer in [0, 10000]; unset: never refuse by it
//       priority: 0                     # integer in [-1000, 1000]; lower evicted first
//       device: cpu                     # cpu | cuda:N, N in [0, 63]
//       chat_template: qwen3.jinja      # a file of Jinja that replaces the model's
//                                       # own chat template (read when it is added)
//   tenant_defaults: {max_streams: 32}  # optional; see scheduler/tenant_config.h
//   tenants: [{name: alice, weight: 2, tokens_per_minute: 100000}]
// Every error is INVALID_ARGUMENT and reads `FILE:LINE: FIELD.PATH: what`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/device_name.h"
#include "scheduler/tenants.h"

namespace cohost::scheduler {

enum class LoadPolicy { kStartup, kLazy };

struct ModelSpec {
  std::string name;  // checked with ValidateModelName (scheduler/model_name.h)
  std::string path;  // non-empty; not opened or checked for existence here
  LoadPolicy load = LoadPolicy::kStartup;
  // How long an idle model stays loaded before it may be evicted; nullopt =
  // never evicted.
  std::optional<std::chrono::seconds> keep_alive = std::chrono::seconds(300);
  int64_t kv_floor_bytes = 0;  // from kv_floor_mb
  int64_t kv_cap_bytes = 0;    // from kv_cap_mb; 0 = none: the pool less the others' floors
  std::chrono::milliseconds ttft_target{1000};
  std::chrono::milliseconds tpot_target{200};
  // Set: a request whose predicted TTFT (scheduler/ttft_predictor.h) is over
  // ttft_target by more than this percentage of it is refused at once with
  // RESOURCE_EXHAUSTED and a pushback. Unset: the target only orders work.
  std::optional<int32_t> ttft_admit_margin_pct;
  int32_t priority = 0;               // among idle models, the lowest is evicted first
  std::optional<std::string> device;  // "cpu" or "cuda:N"
  // A file whose Jinja replaces the model's own chat template (a GGUF whose
  // template is missing or wrong; vLLM's --chat-template); empty: the
  // model's. Only the operator names it: a client's LoadModel cannot.
  std::string chat_template;

  bool operator==(const ModelSpec&) const = default;
};

// Larger files are refused: a model list is a few KiB, and the bound keeps a
// mistaken --config (a model file, say) from being read into memory.
inline constexpr size_t kMaxModelConfigBytes = size_t{1} << 20;
// Upper bounds beyond the documented lower ones, so that the values stay far
// from overflow wherever they are added to clocks or multiplied into bytes.
inline constexpr int64_t kMaxKvMb = int64_t{1} << 40;           // 2^60 bytes
inline constexpr int64_t kMaxKeepAliveSeconds = 1'000'000'000;  // ~31 years; use "forever"
inline constexpr int64_t kMaxTargetMs = 86'400'000;             // a day
inline constexpr int32_t kMaxPriority = 1000;
inline constexpr int32_t kMaxAdmitMarginPct = 10'000;
inline constexpr size_t kMaxModelPathLength = 4096;  // PATH_MAX

// What a configuration file says: its models, and its tenants' weights and
// budgets (`tenant_defaults` and `tenants`, scheduler/tenant_config.h).
struct ServeConfig {
  std::vector<ModelSpec> models;
  TenantPolicy tenants;

  bool operator==(const ServeConfig&) const = default;
};

// `text` is the file's content (at most kMaxModelConfigBytes); `file_name`
// only names it in errors.
absl::StatusOr<ServeConfig> ParseServeConfig(std::string_view text, std::string_view file_name);
// The same, its models only.
absl::StatusOr<std::vector<ModelSpec>> ParseModelConfig(std::string_view text,
                                                        std::string_view file_name);

// Reads and parses a file: NOT_FOUND, PERMISSION_DENIED, ... naming the file
// when it cannot be read; INVALID_ARGUMENT for one that is not a regular file
// or is over kMaxModelConfigBytes.
absl::StatusOr<ServeConfig> LoadServeConfigFile(const std::string& path);

// The spec `--model NAME=PATH` gives (defaults for the rest); INVALID_ARGUMENT
// for a bad NAME=PATH or name.
absl::StatusOr<ModelSpec> ModelSpecFromFlag(std::string_view name_eq_path);

}  // namespace cohost::scheduler
