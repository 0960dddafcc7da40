// Loads weights and tokenizer for one model onto a backend.

#include "runtime/engine/loaded_model.h"

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "runtime/loader/loader_json.h"
#include "runtime/tokenizer/tokenizer_json.h"

namespace cohost::runtime {

namespace {

// A GGUF file carries its tokenizer in metadata; a Hugging Face directory
// keeps it in tokenizer.json / tokenizer.model beside the weights. The ids
// the engine itself uses (BOS, end of sequence) must be rows of the model's
// embedding: a BOS past them would make every prompt invalid, and an end of
// sequence there could never be sampled. Other tokens past them (Llama 2
// fine-tunes add a <pad> the config does not count) only make a prompt that
// spells them invalid, as transformers' embedding lookup would.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFor(
    const std::string& path, TokenizerSpec from_file, const ModelConfig& config,
    std::optional<std::string> chat_template = std::nullopt) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    ASSIGN_OR_RETURN(from_file, LoadTokenizerSpecFromDirectory(path));
  }
  if (chat_template) from_file.chat_template = *std::move(chat_template);
  std::vector<std::pair<const char*, int32_t>> used = {{"BOS", from_file.bos_id},
                                                       {"end-of-sequence", from_file.eos_id}};
  for (int32_t id : from_file.extra_eos_ids) used.push_back({"end-of-turn", id});
  for (const auto& [what, id] : used) {
    if (id >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the tokenizer's %s token is id %d, past the model's vocab_size of %d",
                          what, id, config.vocab_size));
    }
  }
  return Tokenizer::Create(from_file);
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

absl::StatusOr<ModelDescription> DescribeModel(const std::string& path,
                                               const std::string& chat_template_file) {
  LoadOptions options;
  options.load_tensors = false;
  ASSIGN_OR_RETURN(ModelFile file, LoadModelFile(path, options));
  ModelDescription out;
  out.config = file.config;
  std::optional<std::string> chat_template;
  if (!chat_template_file.empty()) {
    absl::StatusOr<std::string> text = ReadSmallFile(chat_template_file, kMaxChatTemplateBytes);
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrCat("the chat template: ", text.status().message()));
    }
    chat_template = *std::move(text);
  }
  ASSIGN_OR_RETURN(out.tokenizer, TokenizerFor(path, std::move(file.tokenizer), file.config,
                                               std::move(chat_template)));
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
