// A string's pattern (JSON Schema's "pattern", and the "format"s it can be
// written as) compiled into a Glushkov automaton over the string's
// characters, which JsonGrammar steps as a string is written.
//
// The expression is the ECMA-262 subset generated schemas use: literals;
// escapes (\d \w \s \D \W \S, \t \n \r \f \v, \xHH, \uHHHH of an ASCII
// character, an escaped punctuator); '.'; classes ([a-z_], [^...]); groups
// ((...), (?:...), (?<name>...)); '|'; and the quantifiers ? * + {n} {n,}
// {n,m}, greedy or lazy. '^' and '$' anchor at the ends of the expression
// or of a top-level alternative; an end not anchored matches anywhere
// (JSON Schema's rule), as if ".*" stood there. Lookarounds,
// backreferences, word boundaries, \p{...} and anchors elsewhere are
// refused by name.
//
// Characters are the ASCII ones a JSON string carries without \u (the
// printable ones, and \b \f \n \r \t escaped), and the non-ASCII ones as
// one symbol, which a class holds only where it holds every non-ASCII
// character (a negated class of ASCII characters, \D, \W). Elsewhere none
// is written: '.' and \S are ASCII here (U+2028 is no '.', and U+00A0 is a
// \s), a narrower language than ECMA's with the "u" flag (characters,
// not UTF-16 units, as JSON Schema validators such as ajv match), never a
// wider one. A literal non-ASCII character is refused. A string held to a
// pattern writes no \u escapes, and the expression is at most 4096 bytes.
//
// A state is the set of positions (the classes of the expression, counted
// repeats copied out) that the text so far can end on: at most 63, and
// kStart for none yet.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace cohost::runtime {

class StringPattern {
 public:
  static constexpr int kMaxPositions = 63;
  static constexpr uint64_t kStart = uint64_t{1} << kMaxPositions;
  static constexpr uint32_t kNonAscii = 128;  // every non-ASCII character
  // Completion lengths are known exactly up to this many characters; past
  // it, only whether they go on without end.
  static constexpr uint32_t kMaxExactLength = 255;

  // INVALID_ARGUMENT naming what is not supported (of the pattern itself,
  // only the offset).
  static absl::StatusOr<StringPattern> Compile(std::string_view pattern);
  // "date", "time", "date-time" (RFC 3339; no leap day or leap second),
  // "duration" (RFC 3339's appendix A), "uuid", "ipv4", "email"
  // (name@host.domain, ASCII), "hostname" (RFC 1123's labels, without their
  // 63-byte bound: wider there); INVALID_ARGUMENT for any other (ipv6's
  // forms take more positions than there are).
  static absl::StatusOr<StringPattern> OfFormat(std::string_view format);

  // The state after one more character (its ASCII code, or kNonAscii); 0
  // where no string of the pattern goes so.
  uint64_t Step(uint64_t state, uint32_t c) const {
    uint64_t next = 0;
    for (uint64_t bits = state; bits != 0; bits &= bits - 1) next |= follow_[__builtin_ctzll(bits)];
    return next & by_char_[c];
  }
  bool Accepts(uint64_t state) const { return (state & accept_) != 0; }
  // From `state`, some string of the pattern ends after between `least`
  // and `most` more characters (`most` at most kMaxExactLength, or
  // UINT32_MAX for no limit).
  bool EndsWithin(uint64_t state, uint32_t least, uint32_t most) const;
  // The whole of `text` (UTF-8) is a string of the pattern.
  bool Matches(std::string_view text) const;

  friend bool operator==(const StringPattern&, const StringPattern&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const StringPattern& p) {
    h = H::combine_contiguous(std::move(h), p.follow_.data(), p.follow_.size());
    h = H::combine_contiguous(std::move(h), p.by_char_.data(), p.by_char_.size());
    return H::combine(std::move(h), p.accept_);
  }

 private:
  friend class PatternBuilder;
  StringPattern() = default;

  // Lengths: bit k of lengths_[p] (k <= kMaxExactLength) where a string
  // of the pattern ends k characters after position p; endless_: positions
  // after which strings of the pattern go on as long as one likes.
  void FindLengths();

  std::array<uint64_t, kMaxPositions + 1> follow_{};  // by position; [63]: the start's
  std::array<uint64_t, kNonAscii + 1> by_char_{};     // the positions each character may take
  uint64_t accept_ = 0;                               // positions a string may end on
  std::array<std::array<uint64_t, 4>, kMaxPositions + 1> lengths_{};
  uint64_t endless_ = 0;
};

}  // namespace cohost::runtime
