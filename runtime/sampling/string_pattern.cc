#include "runtime/sampling/string_pattern.h"

#include <algorithm>
#include <bitset>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cohost::runtime {
namespace {

// A set of characters: the ASCII ones, and how many of the non-ASCII ones.
struct CharSet {
  enum NonAscii : uint8_t { kNone, kSome, kAll };
  std::bitset<128> ascii;
  NonAscii non_ascii = kNone;

  static CharSet Of(std::string_view chars) {
    CharSet set;
    for (const char c : chars) set.ascii.set(static_cast<uint8_t>(c));
    return set;
  }
  static CharSet Range(uint8_t lo, uint8_t hi) {
    CharSet set;
    for (int c = lo; c <= hi; ++c) set.ascii.set(c);
    return set;
  }
  void Add(const CharSet& other) {
    ascii |= other.ascii;
    non_ascii = std::max(non_ascii, other.non_ascii);
  }
  CharSet Negated() const {
    CharSet set;
    set.ascii = ~ascii;
    set.non_ascii = non_ascii == kNone ? kAll : non_ascii == kAll ? kNone : kSome;
    return set;
  }
};

CharSet Digits() { return CharSet::Range('0', '9'); }
CharSet Word() {
  CharSet set = CharSet::Range('a', 'z');
  set.Add(CharSet::Range('A', 'Z'));
  set.Add(Digits());
  set.Add(CharSet::Of("_"));
  return set;
}
// ECMA's \s holds some non-ASCII characters (U+00A0, U+2028, ...).
CharSet Space() {
  CharSet set = CharSet::Of(" \t\n\v\f\r");
  set.non_ascii = CharSet::kSome;
  return set;
}

// The characters a JSON string carries without \u.
CharSet Writable() {
  CharSet set = CharSet::Range(0x20, 0x7F);
  set.Add(CharSet::Of("\b\f\n\r\t"));
  set.non_ascii = CharSet::kAll;
  return set;
}

// The expression as a tree.
struct Node {
  enum Type : uint8_t { kEmpty, kClass, kConcat, kAlt, kRepeat };
  Type type = kEmpty;
  CharSet set;            // kClass
  std::vector<int> kids;  // kConcat, kAlt; kRepeat: one
  int min = 1, max = 1;   // kRepeat; max -1: no limit
};

constexpr size_t kMaxSource = 4096;  // bytes of the expression
constexpr int kMaxCount = 1000;      // {n,m}
constexpr int kMaxNesting = 64;      // groups within groups
constexpr int kMaxEmitted = 10000;   // nodes written out, counted repeats copied

class Parser {
 public:
  explicit Parser(absl::string_view s) : s_(s) {}

  // The whole expression: its top-level alternatives, each anchored at an
  // end or preceded (followed) there by anything.
  absl::StatusOr<int> Run() {
    if (s_.size() > kMaxSource) {
      return absl::InvalidArgumentError(
          absl::StrCat("pattern: longer than ", kMaxSource, " bytes is not supported"));
    }
    std::vector<int> alternatives;
    while (true) {
      const bool start = Eat('^');
      ASSIGN_OR_RETURN(int body, Concat(0));
      const bool end = Eat('$');
      std::vector<int> parts;
      if (!start) parts.push_back(AnyString());
      parts.push_back(body);
      if (!end) parts.push_back(AnyString());
      alternatives.push_back(Add({Node::kConcat, {}, parts}));
      if (i_ == s_.size()) break;
      if (!Eat('|')) return Error(s_[i_] == ')' ? "an unmatched ')'" : "'^' or '$' inside it");
    }
    return alternatives.size() == 1 ? alternatives[0] : Add({Node::kAlt, {}, alternatives});
  }

