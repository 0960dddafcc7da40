// A GGUF model file (an operator's download: untrusted), loaded as the
// server loads one: its config, tokenizer and every tensor, dequantized to
// fp32 and kept in its blocks from the mapping; a tokenizer that loads then
// formats and encodes a chat and decodes it, and a model that loads runs a
// prompt through the CPU backend (both ways its weights can be held). An
// error is INVALID_ARGUMENT, UNIMPLEMENTED (a type or architecture cohost
// does not run) or FAILED_PRECONDITION, and names the file.

#include <memory>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "runtime/loader/model_file.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/input_file.h"
#include "tests/fuzz/model_file_checks.h"

namespace cohost::fuzz {
namespace {

// Model::Create's errors are the file's, as LoadModelFile's are; a model
// that loads takes a prompt of its first ids (prefill, then a decode step).
void RunModel(runtime::ModelFile file, const std::string& path) {
  static const std::unique_ptr<kernels::Backend> backend = kernels::MakeCpuBackend(1);
  const int32_t vocab = file.config.vocab_size;
  absl::StatusOr<std::unique_ptr<runtime::Model>> model =
      runtime::Model::Create(std::move(file), backend.get());
  if (!model.ok()) {
    CheckFileError(model.status(), path);
    return;
  }
  constexpr int32_t kBlocks = 3, kBlockSize = 4;
  absl::StatusOr<std::unique_ptr<runtime::KvCache>> kv =
      runtime::KvCache::Create(backend.get(), (*model)->config(), kBlocks, kBlockSize);
  FUZZ_CHECK(kv.ok(), "%s", kv.status().ToString().c_str());
  const std::vector<int32_t> prompt = {0, vocab > 1 ? 1 : 0, vocab - 1};
  std::vector<float> logits;
  for (const auto& [begin, count] : {std::pair{0, 3}, std::pair{3, 1}}) {
    runtime::Batch batch;
    const std::vector<int32_t> ids(prompt.begin(), prompt.begin() + count);
    runtime::FillSingleSequenceBatch(ids, begin, kBlocks, kBlockSize, /*sample=*/true, &batch);
    const absl::Status forward = (*model)->Forward(batch, **kv, &logits);
    FUZZ_CHECK(forward.ok(), "%s", forward.ToString().c_str());
  }
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using cohost::runtime::LoadOptions;
  const std::string path = cohost::fuzz::WriteInputFile(data, size, "model.gguf");
  LoadOptions kept;  // as a CPU server loads a GGUF
  kept.keep_quantized = true;
  kept.map_weights = true;
  for (const LoadOptions& options : {LoadOptions{}, kept}) {
    absl::StatusOr<cohost::runtime::ModelFile> file = cohost::runtime::LoadModelFile(path, options);
    if (!file.ok()) {
      cohost::fuzz::CheckFileError(file.status(), path);
      continue;
    }
    cohost::fuzz::UseTokenizer(file->tokenizer);
    cohost::fuzz::RunModel(*std::move(file), path);
  }
  return 0;
}
