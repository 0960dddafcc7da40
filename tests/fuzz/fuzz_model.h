// The model the request targets build against: the default model's
// tokenizer and limits with Qwen3's chat template (tests/data/chat_templates/
// qwen3.jinja, as `--chat-template` gives it), so that tools, calls and
// think blocks are formatted, not refused. COHOST_FUZZ_MODEL names another
// file. Loaded once (LLVMFuzzerInitialize): config and tokenizer only.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "runtime/batching/request_validation.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::fuzz {

struct FuzzModel {
  std::string path;
  std::unique_ptr<runtime::Tokenizer> tokenizer;
  runtime::RequestLimits limits;
};

inline const FuzzModel& TheModel() {
  static const FuzzModel* const model = [] {
    auto* m = new FuzzModel;
    const char* env = std::getenv("COHOST_FUZZ_MODEL");
    m->path = env != nullptr ? env : COHOST_DEFAULT_MODEL;
    absl::StatusOr<runtime::ModelDescription> described =
        runtime::DescribeModel(m->path, COHOST_SOURCE_DIR "/tests/data/chat_templates/qwen3.jinja");
    if (!described.ok()) {
      std::fprintf(stderr, "cannot load %s: %s (scripts/fetch_model.sh fetches it)\n",
                   m->path.c_str(), described.status().ToString().c_str());
      std::exit(2);
    }
    m->tokenizer = std::move(described->tokenizer);
    m->limits = {.vocab_size = described->config.vocab_size,
                 .context_length = described->config.max_position_embeddings,
                 .kv_capacity_tokens = 0,
                 .max_unchunked_tokens = 0};
    return m;
  }();
  return *model;
}

}  // namespace cohost::fuzz
