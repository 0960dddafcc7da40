// LoadModelFile: dispatch on the path, plus what both formats share: the
// expected tensor table and the parallel conversion to fp32.
#include "runtime/loader/model_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "runtime/loader/mapped_file.h"
#include "runtime/loader/model_loading.h"

namespace cohost::runtime {
namespace {

// Bytes of a kept tensor copied between dropping its file pages. Each loader
// thread holds one piece's pages at the load's peak: 4 MB pieces cost 3-4 MB
// more peak RSS than 1 MB ones, for ~100 madvise calls saved per 100 MB.
constexpr size_t kCopyPieceBytes = size_t{1} << 20;

constexpr uint64_t kProgressStep = 64ull << 20;

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size, q_dim = int64_t{c.num_heads} * c.head_dim,
                kv_dim = int64_t{c.num_kv_heads} * c.head_dim, inter = c.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
      {"token_embd.weight", {c.vocab_size, hidden}},
      {"output_norm.weight", {hidden}},
  };
  if (!c.tie_word_embeddings) t.push_back({"output.weight", {c.vocab_size, hidden}});
  for (int32_t n = 0; n < c.num_layers; ++n) {
    auto name = [n](absl::string_view s) { return absl::StrCat("blk.", n, ".", s); };
    t.push_back({name("attn_norm.weight"), {hidden}});
    t.push_back({name("ffn_norm.weight"), {hidden}});
    t.push_back({name("attn_q.weight"), {q_dim, hidden}});
    t.push_back({name("attn_k.weight"), {kv_dim, hidden}});
    t.push_back({name("attn_v.weight"), {kv_dim, hidden}});
    t.push_back({name("attn_output.weight"), {hidden, q_dim}});
    if (c.moe()) {
      const int64_t expert_inter = c.expert_intermediate_size;
      t.push_back({name("ffn_gate_inp.weight"), {c.num_experts, hidden}});
      for (int32_t e = 0; e < c.num_experts; ++e) {
        t.push_back({ExpertTensorName(n, "ffn_gate", e), {expert_inter, hidden}});
        t.push_back({ExpertTensorName(n, "ffn_up", e), {expert_inter, hidden}});
        t.push_back({ExpertTensorName(n, "ffn_down", e), {hidden, expert_inter}});
      }
    } else {
      t.push_back({name("ffn_gate.weight"), {inter, hidden}});
      t.push_back({name("ffn_up.weight"), {inter, hidden}});
      t.push_back({name("ffn_down.weight"), {hidden, inter}});
    }
    if (c.attention_bias) {
      t.push_back({name("attn_q.bias"), {q_dim}});
      t.push_back({name("attn_k.bias"), {kv_dim}});
      t.push_back({name("attn_v.bias"), {kv_dim}});
    }
    if (c.qk_norm()) {
      t.push_back({name("attn_q_norm.weight"), {c.head_dim}});
      t.push_back({name("attn_k_norm.weight"), {c.head_dim}});
    }
  }
  return t;
}

absl::Status CheckNoUnusedTensors(const ModelConfig& config, const std::vector<std::string>& names,
                                  const std::string& path) {
  absl::flat_hash_set<std::string> used = {"rope_freqs.weight", "output.weight"};
  for (auto& [name, shape] : ExpectedTensors(config)) {
    // A layer's experts may lie in one tensor each of gate, up and down.
    if (std::optional<ExpertSlice> slice = MergedExpertSource(name)) used.insert(slice->merged);
    used.insert(std::move(name));
  }
  for (const std::string& name : names) {
    if (used.contains(name)) continue;
    return absl::UnimplementedError(absl::StrCat(
        path, ": tensor '", name.substr(0, 96),
        "' is not part of the model cohost runs from this config (another architecture's, or a "
        "layer past num_layers)"));
  }
  return absl::OkStatus();
}

std::string ExpertTensorName(int32_t layer, absl::string_view part, int32_t expert) {
  return absl::StrCat("blk.", layer, ".", part, ".", expert, ".weight");
}

std::optional<ExpertSlice> MergedExpertSource(absl::string_view name) {
  // blk.N.ffn_{gate,up,down}.E.weight
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, "blk.") || !absl::ConsumeSuffix(&rest, ".weight")) {
    return std::nullopt;
  }
  const size_t layer_end = rest.find('.');
  if (layer_end == absl::string_view::npos) return std::nullopt;
  absl::string_view part = rest.substr(layer_end + 1);
  const size_t expert_dot = part.rfind('.');
  if (expert_dot == absl::string_view::npos) return std::nullopt;
  const absl::string_view kind = part.substr(0, expert_dot);
  int32_t expert = 0;
  if ((kind != "ffn_gate" && kind != "ffn_up" && kind != "ffn_down") ||
      !absl::SimpleAtoi(part.substr(expert_dot + 1), &expert) || expert < 0) {
    return std::nullopt;
  }
  return ExpertSlice{absl::StrCat("blk.", rest.substr(0, layer_end), ".", kind, "_exps.weight"),
                     expert};
}

