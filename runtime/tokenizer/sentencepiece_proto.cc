// ReadSentencePieceModel (tokenizer_json.h): reads a tokenizer.model
// (sentencepiece's ModelProto) with a minimal protobuf wire-format walker:
// pieces, scores, types, special ids, model type and normalizer flags. Our own
// walker rather than libsentencepiece, whose Debian build exports a private
// copy of protobuf's symbols that clashes with libprotobuf in one process.
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/tokenizer_json.h"

namespace cohost::runtime {
namespace {

// One field of a protobuf message: varint value or length-delimited bytes.
struct Field {
  uint32_t number;
  uint32_t wire_type;
  uint64_t varint;
  uint32_t fixed32;
  std::string_view bytes;
};

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  // false at the end; sets ok() false on malformed input.
  bool Next(Field* f) {
    if (pos_ >= data_.size() || !ok_) return false;
    uint64_t key;
    if (!Varint(&key)) return false;
    f->number = static_cast<uint32_t>(key >> 3);
    f->wire_type = static_cast<uint32_t>(key & 7);
    f->varint = 0;
    f->fixed32 = 0;
    f->bytes = {};
    switch (f->wire_type) {
      case 0:
        return Varint(&f->varint);
      case 1:
        return Skip(8);
      case 5:
        if (4 > data_.size() - pos_) return Fail();
        std::memcpy(&f->fixed32, data_.data() + pos_, 4);  // little-endian hosts only
        pos_ += 4;
        return true;
      case 2: {
        uint64_t len;
        if (!Varint(&len) || len > data_.size() - pos_) return Fail();
        f->bytes = data_.substr(pos_, len);
        pos_ += len;
        return true;
      }
      default:
        return Fail();  // groups are not used by ModelProto
    }
  }
  bool ok() const { return ok_; }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  bool Skip(size_t n) {
    if (n > data_.size() - pos_) return Fail();
    pos_ += n;
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Fail();
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return Fail();
  }
  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// ModelProto field numbers (sentencepiece_model.proto).
constexpr uint32_t kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3;
constexpr uint32_t kPieceText = 1, kPieceScore = 2, kPieceType = 3;
constexpr uint32_t kTrainerModelType = 3, kTrainerUnkId = 40, kTrainerBosId = 41,
                   kTrainerEosId = 42, kTrainerPadId = 43;
constexpr uint32_t kNormName = 1, kNormAddDummyPrefix = 3, kNormRemoveExtraWhitespaces = 4,
                   kNormEscapeWhitespaces = 5;
constexpr uint64_t kModelTypeBpe = 2;

struct ProtoFacts {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<TokenType> types;  // SentencePiece.Type numbering equals ours
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // ModelProto defaults
  uint64_t model_type = 1;                                  // UNIGRAM unless said otherwise
  std::string normalizer = "nmt_nfkc";
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool too_many_pieces = false;
};

// Real vocabularies have up to 256K pieces (Gemma); 64 MiB of two-byte
// pieces would be 32M, several GB once held as strings.
constexpr size_t kMaxPieces = size_t{1} << 20;

bool ReadFacts(std::string_view proto, ProtoFacts* facts) {
  WireReader top(proto);
  Field f;
  while (top.Next(&f)) {
    if (f.number == kPieces && f.wire_type == 2) {
      WireReader piece(f.bytes);
      Field pf;
      TokenType type = TokenType::kNormal;
      std::string text;
      float score = 0;
      while (piece.Next(&pf)) {
        if (pf.number == kPieceText && pf.wire_type == 2) text = std::string(pf.bytes);
        if (pf.number == kPieceScore && pf.wire_type == 5) std::memcpy(&score, &pf.fixed32, 4);
        if (pf.number == kPieceType && pf.wire_type == 0 && pf.varint >= 1 && pf.varint <= 6) {
          type = static_cast<TokenType>(pf.varint);
        }
      }
      if (!piece.ok()) return false;
      if (facts->pieces.size() == kMaxPieces) {
        facts->too_many_pieces = true;
        return false;
      }
      facts->pieces.push_back(std::move(text));
      facts->scores.push_back(score);
      facts->types.push_back(type);
    } else if (f.number == kTrainerSpec && f.wire_type == 2) {
      WireReader trainer(f.bytes);
      Field tf;
      while (trainer.Next(&tf)) {
        if (tf.wire_type != 0) continue;
        // int32 fields: negative values arrive as 64-bit two's complement.
        const auto as_int = static_cast<int32_t>(static_cast<int64_t>(tf.varint));
        if (tf.number == kTrainerModelType) facts->model_type = tf.varint;
        if (tf.number == kTrainerUnkId) facts->unk_id = as_int;
        if (tf.number == kTrainerBosId) facts->bos_id = as_int;
        if (tf.number == kTrainerEosId) facts->eos_id = as_int;
        if (tf.number == kTrainerPadId) facts->pad_id = as_int;
      }
      if (!trainer.ok()) return false;
    } else if (f.number == kNormalizerSpec && f.wire_type == 2) {
      WireReader norm(f.bytes);
      Field nf;
      while (norm.Next(&nf)) {
        if (nf.number == kNormName && nf.wire_type == 2) facts->normalizer = std::string(nf.bytes);
        if (nf.wire_type != 0) continue;
        if (nf.number == kNormAddDummyPrefix) facts->add_dummy_prefix = nf.varint != 0;
        if (nf.number == kNormRemoveExtraWhitespaces) {
          facts->remove_extra_whitespaces = nf.varint != 0;
        }
        if (nf.number == kNormEscapeWhitespaces) facts->escape_whitespaces = nf.varint != 0;
      }
      if (!norm.ok()) return false;
    }
  }
  return top.ok();
}

}  // namespace

absl::StatusOr<TokenizerSpec> ReadSentencePieceModel(const std::string& path) {
  constexpr std::streamoff kMaxBytes = 64 << 20;  // real models are well under 5 MB
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::streamoff size = in.tellg();
  if (size <= 0 || size > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": size ", size, " bytes is not that of a SentencePiece model"));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  ProtoFacts facts;
  const bool read = ReadFacts(bytes, &facts);
  if (facts.too_many_pieces) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": more than ", kMaxPieces, " pieces (not a real vocabulary)"));
  }
  if (!read || facts.pieces.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a SentencePiece model (malformed ModelProto)"));
  }
  const auto n = static_cast<int32_t>(facts.pieces.size());
  for (int32_t* id : {&facts.unk_id, &facts.bos_id, &facts.eos_id, &facts.pad_id}) {
    if (*id >= n || *id < -1) *id = -1;  // an id outside the vocabulary means "none"
  }
  if (facts.model_type != kModelTypeBpe) {
    return absl::UnimplementedError(
        absl::StrCat(path, ": SentencePiece model type ", facts.model_type,
                     " is not BPE (2); Unigram models are not supported"));
  }
  if (facts.normalizer != "identity" || facts.remove_extra_whitespaces ||
      !facts.escape_whitespaces) {
    return absl::UnimplementedError(
        absl::StrCat(path, ": SentencePiece normalizer \"", facts.normalizer,
                     "\" (remove_extra_whitespaces=", facts.remove_extra_whitespaces,
                     ") is not supported; only identity normalization as in Llama/Mistral"));
  }
  TokenizerSpec spec;
  spec.kind = TokenizerKind::kSentencePiece;
  spec.pre_tokenizer.clear();
  spec.tokens = std::move(facts.pieces);
  spec.scores = std::move(facts.scores);
  spec.token_types = std::move(facts.types);
  spec.bos_id = facts.bos_id;
  spec.eos_id = facts.eos_id;
  spec.unk_id = facts.unk_id;
  spec.pad_id = facts.pad_id;
  spec.add_bos = spec.bos_id >= 0;  // Llama's convention; tokenizer_config may override
  spec.add_eos = false;
  spec.add_space_prefix = facts.add_dummy_prefix;
  // Hugging Face's LlamaTokenizer encodes each run between special tokens
  // with the model (legacy, its default).
  spec.space_prefix_after_special = true;
  return spec;
}

}  // namespace cohost::runtime
