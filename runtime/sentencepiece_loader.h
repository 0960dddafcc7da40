// Internal to the tokenizer library: the only code that includes
// sentencepiece's header (it defines its own absl::string_view, which clashes
// with Abseil's), so this interface uses std types only.
#pragma once

#include <string>
#include <vector>

namespace cohost::runtime {

struct RawSentencePieceModel {
  std::vector<std::string> pieces;  // id -> piece
  std::vector<float> scores;        // id -> score
  int bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  std::string serialized_proto;     // ModelProto bytes, for fields the API hides
};

// Reads a tokenizer.model with the sentencepiece library (never used to
// encode). Returns an empty string on success, else the error message.
std::string LoadRawSentencePieceModel(const std::string& path, RawSentencePieceModel* out);

}  // namespace cohost::runtime
