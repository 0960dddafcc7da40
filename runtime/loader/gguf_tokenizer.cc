// TokenizerSpec from GGUF `tokenizer.*` metadata (llama.cpp's keys).
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "runtime/loader/gguf_reader.h"
#include "runtime/loader/model_loading.h"

namespace cohost::runtime {
namespace {

// Tokens that end an assistant turn in the chat formats we know.
constexpr absl::string_view kTurnEndTokens[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                                "<|endoftext|>"};

absl::Status Bad(const GgufFile& f, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", what));
}

// A token id key: absent leaves *id unchanged; present must be < n_tokens.
absl::Status GetTokenId(const GgufFile& f, absl::string_view key, size_t n_tokens, int32_t* id) {
  ASSIGN_OR_RETURN(auto v, f.GetInt(key));
  if (!v.has_value()) return absl::OkStatus();
  if (*v < 0 || static_cast<uint64_t>(*v) >= n_tokens) {
    return Bad(f, absl::StrFormat("metadata '%s' = %d is not a token id (vocab of %u tokens)", key,
                                  *v, n_tokens));
  }
  *id = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

absl::Status GetFlag(const GgufFile& f, absl::string_view key, bool* flag) {
  ASSIGN_OR_RETURN(auto v, f.GetBool(key));
  if (v.has_value()) *flag = *v;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerSpec> TokenizerFromGguf(const GgufFile& f, int32_t vocab_size) {
  TokenizerSpec spec;
  ASSIGN_OR_RETURN(auto model, f.GetString("tokenizer.ggml.model"));
  if (!model.has_value()) return Bad(f, "metadata 'tokenizer.ggml.model' is missing");
  if (*model == "gpt2") {
    spec.kind = TokenizerKind::kByteLevelBpe;
  } else if (*model == "llama") {
    spec.kind = TokenizerKind::kSentencePiece;
  } else {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: tokenizer model '%s' is not supported (supported: gpt2, llama)", f.path(), *model));
  }
  const bool spm = spec.kind == TokenizerKind::kSentencePiece;
  ASSIGN_OR_RETURN(auto pre, f.GetString("tokenizer.ggml.pre"));
  if (pre.has_value() && *pre != "default") spec.pre_tokenizer = *pre;

  ASSIGN_OR_RETURN(auto tokens, f.GetArray("tokenizer.ggml.tokens", GgufFile::ArrayKind::kString));
  if (tokens == nullptr || tokens->size() == 0)
    return Bad(f, "metadata 'tokenizer.ggml.tokens' is missing");
  const size_t n = tokens->size();
  if (n > static_cast<size_t>(vocab_size)) {
    return Bad(f, absl::StrFormat("%u tokens but the model's vocab_size is %d", n, vocab_size));
  }
  spec.tokens = tokens->strings;

  ASSIGN_OR_RETURN(auto scores, f.GetArray("tokenizer.ggml.scores", GgufFile::ArrayKind::kFloat));
  if (scores != nullptr) {
    if (scores->size() != n) {
      return Bad(f, absl::StrFormat("tokenizer.ggml.scores has %u entries for %u tokens",
                                    scores->size(), n));
    }
    spec.scores.reserve(n);
    for (double s : scores->floats) spec.scores.push_back(static_cast<float>(s));
    for (int64_t s : scores->ints) spec.scores.push_back(static_cast<float>(s));
  }
  ASSIGN_OR_RETURN(auto types, f.GetArray("tokenizer.ggml.token_type", GgufFile::ArrayKind::kInt));
  if (types != nullptr) {
    if (types->size() != n) {
      return Bad(f, absl::StrFormat("tokenizer.ggml.token_type has %u entries for %u tokens",
                                    types->size(), n));
    }
    spec.token_types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = types->ints[i];
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        return Bad(f, absl::StrFormat("token %u has invalid token type %d", i, t));
      }
      spec.token_types.push_back(static_cast<TokenType>(t));
    }
  }
  ASSIGN_OR_RETURN(auto merges, f.GetArray("tokenizer.ggml.merges", GgufFile::ArrayKind::kString));
  if (merges != nullptr) spec.merges = merges->strings;
  if (!spm && spec.merges.empty()) return Bad(f, "a gpt2 tokenizer needs 'tokenizer.ggml.merges'");

  const struct {
    const char* key;
    int32_t* id;
  } ids[] = {{"tokenizer.ggml.bos_token_id", &spec.bos_id},
             {"tokenizer.ggml.eos_token_id", &spec.eos_id},
             {"tokenizer.ggml.unknown_token_id", &spec.unk_id},
             {"tokenizer.ggml.padding_token_id", &spec.pad_id}};
  for (const auto& e : ids) {
    RETURN_IF_ERROR(GetTokenId(f, e.key, n, e.id));
  }
  // Turn-ending tokens: explicit eot/eom ids, then the well-known names.
  auto add_extra_eos = [&spec](int32_t id) {
    if (id < 0 || id == spec.eos_id) return;
    for (int32_t e : spec.extra_eos_ids)
      if (e == id) return;
    spec.extra_eos_ids.push_back(id);
  };
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int32_t id = -1;
    RETURN_IF_ERROR(GetTokenId(f, key, n, &id));
    add_extra_eos(id);
  }
  for (absl::string_view name : kTurnEndTokens) {
    for (size_t i = 0; i < n; ++i) {
      if (spec.tokens[i] == name) {
        add_extra_eos(static_cast<int32_t>(i));
        break;
      }
    }
  }

  spec.add_bos = spm;  // llama.cpp's defaults when the file does not say
  spec.add_eos = false;
  spec.add_space_prefix = spm;
  spec.space_prefix_after_special = spm;  // llama.cpp's tokenizer
  RETURN_IF_ERROR(GetFlag(f, "tokenizer.ggml.add_bos_token", &spec.add_bos));
  RETURN_IF_ERROR(GetFlag(f, "tokenizer.ggml.add_eos_token", &spec.add_eos));
  if (absl::Status s = GetFlag(f, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix);
      !s.ok()) {
    return s;
  }
  ASSIGN_OR_RETURN(auto tmpl, f.GetString("tokenizer.chat_template"));
  spec.chat_template = tmpl.value_or("");
  return spec;
}

}  // namespace cohost::runtime
