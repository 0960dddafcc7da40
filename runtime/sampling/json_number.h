// The bounds a JSON number is held to (JSON Schema's minimum, maximum,
// exclusiveMinimum, exclusiveMaximum), and the question JsonGrammar asks of
// them at every byte of a number: can the text so far still end within
// them? Bounds are integers in units of 10^-scale (a number's as fine as
// its bounds' decimals, up to kMaxBoundDecimals and within 2^62 units; an
// integer's whole; a finer bound rounded in when compiled:
// schema_values.h), which keeps every answer exact in integer arithmetic:
// between two such units, all decimals compare alike. A bounded number is
// written without an exponent. JSON Schema's multipleOf is held in the same
// units: an integer's (or a number's whole multipleOf, whose values are
// integers) as the integer its values are multiples of, a number's as a
// count of units of 10^-scale (no more decimals than the bounds' units).
#pragma once

#include <cstdint>
#include <utility>

namespace cohost::runtime {

// The most decimals a bound keeps: one with more is rounded in (narrower,
// never wider).
inline constexpr int kMaxBoundDecimals = 6;
// The largest multiple held (a value's remainder is grammar state).
inline constexpr uint32_t kMaxMultiple = 1'000'000'000;

struct NumberBounds {
  bool has_min = false, has_max = false;
  bool min_exclusive = false, max_exclusive = false;
  uint8_t scale = 0;  // min and max count units of 10^-scale
  int64_t min = 0, max = 0;
  // Not 0: the values are multiples of this many units (1: any value of at
  // most `scale` decimals; an integer's: any integer).
  uint32_t multiple = 0;

  // The values are held to something (and their digits are kept).
  bool any() const { return has_min || has_max || multiple != 0; }
  // The values are integers: multiples of whole units (a number's whole
  // multipleOf makes its node an integer's).
  bool whole_multiples() const { return multiple != 0 && scale == 0; }
  // Some value of the type (an integer, or any number) lies within.
  bool Satisfiable(bool integer) const;

  friend bool operator==(const NumberBounds&, const NumberBounds&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const NumberBounds& b) {
    return H::combine(std::move(h), b.has_min, b.has_max, b.min_exclusive, b.max_exclusive, b.scale,
                      b.min, b.max, b.multiple);
  }
};

// A number's text so far, as the bounds see it.
struct NumberPrefix {
  // Past this, an integer part's magnitude is larger than any bound, and
  // more digits change nothing the bounds can tell (so it stops growing).
  static constexpr uint64_t kMagnitudeCap = 10'000'000'000'000'000'000u;

  bool negative = false;
  bool digits = false;            // the integer part has a digit
  bool more_digits = false;       // it may take more (it is not a lone 0)
  bool fraction = false;          // a '.' was written
  uint8_t fraction_digits = 0;    // the digits after it, up to the bounds' scale
  uint32_t fraction_value = 0;    // their value
  bool nonzero_fraction = false;  // a digit other than 0 after those
  uint64_t magnitude = 0;         // the integer part's value, capped
  uint32_t remainder = 0;         // the integer part's value mod the bounds' multiple

  // The magnitude after one more digit of the integer part.
  static uint64_t Grown(uint64_t magnitude, int digit);
  // The remainder mod `multiple` after one more digit.
  static uint32_t Grown(uint32_t remainder, int digit, uint32_t multiple) {
    return static_cast<uint32_t>((uint64_t{remainder} * 10 + static_cast<uint64_t>(digit)) %
                                 multiple);
  }
};

// Some number that starts with the prefix (and has no exponent) lies
// within the bounds.
bool CanReach(const NumberBounds& bounds, bool integer, const NumberPrefix& prefix);
// The prefix as it is, a whole number, lies within them.
bool Within(const NumberBounds& bounds, const NumberPrefix& prefix);

}  // namespace cohost::runtime
