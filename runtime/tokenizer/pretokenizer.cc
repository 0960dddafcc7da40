#include "runtime/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime {
namespace {

// Unicode White_Space, spelled out: PCRE2's \s (even with UCP) misses U+0085,
// while the reference implementations (HF tokenizers, llama.cpp) include it.
#define COHOST_WS "\\t\\n\\x{0B}\\f\\r\\x{85}\\p{Z}"
#define COHOST_S "[" COHOST_WS "]"
#define COHOST_NOT_S "[^" COHOST_WS "]"

// GPT-2's pattern, with the trailing "\s+" that HF's ByteLevel adds.
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" COHOST_WS "\\p{L}\\p{N}]+|" COHOST_S
    "+(?!" COHOST_NOT_S ")|" COHOST_S "+";

// Llama 3 (tiktoken cl100k style): numbers in groups of up to three digits.
constexpr const char* kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" COHOST_WS
    "\\p{L}\\p{N}]+[\\r\\n]*|" COHOST_S "*[\\r\\n]+|" COHOST_S "+(?!" COHOST_NOT_S ")|" COHOST_S
    "+";

// Qwen2: as Llama 3 but every digit on its own.
constexpr const char* kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" COHOST_WS
    "\\p{L}\\p{N}]+[\\r\\n]*|" COHOST_S "*[\\r\\n]+|" COHOST_S "+(?!" COHOST_NOT_S ")|" COHOST_S
    "+";

// SmolLM / StarCoder: HF's Digits(individual_digits) before the GPT-2 split.
constexpr const char* kDigitPattern = "\\p{N}";

#undef COHOST_WS
#undef COHOST_S
#undef COHOST_NOT_S

}  // namespace

struct PreTokenizer::Pass {
  pcre2_code* code = nullptr;
  ~Pass() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() = default;

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(std::string_view family) {
  std::vector<const char*> patterns;
  bool ignore_merges = false;
  if (family == "gpt2") {
    patterns = {kGpt2Pattern};
  } else if (family == "smollm" || family == "starcoder" || family == "refact" ||
             family == "codeshell") {
    patterns = {kDigitPattern, kGpt2Pattern};
  } else if (family == "llama3" || family == "llama-bpe") {
    patterns = {kLlama3Pattern};
    ignore_merges = true;
  } else if (family == "qwen2") {
    patterns = {kQwen2Pattern};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported BPE pre-tokenizer \"", std::string(family),
                     "\" (supported: gpt2, smollm, starcoder, llama3, llama-bpe, qwen2)"));
  }
  auto pre = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  pre->ignore_merges_ = ignore_merges;
  for (const char* pattern : patterns) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    auto pass = std::make_unique<Pass>();
    pass->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                               PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (pass->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InternalError(absl::StrCat("pre-tokenizer regex does not compile at ",
                                              error_offset, ": ",
                                              reinterpret_cast<const char*>(message)));
    }
    // JIT is an optimisation only: when unavailable pcre2_match interprets.
    pcre2_jit_compile(pass->code, PCRE2_JIT_COMPLETE);
    pre->passes_.push_back(std::move(pass));
  }
  return pre;
}

absl::StatusOr<std::vector<std::string_view>> PreTokenizer::Split(std::string_view text) const {
  // Validate once so every match can skip PCRE2's own (whole-subject) check.
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  for (const auto& pass : passes_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(pass->code, nullptr);
    if (md == nullptr) return absl::ResourceExhaustedError("pcre2 match data");
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    absl::Status status;
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0;
      while (start < piece.size()) {
        int rc =
            pcre2_match(pass->code, subject, piece.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
          // Pathological input for the default JIT stack: retry interpreted.
          rc = pcre2_match(pass->code, subject, piece.size(), start,
                           PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          status = absl::InternalError(absl::StrCat("pre-tokenizer regex failed: ", rc));
          break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t begin = ov[0], end = ov[1];
        if (begin > start) next.push_back(piece.substr(start, begin - start));
        if (end > begin) {
          next.push_back(piece.substr(begin, end - begin));
          start = end;
        } else {
          // An empty match: move on by one character (the gap keeps the text).
          const size_t len = DecodeUtf8(piece, begin);
          next.push_back(piece.substr(begin, len == 0 ? 1 : len));
          start = begin + (len == 0 ? 1 : len);
        }
      }
      if (!status.ok()) break;
      if (start < piece.size()) next.push_back(piece.substr(start));
    }
    pcre2_match_data_free(md);
    if (!status.ok()) return status;
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace cohost::runtime