  const std::vector<Node>& nodes() const { return nodes_; }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern: ", what, " (at offset ", i_, ") is not supported"));
  }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  int Add(Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size()) - 1;
  }
  int AnyString() {
    Node any;
    any.type = Node::kClass;
    any.set = Writable();
    const int one = Add(std::move(any));
    Node star{Node::kRepeat, {}, {one}, 0, -1};
    return Add(std::move(star));
  }

  absl::StatusOr<int> Alternation(int depth) {
    std::vector<int> alternatives;
    do {
      ASSIGN_OR_RETURN(int one, Concat(depth));
      alternatives.push_back(one);
    } while (Eat('|'));
    return alternatives.size() == 1 ? alternatives[0] : Add({Node::kAlt, {}, alternatives});
  }

  absl::StatusOr<int> Concat(int depth) {
    std::vector<int> parts;
    while (i_ < s_.size() && s_[i_] != '|' && s_[i_] != ')') {
      // A top-level alternative's '$' ends it.
      if (depth == 0 && s_[i_] == '$' && (i_ + 1 == s_.size() || s_[i_ + 1] == '|')) break;
      ASSIGN_OR_RETURN(int atom, Atom(depth));
      ASSIGN_OR_RETURN(atom, Quantified(atom));
      parts.push_back(atom);
    }
    if (parts.size() == 1) return parts[0];
    return Add({Node::kConcat, {}, parts});
  }

  absl::StatusOr<int> Quantified(int atom) {
    int min = 0, max = 0;
    if (Eat('*')) {
      max = -1;
    } else if (Eat('+')) {
      min = 1;
      max = -1;
    } else if (Eat('?')) {
      max = 1;
    } else if (!Braces(&min, &max)) {
      return atom;
    }
    Eat('?');  // lazy: the same strings
    if (i_ < s_.size() && (s_[i_] == '*' || s_[i_] == '+' || s_[i_] == '?' ||
                           (s_[i_] == '{' && Braces(nullptr, nullptr)))) {
      return Error("a quantifier after a quantifier");
    }
    if (min > kMaxCount || max > kMaxCount || (max >= 0 && min > max)) {
      return Error(absl::StrCat("a count above ", kMaxCount, " or a {n,m} with n above m"));
    }
    return Add({Node::kRepeat, {}, {atom}, min, max});
  }

  // {n}, {n,} or {n,m} at i_: read (and passed) where min is given; a '{'
  // that starts none of them is a literal (ECMA's Annex B).
  bool Braces(int* min, int* max) {
    size_t j = i_;
    if (j >= s_.size() || s_[j] != '{') return false;
    const auto number = [&](int* out) {
      const size_t from = j;
      long value = 0;
      while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') {
        value = std::min<long>(value * 10 + (s_[j] - '0'), kMaxCount + 1);
        ++j;
      }
      *out = static_cast<int>(value);
      return j > from;
    };
    ++j;
    int lo = 0, hi = 0;
    if (!number(&lo)) return false;
    hi = lo;
    if (j < s_.size() && s_[j] == ',') {
      ++j;
      if (!number(&hi)) hi = -1;
    }
    if (j >= s_.size() || s_[j] != '}') return false;
    if (min != nullptr) {
      *min = lo;
      *max = hi;
      i_ = j + 1;
    }
    return true;
  }

  absl::StatusOr<int> Atom(int depth) {
    const char c = s_[i_];
    if (c == '(') {
      if (depth >= kMaxNesting) return Error("groups nested this deep");
      ++i_;
      if (Eat('?')) {
        if (Eat('<')) {
          if (i_ < s_.size() && (s_[i_] == '=' || s_[i_] == '!')) return Error("a lookbehind");
          while (i_ < s_.size() && s_[i_] != '>') ++i_;  // a group's name
          if (!Eat('>')) return Error("an unclosed group name");
        } else if (!Eat(':')) {
          return Error("a lookahead");
        }
      }
      ASSIGN_OR_RETURN(int inner, Alternation(depth + 1));
      if (!Eat(')')) return Error("an unclosed '('");
      return inner;
    }
    if (c == '^' || c == '$') return Error("an anchor inside the expression");
    if (c == '*' || c == '+' || c == '?') return Error("a quantifier with nothing to repeat");
    Node node;
    node.type = Node::kClass;
    if (c == '[') {
      ASSIGN_OR_RETURN(node.set, Class());
    } else if (c == '.') {
      ++i_;
      node.set = CharSet::Range(0, 0x7F);
      node.set.ascii.reset('\n');
      node.set.ascii.reset('\r');
      node.set.non_ascii = CharSet::kSome;  // all but U+2028 and U+2029
    } else if (c == '\\') {
      ++i_;
      ASSIGN_OR_RETURN(node.set, Escape(/*in_class=*/false));
    } else {
      if (static_cast<uint8_t>(c) >= 0x80) return Error("a non-ASCII character");
      ++i_;
      node.set = CharSet::Of(std::string_view(&c, 1));
    }
    return Add(std::move(node));
  }

  // After a '\': a set (\d, a literal, ...).
  absl::StatusOr<CharSet> Escape(bool in_class) {
    if (i_ >= s_.size()) return Error("a '\\' at the end");
    const char c = s_[i_++];
    switch (c) {
      case 'd':
        return Digits();
      case 'D':
        return Digits().Negated();
      case 'w':
        return Word();
      case 'W':
        return Word().Negated();
      case 's':
        return Space();
      case 'S':
        return Space().Negated();
      case 't':
        return CharSet::Of("\t");
      case 'n':
        return CharSet::Of("\n");
      case 'r':
        return CharSet::Of("\r");
      case 'f':
        return CharSet::Of("\f");
      case 'v':
        return CharSet::Of("\v");
      case 'b':
        if (in_class) return CharSet::Of("\b");
        return Error("a word boundary");
      case 'B':
        return Error("a word boundary");
      case 'x':
      case 'u': {
        const size_t digits = c == 'x' ? 2 : 4;
        if (i_ + digits > s_.size()) return Error("a short hex escape");
        int value = 0;
        for (size_t k = 0; k < digits; ++k) {
          const char h = s_[i_ + k];
          const int v = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
          if (v < 0) return Error("a hex escape's digits");
          value = value * 16 + v;
        }
        if (value >= 0x80) return Error("a non-ASCII character");
        i_ += digits;
        CharSet set;
        set.ascii.set(value);
        return set;
      }
      default:
        break;
    }
    if (c >= '0' && c <= '9') return Error("a backreference or octal escape");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || static_cast<uint8_t>(c) >= 0x80) {
      return Error("this escape");
    }
    return CharSet::Of(std::string_view(&c, 1));  // an escaped punctuator
  }

  // At '[': the class to its ']'.
  absl::StatusOr<CharSet> Class() {
    ++i_;
    const bool negated = Eat('^');
    CharSet set;
    while (i_ < s_.size() && s_[i_] != ']') {
      ASSIGN_OR_RETURN(CharSet lo, ClassAtom());
      if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
        ++i_;
        ASSIGN_OR_RETURN(CharSet hi, ClassAtom());
        // A range's ends are single characters.
        if (lo.ascii.count() != 1 || hi.ascii.count() != 1 || lo.non_ascii || hi.non_ascii) {
          return Error("a range of a class escape");
        }
        int from = 0, to = 0;
        while (!lo.ascii.test(from)) ++from;
        while (!hi.ascii.test(to)) ++to;
        if (from > to) return Error("a range out of order");
        lo = CharSet::Range(static_cast<uint8_t>(from), static_cast<uint8_t>(to));
      }
      set.Add(lo);
    }
    if (!Eat(']')) return Error("an unclosed '['");
    return negated ? set.Negated() : set;
  }

  absl::StatusOr<CharSet> ClassAtom() {
    const char c = s_[i_];
    if (c == '\\') {
      ++i_;
      return Escape(/*in_class=*/true);
    }
    if (static_cast<uint8_t>(c) >= 0x80) return Error("a non-ASCII character");
    ++i_;
    return CharSet::Of(std::string_view(&c, 1));
  }

  absl::string_view s_;
  size_t i_ = 0;
  std::vector<Node> nodes_;
};

}  // namespace

