// The pieces LoadModelFile is built from: per-format loaders, config parsers,
// the table of tensors a config needs, and the parallel fp32 conversion.
// Internal to the loader library (and its tests).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/gguf_reader.h"
#include "runtime/loader/model_file.h"

namespace cohost::runtime {

// GGUF file -> ModelFile (gguf_model.cc).
absl::StatusOr<ModelFile> LoadGgufModel(const std::string& path, const LoadOptions& options);
absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& file);
absl::StatusOr<TokenizerSpec> TokenizerFromGguf(const GgufFile& file, int32_t vocab_size);

// Hugging Face directory -> ModelFile (hf_model.cc, hf_config.cc).
absl::StatusOr<ModelFile> LoadHfModel(const std::string& dir, const LoadOptions& options);
// `path` only names the file in errors.
absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, const std::string& path);
// HF parameter name -> canonical name; empty when the name is not one we use.
std::string HfToCanonicalName(absl::string_view hf_name);

// Where a GGUF file keeps a layer's experts together: the per-expert
// canonical name blk.N.ffn_gate.E.weight (ffn_up, ffn_down) is expert E of
// blk.N.ffn_gate_exps.weight ([experts, rows, cols], each expert's rows
// whole and in order), as llama.cpp's converter writes MoE models; older
// Mixtral files hold each expert under its canonical name. nullopt for a
// name that is not an expert's.
struct ExpertSlice {
  std::string merged;
  int32_t expert = 0;
};
std::optional<ExpertSlice> MergedExpertSource(absl::string_view name);

// A tensor left in the file's mapping starts at a multiple of this (GGUF's
// default alignment): the kernels read blocks with unaligned loads, but a
// fp16 row must at least be 2-byte aligned, and a tensor elsewhere (a GGUF
// that breaks its format's rule, most of a safetensors file's) is copied
// instead.
inline constexpr uintptr_t kMappedAlignment = 32;

// One tensor to produce: `convert` fills `dst` (numel of `shape` floats);
// or, for a tensor kept quantized (raw_bytes > 0), `copy_raw` fills its
// raw_bytes of blocks.
struct TensorJob {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t source_bytes = 0;  // what progress counts
  std::function<absl::Status(absl::Span<float> dst)> convert;
  GgmlType raw_type = GgmlType::kF32;
  uint64_t raw_bytes = 0;
  std::function<absl::Status(absl::Span<uint8_t> dst)> copy_raw;
  // Or kept in the file's mapping (LoadOptions::map_weights): the view, its
  // owner, and the checks its bytes must pass.
  absl::Span<const uint8_t> mapped;
  std::shared_ptr<const void> mapping;
  std::function<absl::Status()> check_mapped;
};

// Copies `src` (a kept tensor's bytes in a file's mapping) into `dst` (as
// long) a piece of about 1 MB, whole `unit`s, at a time: each
// piece passed to `check` (with its offset) before it is copied, and its
// file pages dropped after, so that the tensor is never resident twice; the
// pages the pieces' edges shared go at the end. `check`'s error stops it.
absl::Status CopyDroppingPages(
    absl::Span<const uint8_t> src, absl::Span<uint8_t> dst, size_t unit,
    const std::function<absl::Status(absl::Span<const uint8_t> part, size_t at)>& check = {});

// Runs the jobs on a few threads into `out`; reports progress from the calling
// thread at least every 64 MiB and at the end. The first error wins.
absl::Status RunTensorJobs(std::vector<TensorJob> jobs, const LoadOptions& options,
                           absl::flat_hash_map<std::string, HostTensor>* out);

// llama.cpp's converter reorders each head's rows of Llama Q/K projections
// into interleaved RoPE pairs: GGUF row h*d + 2*j + i holds HF row
// h*d + i*d/2 + j (d = head_dim, i in {0, 1}, j < d/2). This undoes it in
// place on row-major [rows = n_head*d, cols] data (cols = 1 for a bias).
absl::Status UndoLlamaRopePermutation(absl::Span<float> data, int64_t rows, int64_t cols,
                                      int32_t n_head);
// The same on rows of `row_bytes` bytes each (rows of quantized blocks).
absl::Status UndoLlamaRopePermutationRows(absl::Span<uint8_t> data, int64_t rows, int64_t row_bytes,
                                          int32_t n_head);

}  // namespace cohost::runtime
