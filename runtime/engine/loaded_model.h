// A model ready to run: weights on a backend plus its tokenizer. Reads either
// a GGUF file or a Hugging Face directory; host copies are dropped after upload.
#pragma once

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

// `keep_quantized`: linear layers stored in a block type (Q8_0, Q4_K, ...) stay in their
// blocks where the backend's Gemm takes them (the CPU: int8 activations, as
// llama.cpp computes), instead of becoming the compute dtype.
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, kernels::Backend* backend,
                                      const LoadProgressFn& progress = nullptr,
                                      bool keep_quantized = false);

// What a model is, without its weights: the config and tokenizer, from the
// file's metadata (and a Hugging Face directory's tokenizer files). Cheap.
struct ModelDescription {
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
};
absl::StatusOr<ModelDescription> DescribeModel(const std::string& path);

// Only the weights, uploaded to `backend`.
absl::StatusOr<std::unique_ptr<Model>> LoadWeights(const std::string& path,
                                                   kernels::Backend* backend,
                                                   const LoadProgressFn& progress = nullptr,
                                                   bool keep_quantized = false);

}  // namespace cohost::runtime
