// Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2): text bytes are mapped to
// the GPT-2 alphabet, split by the family's pre-tokenizer, and each word is
// merged by merge rank (lowest first, leftmost on ties) with a heap over a
// linked list of symbols, so long words cost O(n log n).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/tokenizer_spec.h"
#include "runtime/tokenizer/bpe_encoder.h"
#include "runtime/tokenizer/pretokenizer.h"

namespace cohost::runtime {

class ByteLevelBpe : public BpeEncoder {
 public:
  // types: one per token (spec.token_types, or the defaults Tokenizer fills in).
  static absl::StatusOr<std::unique_ptr<ByteLevelBpe>> Create(const TokenizerSpec& spec,
                                                              absl::Span<const TokenType> types);

  absl::Status EncodeText(std::string_view text, bool at_text_start,
                          std::vector<int32_t>* out) const override;
  std::string PieceBytes(int32_t id) const override;

  // Merges one pre-tokenized word (raw bytes). Exposed for tests.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;
  // Words whose merges are cached now (tests).
  size_t cached_words() const;

  // Words repeat a lot in real text; results are cached up to a bound, for
  // words of fewer than kMaxCachedWordBytes (as Hugging Face's tokenizers
  // do): a client's text of long distinct words could otherwise fill the
  // cache, which lives as long as the model, with gigabytes.
  static constexpr size_t kMaxCacheEntries = 1 << 16;
  static constexpr size_t kMaxCachedWordBytes = 256;

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void MergeWord(std::string_view word, std::vector<int32_t>* out) const;

  std::unique_ptr<PreTokenizer> pre_;
  std::vector<std::string> tokens_;  // never changed after Create: keys below point into it
  absl::flat_hash_map<absl::string_view, int32_t> token_to_id_;  // byte-level form
  absl::flat_hash_map<uint64_t, Merge> merges_;                  // PairKey -> merge
  std::array<int32_t, 256> byte_ids_;                            // id of each single byte, or -1
  int32_t unk_id_ = -1;

  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace cohost::runtime
