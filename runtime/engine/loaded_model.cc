// Loads weights and tokenizer for one model onto a backend.

#include "runtime/engine/loaded_model.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "runtime/tokenizer/tokenizer_json.h"

namespace cohost::runtime {

namespace {

// A GGUF file carries its tokenizer in metadata; a Hugging Face directory
// keeps it in tokenizer.json / tokenizer.model beside the weights. Either way
// its ids must be rows of the model's embedding: a token past them (an added
// token the config does not count) would make every prompt that holds it
// invalid, and an end-of-sequence id past them could never be sampled.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFor(const std::string& path,
                                                        TokenizerSpec from_file,
                                                        const ModelConfig& config) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    ASSIGN_OR_RETURN(from_file, LoadTokenizerSpecFromDirectory(path));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Create(from_file));
  if (tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the tokenizer has %d tokens but the model's vocab_size is %d",
                        tokenizer->vocab_size(), config.vocab_size));
  }
  return tokenizer;
}

// Loading a file's weights for `backend`: blocks kept where asked and the
// backend's Gemm takes them, left in the mapping where asked and the backend
// takes host memory over.
LoadOptions WeightsOptions(const kernels::Backend& backend, const LoadProgressFn& progress,
                           WeightsPolicy policy) {
  LoadOptions options;
  options.progress = progress;
  options.keep_quantized = policy.keep_quantized && Model::KeepsQuantizedWeights(backend);
  options.map_weights = options.keep_quantized && policy.map_file && backend.AdoptsHostMemory();
  return options;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, kernels::Backend* backend,
                                      const LoadProgressFn& progress, WeightsPolicy policy) {
  ASSIGN_OR_RETURN(ModelFile file, LoadModelFile(path, WeightsOptions(*backend, progress, policy)));
  LoadedModel out;
  ASSIGN_OR_RETURN(out.tokenizer, TokenizerFor(path, std::move(file.tokenizer), file.config));
  ASSIGN_OR_RETURN(out.model, Model::Create(std::move(file), backend));
  return out;
}

absl::StatusOr<ModelDescription> DescribeModel(const std::string& path) {
  LoadOptions options;
  options.load_tensors = false;
  ASSIGN_OR_RETURN(ModelFile file, LoadModelFile(path, options));
  ModelDescription out;
  out.config = file.config;
  ASSIGN_OR_RETURN(out.tokenizer, TokenizerFor(path, std::move(file.tokenizer), file.config));
  return out;
}

absl::StatusOr<std::unique_ptr<Model>> LoadWeights(const std::string& path,
                                                   kernels::Backend* backend,
                                                   const LoadProgressFn& progress,
                                                   WeightsPolicy policy) {
  ASSIGN_OR_RETURN(ModelFile file, LoadModelFile(path, WeightsOptions(*backend, progress, policy)));
  return Model::Create(std::move(file), backend);
}

}  // namespace cohost::runtime
