// A model ready to run: weights on a backend plus its tokenizer. Reads either
// a GGUF file or a Hugging Face directory; host copies are dropped after upload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cohost/kernels/backend.h"
#include "runtime/loader/model_file.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {

struct LoadedModel {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Model> model;
  const ModelConfig& config() const { return model->config(); }
};

// How a model's weights are loaded onto a backend.
struct WeightsPolicy {
  // Linear layers stored in a block type (Q8_0, Q4_K, ...) stay in their
  // blocks where the backend's Gemm takes them (the CPU: int8 activations,
  // as llama.cpp computes), instead of becoming the compute dtype.
  bool keep_quantized = false;
  // Where the backend's memory is host memory, the matrices kept as stored
  // stay in the file's read-only mapping: no copy, and the page cache's
  // pages are shared by every process serving the file. false copies them
  // (llama.cpp's --no-mmap): for file systems where mapped reads are slow,
  // or a file that may be rewritten in place while it is served.
  bool map_file = true;
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, kernels::Backend* backend,
                                      const LoadProgressFn& progress = nullptr,
                                      WeightsPolicy policy = {});

// What a model is, without its weights: the config and tokenizer, from the
// file's metadata (and a Hugging Face directory's tokenizer files). Cheap.
// `chat_template_file`, when not empty: a file whose Jinja replaces the
// model's chat template (at most kMaxChatTemplateBytes).
struct ModelDescription {
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
};
inline constexpr uint64_t kMaxChatTemplateBytes = uint64_t{1} << 20;
absl::StatusOr<ModelDescription> DescribeModel(const std::string& path,
                                               const std::string& chat_template_file = {});

// Only the weights, uploaded to `backend`.
absl::StatusOr<std::unique_ptr<Model>> LoadWeights(const std::string& path,
                                                   kernels::Backend* backend,
                                                   const LoadProgressFn& progress = nullptr,
                                                   WeightsPolicy policy = {});

}  // namespace cohost::runtime
