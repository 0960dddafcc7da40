// Loads weights and tokenizer for one model onto a backend.

#include "runtime/engine/loaded_model.h"

#include <filesystem>

#include "runtime/tokenizer/tokenizer_json.h"

namespace cohost::runtime {

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, kernels::Backend* backend,
                                      const LoadProgressFn& progress) {
  LoadOptions options;
  options.progress = progress;
  absl::StatusOr<ModelFile> file = LoadModelFile(path, options);
  if (!file.ok()) return file.status();

  // A GGUF file carries its tokenizer in metadata; a Hugging Face directory
  // keeps it in tokenizer.json / tokenizer.model beside the weights.
  TokenizerSpec spec = std::move(file->tokenizer);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    absl::StatusOr<TokenizerSpec> dir_spec = LoadTokenizerSpecFromDirectory(path);
    if (!dir_spec.ok()) return dir_spec.status();
    spec = *std::move(dir_spec);
  }

  LoadedModel out;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::Create(spec);
  if (!tokenizer.ok()) return tokenizer.status();
  out.tokenizer = *std::move(tokenizer);

  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(*file, backend);
  if (!model.ok()) return model.status();
  out.model = *std::move(model);
  return out;
}

}  // namespace cohost::runtime
