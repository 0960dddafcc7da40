#include "runtime/sampling/json_number.h"

#include <algorithm>

namespace cohost::runtime {
namespace {

using Wide = __int128;
constexpr Wide kInf = Wide{1} << 100;  // beyond every bound and magnitude

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

}  // namespace

bool NumberBounds::Satisfiable(bool integer) const {
  return Meet(Values(*this), {-kInf, false, kInf, false}, integer);
}

uint64_t NumberPrefix::Grown(uint64_t magnitude, int digit) {
  const Wide grown = Wide{magnitude} * 10 + digit;
  return grown >= kMagnitudeCap ? kMagnitudeCap : static_cast<uint64_t>(grown);
}

bool CanReach(const NumberBounds& bounds, bool integer, const NumberPrefix& prefix) {
  const Range allowed = Magnitudes(bounds, prefix.negative);
  if (!prefix.digits) return Meet({0, false, kInf, false}, allowed, integer);
  const Wide m = prefix.magnitude;
  // m.ddd...: m itself (while the fraction is all zeros) up to m + 1.
  if (prefix.fraction) return Meet({m, prefix.nonzero_fraction, m + 1, true}, allowed, false);
  // A lone 0: itself, or 0.ddd... for a number.
  if (!prefix.more_digits) return Meet({0, false, 1, true}, allowed, integer);
  // m followed by k more digits (and, for a number, a fraction): the
  // magnitudes from m * 10^k up to (m + 1) * 10^k, for some k.
  // (Every bound is below 10^19 <= m * 10^19, and m * 10^19 fits.)
  Wide scale = 1;
  for (int k = 0; k <= 19 && m * scale <= allowed.hi; ++k, scale *= 10) {
    if (Meet({m * scale, false, (m + 1) * scale, true}, allowed, integer)) return true;
  }
  return false;
}

bool Within(const NumberBounds& bounds, const NumberPrefix& prefix) {
  if (!prefix.digits) return false;
  const Range allowed = Magnitudes(bounds, prefix.negative);
  const Wide m = prefix.magnitude;
  // Bounds are integers: every point strictly between m and m + 1 compares
  // with them as any other does.
  if (prefix.fraction && prefix.nonzero_fraction) {
    return Meet({m, true, m + 1, true}, allowed, false);
  }
  return Meet({m, false, m, false}, allowed, false);
}

}  // namespace cohost::runtime
