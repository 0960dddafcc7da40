// What each model measured at its last load, kept in a file across restarts,
// so that placement can plan with a model's real footprint before loading it
// (the prediction from its config stops being exact once weights stay in
// their file's quantized formats). One entry per model file, device kind and
// step shape; an entry no longer matches once the file changes (size or
// modification time). The file is a cache: a missing or unreadable one is
// empty, and nothing breaks when it cannot be written. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/batching/step_scheduler_config.h"

namespace cohost::scheduler {

// Which load a footprint belongs to.
struct FootprintKey {
  std::string path;        // the model file or directory, as configured
  int64_t file_bytes = 0;  // its size (a directory's: its files' total)
  int64_t mtime_ns = 0;    // its last modification (a directory's: its newest file's)
  std::string device;      // backend kind, compute dtype, "+stored" when weights stay as stored
  int32_t max_tokens_per_step = 0, max_num_seqs = 0;  // they size the workspace

  bool operator==(const FootprintKey&) const = default;
};

struct Footprint {
  int64_t weights_bytes = 0;    // as allocated on the device
  int64_t workspace_bytes = 0;  // activations of the engine's largest step, and its context
  double load_seconds = 0;      // file to ready
};

// The key for loading `path` on `backend` with `steps`, keeping quantized
// weights in their blocks or not; NOT_FOUND when the path cannot be read.
absl::StatusOr<FootprintKey> KeyFor(const std::string& path, const kernels::Backend& backend,
                                    const runtime::StepSchedulerConfig& steps,
                                    bool keep_quantized = false);

class FootprintRecord {
 public:
  // The most entries kept; the oldest go first.
  static constexpr size_t kMaxEntries = 512;

  // Reads `file` if it is there. A file that does not parse is treated as
  // empty (and replaced at the next Put), with a warning on stderr.
  explicit FootprintRecord(std::string file);

  const std::string& file() const { return file_; }
  std::optional<Footprint> Find(const FootprintKey& key) const;
  // Records `footprint` for `key` (replacing an older one) and rewrites the
  // file (a temporary file renamed over it, so readers never see half of
  // one). The error says why the file could not be written; the entry is
  // kept in memory either way.
  absl::Status Put(const FootprintKey& key, const Footprint& footprint);

 private:
  struct Entry {
    FootprintKey key;
    Footprint footprint;
  };

  const std::string file_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_; oldest first
};

// Where `cohost serve` keeps the record unless told: $XDG_CACHE_HOME/cohost,
// else ~/.cache/cohost, "footprints.json"; "" when neither is known.
std::string DefaultFootprintFile();

}  // namespace cohost::scheduler