absl::Status CopyDroppingPages(
    absl::Span<const uint8_t> src, absl::Span<uint8_t> dst, size_t unit,
    const std::function<absl::Status(absl::Span<const uint8_t> part, size_t at)>& check) {
  const size_t piece = std::max(unit, kCopyPieceBytes / unit * unit);
  for (size_t at = 0; at < src.size(); at += piece) {
    const absl::Span<const uint8_t> part = src.subspan(at, piece);
    if (check) RETURN_IF_ERROR(check(part, at));
    std::copy(part.begin(), part.end(), dst.begin() + static_cast<ptrdiff_t>(at));
    DropWholePages(part.data(), part.size());
  }
  DropWholePages(src.data(), src.size());
  return absl::OkStatus();
}

absl::Status RunTensorJobs(std::vector<TensorJob> jobs, const LoadOptions& options,
                           absl::flat_hash_map<std::string, HostTensor>* out) {
  uint64_t total = 0;
  std::vector<HostTensor*> targets;
  targets.reserve(jobs.size());
  // Allocate every tensor up front so workers never touch the map.
  for (TensorJob& job : jobs) {
    total += job.source_bytes;
    HostTensor& t = (*out)[job.name];
    t.shape = job.shape;
    if (!job.mapped.empty()) {
      t.raw_type = job.raw_type;
      t.mapped = job.mapped;
      t.mapping = job.mapping;
    } else if (job.raw_bytes > 0) {
      t.raw_type = job.raw_type;
      t.raw.assign(job.raw_bytes, 0);
    } else {
      t.data.assign(static_cast<size_t>(t.numel()), 0.f);
    }
  }
  for (TensorJob& job : jobs) targets.push_back(&(*out)[job.name]);

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done_bytes{0};
  std::mutex mu;
  std::condition_variable cv;
  size_t finished_workers = 0;
  absl::Status first_error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i; !failed.load() && (i = next.fetch_add(1)) < jobs.size();) {
      absl::Status s =
          !jobs[i].mapped.empty() ? jobs[i].check_mapped()
          : jobs[i].raw_bytes > 0 ? jobs[i].copy_raw(absl::MakeSpan(targets[i]->raw))
          : jobs[i].convert
              ? jobs[i].convert(absl::MakeSpan(targets[i]->data))
              : absl::InternalError(absl::StrCat("tensor '", jobs[i].name, "': nothing to read"));
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        failed.store(true);
      }
      done_bytes.fetch_add(jobs[i].source_bytes);
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    ++finished_workers;
    cv.notify_all();
  };
  const size_t n_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < std::min(n_threads, jobs.size()); ++i) threads.emplace_back(worker);
  // The calling thread only reports progress, so callbacks stay on it.
  uint64_t reported = 0;
  {
    std::unique_lock<std::mutex> lock(mu);
    while (finished_workers < threads.size()) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      const uint64_t done = done_bytes.load();
      if (options.progress && done - reported >= kProgressStep && done < total) {
        reported = done;
        lock.unlock();
        options.progress(done, total);
        lock.lock();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  if (options.progress) options.progress(total, total);
  return absl::OkStatus();
}

absl::Status UndoLlamaRopePermutation(absl::Span<float> data, int64_t rows, int64_t cols,
                                      int32_t n_head) {
  if (n_head <= 0 || rows <= 0 || cols <= 0 || rows % (2 * int64_t{n_head}) != 0 ||
      static_cast<int64_t>(data.size()) / cols != rows ||
      static_cast<int64_t>(data.size()) % cols != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot undo the RoPE permutation of [%d, %d] (%d values) for %d heads",
                        rows, cols, data.size(), n_head));
  }
  return UndoLlamaRopePermutationRows(
      absl::MakeSpan(reinterpret_cast<uint8_t*>(data.data()), data.size() * sizeof(float)), rows,
      cols * static_cast<int64_t>(sizeof(float)), n_head);
}

absl::Status UndoLlamaRopePermutationRows(absl::Span<uint8_t> data, int64_t rows, int64_t row_bytes,
                                          int32_t n_head) {
  if (n_head <= 0 || rows <= 0 || row_bytes <= 0 || rows % (2 * int64_t{n_head}) != 0 ||
      static_cast<int64_t>(data.size()) != rows * row_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot undo the RoPE permutation of %d rows of %d bytes (%d bytes) for %d heads", rows,
        row_bytes, data.size(), n_head));
  }
  const int64_t head_dim = rows / n_head, half = head_dim / 2;
  std::vector<uint8_t> src(static_cast<size_t>(head_dim * row_bytes));
  for (int64_t h = 0; h < n_head; ++h) {
    uint8_t* head = data.data() + h * head_dim * row_bytes;
    std::copy(head, head + head_dim * row_bytes, src.begin());
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t i = 0; i < 2; ++i) {
        const uint8_t* from = src.data() + (2 * j + i) * row_bytes;
        std::copy(from, from + row_bytes, head + (i * half + j) * row_bytes);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelFile> LoadModelFile(const std::string& path, const LoadOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  if (S_ISDIR(st.st_mode)) return LoadHfModel(path, options);
  return LoadGgufModel(path, options);
}

}  // namespace cohost::runtime
