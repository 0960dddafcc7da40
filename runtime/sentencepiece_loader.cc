#include "runtime/sentencepiece_loader.h"

#include <sentencepiece_processor.h>

namespace cohost::runtime {

std::string LoadRawSentencePieceModel(const std::string& path, RawSentencePieceModel* out) {
  sentencepiece::SentencePieceProcessor sp;
  if (const auto status = sp.Load(path); !status.ok()) return status.ToString();
  const int n = sp.GetPieceSize();
  out->pieces.clear();
  out->scores.clear();
  out->pieces.reserve(n);
  out->scores.reserve(n);
  for (int id = 0; id < n; ++id) {
    out->pieces.push_back(sp.IdToPiece(id));
    out->scores.push_back(sp.GetScore(id));
  }
  out->bos_id = sp.bos_id();
  out->eos_id = sp.eos_id();
  out->unk_id = sp.unk_id();
  out->pad_id = sp.pad_id();
  out->serialized_proto = sp.serialized_model_proto();
  return "";
}

}  // namespace cohost::runtime
