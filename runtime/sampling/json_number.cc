#include "runtime/sampling/json_number.h"

#include <algorithm>

namespace cohost::runtime {
namespace {

using Wide = __int128;
constexpr Wide kInf = Wide{1} << 100;  // beyond every bound and magnitude
// Beyond every finite bound (|bound| <= 2^62, any scale).
constexpr Wide kPastBounds = Wide{1} << 63;

Wide PowerOfTen(int n) {
  Wide p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

// An interval of the real line, each end open or closed (+-kInf: no end).
struct Range {
  Wide lo;
  bool lo_open;
  Wide hi;
  bool hi_open;
};

Range Values(const NumberBounds& b) {
  return {b.has_min ? Wide{b.min} : -kInf, b.has_min && b.min_exclusive,
          b.has_max ? Wide{b.max} : kInf, b.has_max && b.max_exclusive};
}

// The magnitudes a number of this sign may have: -m lies within the bounds
// where m lies within them mirrored.
Range Magnitudes(const NumberBounds& b, bool negative) {
  const Range v = Values(b);
  if (!negative) return v;
  return {-v.hi, v.hi_open, -v.lo, v.lo_open};
}

// x and y share a point: any real one, or an integer where `integer` (every
// end is an integer, so an open one closes a step inwards).
bool Meet(const Range& x, const Range& y, bool integer) {
  if (integer) {
    return std::max(x.lo + x.lo_open, y.lo + y.lo_open) <=
           std::min(x.hi - x.hi_open, y.hi - y.hi_open);
  }
  const Wide lo = std::max(x.lo, y.lo);
  const Wide hi = std::min(x.hi, y.hi);
  const bool lo_open = (x.lo == lo && x.lo_open) || (y.lo == lo && y.lo_open);
  const bool hi_open = (x.hi == hi && x.hi_open) || (y.hi == hi && y.hi_open);
  return lo < hi || (lo == hi && !lo_open && !hi_open);
}

Wide FloorDiv(Wide a, Wide b) {
  const Wide q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// x and y share an integer that is a multiple of `multiple` (> 1).
bool MeetMultiple(const Range& x, const Range& y, uint32_t multiple) {
  const Wide lo = std::max(x.lo + x.lo_open, y.lo + y.lo_open);
  const Wide hi = std::min(x.hi - x.hi_open, y.hi - y.hi_open);
  return lo <= hi && FloorDiv(hi, multiple) * multiple >= lo;
}

// x and y share a value the bounds allow of their type (ends in their units).
bool MeetValue(const Range& x, const Range& y, const NumberBounds& b, bool integer) {
  return b.multiple != 0 ? MeetMultiple(x, y, b.multiple) : Meet(x, y, integer);
}

// The written digits' value in units mod the bounds' multiple (exact past
// the magnitude's cap: from the integer part's remainder).
Wide Remainder(const NumberBounds& bounds, const NumberPrefix& prefix) {
  const Wide m = bounds.multiple;
  Wide r = Wide{prefix.remainder} * PowerOfTen(bounds.scale) % m;
  if (prefix.fraction) {
    r += Wide{prefix.fraction_value} * PowerOfTen(bounds.scale - prefix.fraction_digits) % m;
  }
  return r % m;
}

// In units of 10^-scale: the written digits' value, m.ddd with the
// fraction's first `scale` digits.
Wide Written(const NumberBounds& bounds, const NumberPrefix& prefix) {
  const Wide unit = PowerOfTen(bounds.scale);
  Wide w = Wide{prefix.magnitude} * unit;
  if (prefix.fraction) {
    w += Wide{prefix.fraction_value} * PowerOfTen(bounds.scale - prefix.fraction_digits);
  }
  return w;
}

}  // namespace

bool NumberBounds::Satisfiable(bool integer) const {
  return MeetValue(Values(*this), {-kInf, false, kInf, false}, *this, integer);
}

uint64_t NumberPrefix::Grown(uint64_t magnitude, int digit) {
  const Wide grown = Wide{magnitude} * 10 + digit;
  return grown >= kMagnitudeCap ? kMagnitudeCap : static_cast<uint64_t>(grown);
}

bool CanReach(const NumberBounds& bounds, bool integer, const NumberPrefix& prefix) {
  const Range allowed = Magnitudes(bounds, prefix.negative);
  const auto meets = [&](const Range& r) { return MeetValue(r, allowed, bounds, integer); };
  if (!prefix.digits) return meets({0, false, kInf, false});
  const Wide unit = PowerOfTen(bounds.scale);
  const Wide w = Written(bounds, prefix);
  // m.ddd...: the digits as written (while what follows the scale's digits
  // is all zeros) up to the next step of the last digit written.
  if (prefix.fraction) {
    const Wide step = PowerOfTen(bounds.scale - prefix.fraction_digits);
    if (bounds.multiple == 0) {
      return Meet({w, prefix.nonzero_fraction, w + step, true}, allowed, false);
    }
    // Multiples are whole units: no digit past them but 0.
    if (prefix.nonzero_fraction) return false;
    if (prefix.magnitude >= NumberPrefix::kMagnitudeCap) {
      // Past every bound: the next multiple within the step, if the values
      // there are allowed.
      return allowed.hi >= kInf &&
             (bounds.multiple - Remainder(bounds, prefix)) % bounds.multiple < step;
    }
    return MeetMultiple({w, false, w + step, true}, allowed, bounds.multiple);
  }
  // A lone 0: itself, or 0.ddd... for a number.
  if (!prefix.more_digits) return meets({0, false, unit, true});
  // m followed by k more digits (and, for a number, a fraction): the
  // magnitudes from m * 10^k up to (m + 1) * 10^k, for some k. Once they
  // start past every finite bound, they meet the allowed ones only where
  // those have no end (and stop before any product overflows).
  Wide step = unit;
  for (int k = 0; k <= 19; ++k, step *= 10) {
    const Wide lo = Wide{prefix.magnitude} * step;
    if (lo > kPastBounds) return allowed.hi >= kInf;
    if (lo > allowed.hi) return false;
    if (meets({lo, false, lo + step, true})) return true;
  }
  return false;
}

bool Within(const NumberBounds& bounds, const NumberPrefix& prefix) {
  if (!prefix.digits) return false;
  const Range allowed = Magnitudes(bounds, prefix.negative);
  const Wide w = Written(bounds, prefix);
  // Bounds are whole units: every point strictly between w and w + 1
  // compares with them as any other does.
  if (prefix.fraction && prefix.nonzero_fraction) {
    return bounds.multiple == 0 && Meet({w, true, w + 1, true}, allowed, false);
  }
  if (bounds.multiple > 1 && Remainder(bounds, prefix) != 0) return false;
  return Meet({w, false, w, false}, allowed, false);
}

}  // namespace cohost::runtime