// Writes a parsed expression out as the automaton's positions and follows.
class PatternBuilder {
 public:
  explicit PatternBuilder(const std::vector<Node>& nodes) : nodes_(nodes) {}

  absl::StatusOr<StringPattern> Run(int root) {
    const Fragment f = Emit(root);
    if (!error_.ok()) return error_;
    p_.follow_[StringPattern::kMaxPositions] = f.first;
    p_.accept_ = f.last | (f.nullable ? StringPattern::kStart : 0);
    p_.FindLengths();
    return p_;
  }

 private:
  struct Fragment {
    bool nullable = true;
    uint64_t first = 0, last = 0;
  };

  // f then g.
  void Then(Fragment& f, const Fragment& g) {
    for (uint64_t bits = f.last; bits != 0; bits &= bits - 1) {
      p_.follow_[__builtin_ctzll(bits)] |= g.first;
    }
    if (f.nullable) f.first |= g.first;
    f.last = g.last | (g.nullable ? f.last : 0);
    f.nullable = f.nullable && g.nullable;
  }

  Fragment Emit(int id) {
    Fragment f;
    if (!error_.ok()) return f;
    if (++emitted_ > kMaxEmitted) {
      error_ = absl::InvalidArgumentError("pattern: more than 10000 parts once counts are copied");
      return f;
    }
    const Node& node = nodes_[id];
    switch (node.type) {
      case Node::kEmpty:
        return f;
      case Node::kClass: {
        if (positions_ == StringPattern::kMaxPositions) {
          error_ = absl::InvalidArgumentError(absl::StrCat(
              "pattern: more than ", StringPattern::kMaxPositions,
              " character positions (counted repeats count each time) is not supported"));
          return f;
        }
        const CharSet writable = Writable();
        if ((node.set.ascii & writable.ascii).none() && node.set.non_ascii != CharSet::kAll) {
          error_ = absl::InvalidArgumentError(
              "pattern: a class that holds no character a JSON string carries without \\u is "
              "not supported");
          return f;
        }
        const uint64_t bit = uint64_t{1} << positions_++;
        for (int c = 0; c < 128; ++c) {
          if (node.set.ascii.test(c)) p_.by_char_[c] |= bit;
        }
        if (node.set.non_ascii == CharSet::kAll) p_.by_char_[StringPattern::kNonAscii] |= bit;
        return {false, bit, bit};
      }
      case Node::kConcat:
        for (const int kid : node.kids) Then(f, Emit(kid));
        return f;
      case Node::kAlt:
        f.nullable = false;
        for (const int kid : node.kids) {
          const Fragment g = Emit(kid);
          f.nullable = f.nullable || g.nullable;
          f.first |= g.first;
          f.last |= g.last;
        }
        return f;
      case Node::kRepeat:
        for (int i = 0; i < node.min; ++i) Then(f, Emit(node.kids[0]));
        if (node.max < 0) {
          Fragment g = Emit(node.kids[0]);
          for (uint64_t bits = g.last; bits != 0; bits &= bits - 1) {
            p_.follow_[__builtin_ctzll(bits)] |= g.first;
          }
          g.nullable = true;
          Then(f, g);
        }
        for (int i = node.min; i < node.max; ++i) {
          Fragment g = Emit(node.kids[0]);
          g.nullable = true;
          Then(f, g);
        }
        return f;
    }
    return f;
  }

