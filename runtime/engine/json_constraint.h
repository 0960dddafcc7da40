// Holds a request with a JSON response format to its grammar: before its
// token is drawn, every token the document so far cannot take (token_mask.h)
// gets a logit of -inf, and its ends of generation are allowed only once the
// document is whole; after, the token's bytes advance the document. Built
// from the model's tokenizer, once for all its engines where the caller
// keeps it (EngineConfig::json_constraint), else with each engine: control,
// unknown and unused tokens are never chosen (they are no text).
//
// A mask depends only on the schema and the document's state, and few
// states recur (inside a string at some depth, after a key): the walk over
// the vocabulary (some 0.8 ms inside a string, for 49k tokens) is done once
// per state and kept, up to kCachedMasks states (the least recently used
// go first), shared by the requests of its engines: all of JSON mode's, and
// those of one JSON schema (InternedSchemas gives equal schemas one
// address). A
// length-limited string's states share a key while their counts are a
// token or more from each limit (JsonGrammar::MaskKey).
//
// A document may follow a think block (JsonPhase, sampling_params.h): while
// the output may still open one, the mask is the document's start's and the
// opening tag; inside it every token but the ends of generation and the
// request's stop ids (the closing tag even so) is allowed; its closing tag
// starts the document. The tags must each be one user-defined token of the
// vocabulary (Thinks): they are in every reasoning model's (Qwen3's, QwQ's,
// DeepSeek-R1's added <think> and </think>).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/sampling/token_mask.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {

// The bytes each id may put in a document: none for what is no text
// (control, unknown and unused tokens).
std::vector<std::string> TextTokens(const Tokenizer& tokenizer);

class JsonConstraint {
 public:
  explicit JsonConstraint(const Tokenizer& tokenizer);

  // What it was built from.
  const Tokenizer& tokenizer() const { return tokenizer_; }
  // Whether a document can end at all: the vocabulary has an end of generation.
  bool CanEnd() const { return !end_ids_.empty(); }
  // Whether a document can follow a think block: "<think>" and "</think>"
  // are each one user-defined token (Tokenizer::think_open_id).
  bool Thinks() const {
    return tokenizer_.think_open_id() >= 0 && tokenizer_.think_close_id() >= 0;
  }

  // logits: [vocab] of one row, masked in place, for a document of
  // `schema` (kept alive while a mask of it is cached) in `phase` (kDocument
  // where the vocabulary has no think tags). stop_ids: the
  // request's own stop token ids, which end it as an end of generation does:
  // allowed only where the document may end. Where the vocabulary has no
  // token that continues the document (a vocabulary without some single
  // byte), the ends are allowed: it ends unfinished. Thread-safe.
  void Mask(const std::shared_ptr<const JsonSchema>& schema, const JsonGrammar& document,
            JsonPhase phase, absl::Span<const int32_t> stop_ids, absl::Span<float> logits) const;
  // The same mask as bits (Backend::MaskRows's layout: bit t % 64 of word
  // t / 64 set where token t may follow), appended to `masks` for a row of
  // `width` logits (ids past the vocabulary never allowed).
  void AppendMask(const std::shared_ptr<const JsonSchema>& schema, const JsonGrammar& document,
                  JsonPhase phase, absl::Span<const int32_t> stop_ids, int32_t width,
                  std::vector<uint64_t>* masks) const;
  // The phase and the document after `token`; an end of generation leaves
  // them as they are.
  void Advance(const JsonSchema& schema, int32_t token, JsonPhase* phase,
               JsonGrammar* document) const;
  // The walks over the vocabulary so far: states not found cached.
  int64_t walks() const;

 private:
  static constexpr size_t kCachedMasks = 256;
  struct Allowed {
    std::vector<uint64_t> bits;  // bit id % 64 of bits[id / 64]: the token may follow
    bool ends = false;           // the ends of generation are among them
    // Its key's schema, alive while the entry is: no other schema can take
    // its address and find this mask.
    std::shared_ptr<const JsonSchema> schema;
  };
  using Key = std::pair<const JsonSchema*, JsonGrammar>;
  struct Cached {
    std::shared_ptr<const Allowed> allowed;
    uint64_t used = 0;  // the tick of its last use
  };
  // Drops the least recently used quarter of the cache. Needs mu_.
  void EvictColdLocked() const;
  std::shared_ptr<const Allowed> AllowedAfter(const std::shared_ptr<const JsonSchema>& schema,
                                              const JsonGrammar& document) const;

  const Tokenizer& tokenizer_;
  TokenMask mask_;
  std::vector<int32_t> end_ids_;  // the tokenizer's ends of generation
  mutable std::mutex mu_;
  mutable absl::flat_hash_map<Key, Cached> cache_;  // guarded by mu_
  mutable uint64_t tick_ = 0;                       // guarded by mu_; a use of the cache
  mutable int64_t walks_ = 0;                       // guarded by mu_
};

}  // namespace cohost::runtime
