// SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): spaces become "▁",
// an optional "▁" prefix starts the text, characters are merged greedily by
// the score of the merged piece (highest first, leftmost on ties), as
// sentencepiece's bpe_model.cc and llama.cpp's SPM tokenizer do; characters
// outside the vocabulary fall back to <0xNN> byte pieces, else <unk>.
// A spec converted from a Hugging Face tokenizer.json carries merges instead
// of scores; then the pair's merge rank decides (lowest first), as HF does.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/loader/tokenizer_spec.h"
#include "runtime/tokenizer/bpe_encoder.h"

namespace cohost::runtime {

inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

class SentencePieceBpe : public BpeEncoder {
 public:
  // types: one per token (spec.token_types, or the defaults Tokenizer fills
  // in); where empty, pieces spelled <0xNN> are taken as byte pieces.
  static absl::StatusOr<std::unique_ptr<SentencePieceBpe>> Create(
      const TokenizerSpec& spec, absl::Span<const TokenType> types);

  absl::Status EncodeText(std::string_view text, bool at_text_start,
                          std::vector<int32_t>* out) const override;
  std::string PieceBytes(int32_t id) const override;

 private:
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  // Id of a piece that merging may produce, or -1.
  int32_t Find(std::string_view piece) const;

  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::vector<float> scores_;
  // Pieces merging may produce: normal, user-defined and unused ones (never
  // control, unknown or byte pieces), as in sentencepiece's model.
  absl::flat_hash_map<absl::string_view, int32_t> pieces_;  // keys point into tokens_
  // PairKey(left id, right id) -> merge rank; only for HF-converted specs.
  absl::flat_hash_map<uint64_t, int32_t> merge_ranks_;
  // The spec lists merges: they alone decide what merges, in their order (the
  // scores, which it need not have, do not), even where none of them applies.
  bool by_merge_rank_ = false;
  std::array<int32_t, 256> byte_ids_;  // <0xNN> piece ids, -1 where absent
  bool byte_fallback_ = false;         // all 256 byte pieces exist
  bool add_space_prefix_ = true;
  int32_t unk_id_ = -1;
};

// True when `piece` is spelled "<0xNN>" (two hex digits); *byte receives NN.
bool ParseBytePiece(std::string_view piece, uint8_t* byte);

}  // namespace cohost::runtime