  const std::vector<Node>& nodes_;
  StringPattern p_;
  int positions_ = 0;
  int emitted_ = 0;
  absl::Status error_;
};

absl::StatusOr<StringPattern> StringPattern::Compile(std::string_view pattern) {
  Parser parser(absl::string_view(pattern.data(), pattern.size()));
  absl::StatusOr<int> root = parser.Run();
  if (!root.ok()) return root.status();
  return PatternBuilder(parser.nodes()).Run(*root);
}

absl::StatusOr<StringPattern> StringPattern::OfFormat(std::string_view format) {
  // Days by month; February to the 28th (no year is known to be leap).
  static constexpr absl::string_view kDate =
      R"(\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|)"
      R"(02-(0[1-9]|1\d|2[0-8])))";
  static constexpr absl::string_view kTime =
      R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))";
  static constexpr absl::string_view kOctet = R"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))";
  // A host's labels: letters, digits and '-' inside (RFC 1123; their bound
  // of 63 bytes is not held: it would take more positions than there are).
  static constexpr absl::string_view kLabel = R"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)";
  // RFC 3339's duration (appendix A): hours, minutes, seconds after a T.
  static constexpr absl::string_view kDurationTime = R"(T(\d+H(\d+M(\d+S)?)?|\d+M(\d+S)?|\d+S))";
  std::string expression;
  if (format == "date") {
    expression = std::string(kDate);
  } else if (format == "time") {
    expression = std::string(kTime);
  } else if (format == "date-time") {
    expression = absl::StrCat(kDate, "T", kTime);
  } else if (format == "uuid") {
    expression = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  } else if (format == "ipv4") {
    expression = absl::StrCat(kOctet, R"(\.)", kOctet, R"(\.)", kOctet, R"(\.)", kOctet);
  } else if (format == "email") {
    // Dot-atoms (RFC 5321) before the '@'; host labels neither start nor
    // end with '-'.
    expression =
        absl::StrCat(R"([A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@)", kLabel, R"((\.)", kLabel, ")+");
  } else if (format == "hostname") {
    expression = absl::StrCat(kLabel, R"((\.)", kLabel, ")*");
  } else if (format == "duration") {
    // Days, months and years (each with what follows it), then the time;
    // the time alone; or weeks.
    expression = absl::StrCat(R"(P((\d+D|\d+M(\d+D)?|\d+Y(\d+M(\d+D)?)?)()", kDurationTime, ")?|",
                              kDurationTime, R"(|\d+W))");
  } else {
    return absl::InvalidArgumentError(
        "format: only date, time, date-time, duration, uuid, ipv4, email and hostname are "
        "supported");
  }
  return Compile(absl::StrCat("^", expression, "$"));
}

