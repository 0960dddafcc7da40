#include "scheduler/footprint_record.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cohost::scheduler {
namespace {

namespace fs = std::filesystem;

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

nlohmann::json ToJson(const FootprintKey& k, const Footprint& f) {
  return {{"path", k.path},
          {"file_bytes", k.file_bytes},
          {"mtime_ns", k.mtime_ns},
          {"device", k.device},
          {"max_tokens_per_step", k.max_tokens_per_step},
          {"max_num_seqs", k.max_num_seqs},
          {"weights_bytes", f.weights_bytes},
          {"workspace_bytes", f.workspace_bytes},
          {"load_seconds", f.load_seconds}};
}

// One entry of the file; nullopt for anything malformed or out of range (the
// file is ours, but a cache must not be trusted to be whole).
std::optional<std::pair<FootprintKey, Footprint>> FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  const auto str = [&](const char* k) -> std::optional<std::string> {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  const auto count = [&](const char* k, int64_t most) -> std::optional<int64_t> {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    const auto v = it->get<int64_t>();
    if (v < 0 || v > most) return std::nullopt;
    return v;
  };
  constexpr int64_t kBig = int64_t{1} << 50;  // a petabyte: far beyond any device
  std::optional<std::string> path = str("path"), device = str("device");
  std::optional<int64_t> file_bytes = count("file_bytes", kBig),
                         mtime = count("mtime_ns", int64_t{1} << 62),
                         tokens = count("max_tokens_per_step", 1 << 24),
                         seqs = count("max_num_seqs", 1 << 24),
                         weights = count("weights_bytes", kBig),
                         workspace = count("workspace_bytes", kBig);
  auto seconds = j.find("load_seconds");
  // A load always measures some weights: 0 is no measurement, and planned as
  // one it would let the device over-commit by the model's whole size.
  if (!path || !device || !file_bytes || !mtime || !tokens || !seqs || !weights || *weights < 1 ||
      !workspace || seconds == j.end() || !seconds->is_number() || !(seconds->get<double>() >= 0)) {
    return std::nullopt;
  }
  return std::make_pair(FootprintKey{*path, *file_bytes, *mtime, *device,
                                     static_cast<int32_t>(*tokens), static_cast<int32_t>(*seqs)},
                        Footprint{*weights, *workspace, seconds->get<double>()});
}

}  // namespace

absl::StatusOr<FootprintKey> KeyFor(const std::string& path, const kernels::Backend& backend,
                                    const runtime::StepSchedulerConfig& steps,
                                    bool keep_quantized) {
  FootprintKey key;
  key.path = path;
  // "+stored": matrices kept as the file stores them (blocks, and 16-bit
  // rows; records under the older "+blocks" counted a Hugging Face
  // checkpoint's 16-bit matrices as fp32, twice their size, and no longer
  // match).
  key.device = absl::StrCat(backend.kind() == kernels::BackendKind::kCpu ? "cpu" : "cuda", "/",
                            std::string(kernels::DTypeName(backend.compute_dtype())),
                            keep_quantized ? "+stored" : "");
  key.max_tokens_per_step = steps.max_tokens_per_step;
  key.max_num_seqs = steps.max_num_seqs;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return absl::NotFoundError("cannot read the model's path");
  if (!S_ISDIR(st.st_mode)) {
    key.file_bytes = static_cast<int64_t>(st.st_size);
    key.mtime_ns = MtimeNs(st);
    return key;
  }
  // A Hugging Face directory: its regular files (not recursing).
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
    struct stat fst {};
    if (::stat(e.path().c_str(), &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
    key.file_bytes += static_cast<int64_t>(fst.st_size);
    key.mtime_ns = std::max(key.mtime_ns, MtimeNs(fst));
  }
  if (ec) return absl::NotFoundError("cannot list the model's directory");
  return key;
}

FootprintRecord::FootprintRecord(std::string file) : file_(std::move(file)) {
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) return;  // none yet
  // kMaxEntries entries take well under a megabyte; a device or a FIFO
  // named by mistake would be read forever.
  constexpr off_t kMostBytes = off_t{4} << 20;
  if (!S_ISREG(st.st_mode) || st.st_size > kMostBytes) {
    std::fprintf(stderr, "cohost: ignoring %s: not a regular file of at most 4 MB\n",
                 file_.c_str());
    return;
  }
  std::ifstream in(file_);
  if (!in) return;
  // One byte past its size: a file that grew since the stat reads as damaged.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(st.st_size)) return;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("footprints") ||
      !j["footprints"].is_array()) {
    std::fprintf(stderr, "cohost: ignoring %s: not a footprint record\n", file_.c_str());
    return;
  }
  for (const nlohmann::json& e : j["footprints"]) {
    if (auto entry = FromJson(e)) entries_.push_back({entry->first, entry->second});
  }
  if (entries_.size() > kMaxEntries) {
    entries_.erase(entries_.begin(), entries_.end() - static_cast<ptrdiff_t>(kMaxEntries));
  }
}

std::optional<Footprint> FootprintRecord::Find(const FootprintKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->key == key) return it->footprint;
  }
  return std::nullopt;
}

absl::Status FootprintRecord::Put(const FootprintKey& key, const Footprint& footprint) {
  std::lock_guard<std::mutex> lock(mu_);
  // One entry per model path and device: an older one (another version of
  // the file, other step limits) is replaced.
  std::erase_if(entries_, [&](const Entry& e) {
    return e.key.path == key.path && e.key.device == key.device;
  });
  entries_.push_back({key, footprint});
  if (entries_.size() > kMaxEntries) entries_.erase(entries_.begin());

  nlohmann::json list = nlohmann::json::array();
  for (const Entry& e : entries_) list.push_back(ToJson(e.key, e.footprint));
  const nlohmann::json doc = {{"version", 1}, {"footprints", std::move(list)}};
  std::error_code ec;
  const fs::path target(file_);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tmp = absl::StrCat(file_, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(1) << "\n";
    if (!out.flush()) {
      fs::remove(tmp, ec);
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::UnavailableError(absl::StrCat("cannot replace ", file_, ": ", ec.message()));
  }
  return absl::OkStatus();
}

std::string DefaultFootprintFile() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  if (cache != nullptr && cache[0] == '/') return absl::StrCat(cache, "/cohost/footprints.json");
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/')
    return absl::StrCat(home, "/.cache/cohost/footprints.json");
  return "";
}

}  // namespace cohost::scheduler