void StringPattern::FindLengths() {
  // at_k: the positions a string of the pattern ends exactly k characters
  // after; at_(k+1) those with a follow in at_k.
  uint64_t at_k = accept_;
  for (uint32_t k = 0; k <= kMaxExactLength; ++k) {
    for (uint64_t bits = at_k; bits != 0; bits &= bits - 1) {
      lengths_[__builtin_ctzll(bits)][k / 64] |= uint64_t{1} << (k % 64);
    }
    uint64_t next = 0;
    for (int p = 0; p <= kMaxPositions; ++p) {
      if ((follow_[p] & at_k) != 0) next |= uint64_t{1} << p;
    }
    at_k = next;
  }
  // Positions that reach a loop (every position reaches an end).
  std::array<uint64_t, kMaxPositions + 1> reach = follow_;
  for (int k = 0; k <= kMaxPositions; ++k) {
    for (int p = 0; p <= kMaxPositions; ++p) {
      if ((reach[p] >> k) & 1) reach[p] |= reach[k];
    }
  }
  uint64_t looping = 0;
  for (int q = 0; q < kMaxPositions; ++q) looping |= ((reach[q] >> q) & 1) << q;
  for (int p = 0; p <= kMaxPositions; ++p) {
    if (((reach[p] | (uint64_t{1} << p)) & looping) != 0) endless_ |= uint64_t{1} << p;
  }
}

bool StringPattern::EndsWithin(uint64_t state, uint32_t least, uint32_t most) const {
  if (most == UINT32_MAX && (state & endless_) != 0) return true;
  // The lengths from `least` to `most` (within the exact ones) as bits.
  const uint32_t top = std::min(most, kMaxExactLength);
  std::array<uint64_t, 4> window{};
  for (uint32_t w = 0; w < 4 && least <= top; ++w) {
    const uint32_t lo = w * 64, hi = lo + 63;
    if (top < lo || least > hi) continue;
    const uint32_t from = std::max(least, lo) - lo, to = std::min(top, hi) - lo;
    const uint64_t upto = to == 63 ? ~uint64_t{0} : (uint64_t{2} << to) - 1;
    window[w] = upto & ~((uint64_t{1} << from) - 1);
  }
  for (uint64_t bits = state; bits != 0; bits &= bits - 1) {
    const auto& lengths = lengths_[__builtin_ctzll(bits)];
    for (int w = 0; w < 4; ++w) {
      if ((lengths[w] & window[w]) != 0) return true;
    }
  }
  return false;
}

bool StringPattern::Matches(std::string_view text) const {
  uint64_t state = kStart;
  for (const char ch : text) {
    const auto byte = static_cast<uint8_t>(ch);
    if (byte >= 0x80 && byte < 0xC0) continue;  // a continuation byte
    state = Step(state, byte < 0x80 ? byte : kNonAscii);
    if (state == 0) return false;
  }
  return Accepts(state);
}

}  // namespace cohost::runtime
