#include "runtime/sampling/json_grammar.h"

#include <algorithm>
#include <limits>
#include <string>

namespace cohost::runtime {
namespace {

using Kind = SchemaNode::Kind;

constexpr std::string_view kLiterals[] = {"true", "false", "null"};
constexpr std::string_view kShortEscapes = "\"\\/bfnrt";

// The character a short escape's letter stands for; none (a pattern takes
// no character 0) for any other byte.
uint32_t Unescaped(uint8_t letter) {
  switch (letter) {
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case '"':
    case '\\':
    case '/':
      return letter;
    default:
      return 0;
  }
}

bool IsWhitespace(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
bool IsDigit(uint8_t b) { return b >= '0' && b <= '9'; }
bool IsHex(uint8_t b) { return IsDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

// How a value starting with `b` starts; kStarts if none does.
SchemaNode::Start StartOf(uint8_t b) {
  switch (b) {
    case '{':
      return SchemaNode::kStartObject;
    case '[':
      return SchemaNode::kStartArray;
    case '"':
      return SchemaNode::kStartString;
    case 't':
    case 'f':
      return SchemaNode::kStartBool;
    case 'n':
      return SchemaNode::kStartNull;
    default:
      return b == '-' || IsDigit(b) ? SchemaNode::kStartNumber : SchemaNode::kStarts;
  }
}

bool LimitsLength(const SchemaNode& n) {
  return n.kind == Kind::kString &&
         (n.min_length > 0 || n.max_length != std::numeric_limits<uint32_t>::max());
}
bool LimitsItems(const SchemaNode& n) {
  return n.min_items > 0 || n.max_items != std::numeric_limits<uint32_t>::max();
}
uint64_t FirstBits(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

}  // namespace

bool JsonGrammar::FeedAll(const JsonSchema& schema, std::string_view bytes) {
  for (const char c : bytes) {
    if (!Feed(schema, static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool JsonGrammar::Complete() const {
  if (head_.mode == Mode::kDone) return true;
  // A number at the top ends where the document does.
  return head_.mode == Mode::kNumber && head_.depth == 0 && head_.whole;
}

JsonGrammar JsonGrammar::MaskKey(const JsonSchema& schema, uint32_t lookahead) const {
  JsonGrammar key = *this;
  // A pattern's lengths are exact: every count is its own state.
  if (head_.mode != Mode::kString || !head_.counted || head_.patterned) return key;
  const SchemaNode& node = schema.node(head_.value);
  // A token adds at most `lookahead` characters (one byte at least each).
  const bool past_min = head_.chars >= node.min_length;
  const bool far_from_min = past_min || node.min_length - head_.chars > lookahead;
  const bool far_from_max = node.max_length - head_.chars > lookahead;
  if (far_from_min && far_from_max) {
    // A counted string matches no options, so `pos` is otherwise 0 here.
    key.head_.chars = 0;
    key.head_.pos = past_min ? 0xFFFF : 0xFFFE;
  }
  return key;
}

bool JsonGrammar::Feed(const JsonSchema& schema, uint8_t byte) {
  switch (head_.mode) {
    case Mode::kString:
      return FeedString(schema, byte);
    case Mode::kNumber:
      return FeedNumber(schema, byte);
    case Mode::kLiteral:
      return FeedLiteral(schema, byte);
    case Mode::kDone:
      // Nothing follows the document, not even whitespace: its end is the
      // end of generation (a model at a temperature may wander on in blank lines).
      return false;
    default:
      break;
  }
  if (IsWhitespace(byte)) return FeedWhitespace(byte);
  switch (head_.mode) {
    case Mode::kValue:
      return FeedValueStart(schema, byte);
    case Mode::kValueOrEnd:
      if (byte == ']') return Close(schema, /*object=*/false);
      return schema.node(Top().node).max_items > 0 && FeedValueStart(schema, byte);
    case Mode::kKeyOrEnd:
      if (byte == '}') return Close(schema, /*object=*/true);
      [[fallthrough]];
    case Mode::kKey: {
      if (byte != '"' || !KeyLeft(schema)) return false;
      const SchemaNode& object = schema.node(Top().node);
      head_.mode = Mode::kString;
      head_.sub = kPlain;
      head_.key = true;
      head_.counted = false;
      head_.patterned = false;
      head_.pos = 0;
      head_.chars = 0;
      // Where other keys are allowed, every name is matched, so that one
      // written already (or whose value cannot fit) is refused at its close
      // rather than passing as another key, with any value.
      head_.candidates = object.additional ? FirstBits(object.names.size()) : KeyNames(schema);
      EndWhitespace();
      return true;
    }
    case Mode::kColon:
      if (byte != ':') return false;
      head_.mode = Mode::kValue;
      EndWhitespace();
      return true;
    case Mode::kObjectNext:
      if (byte == '}') return Close(schema, /*object=*/true);
      if (byte != ',' || !KeyLeft(schema)) return false;
      head_.mode = Mode::kKey;
      EndWhitespace();
      return true;
    case Mode::kArrayNext: {
      if (byte == ']') return Close(schema, /*object=*/false);
      const SchemaNode& array = schema.node(Top().node);
      if (byte != ',' || (LimitsItems(array) && Top().count >= array.max_items) ||
          !Fits(schema, array.items, head_.depth)) {
        return false;
      }
      head_.mode = Mode::kValue;
      head_.value = array.items;
      EndWhitespace();
      return true;
    }
    default:
      return false;
  }
}

bool JsonGrammar::FeedWhitespace(uint8_t byte) {
  if (byte == '\n') {
    if (head_.newlines >= kMaxJsonNewlines) return false;
    ++head_.newlines;
    head_.whitespace = 0;  // an indent starts
    return true;
  }
  if (head_.whitespace >= kMaxJsonIndent) return false;
  ++head_.whitespace;
  return true;
}

bool JsonGrammar::Fits(const JsonSchema& schema, SchemaNodeId id, int32_t depth) const {
  const uint16_t need = schema.node(schema.Resolve(id)).min_depth;
  return need != SchemaNode::kUnbounded && depth + need <= kMaxJsonDepth;
}

uint64_t JsonGrammar::Fitting(const JsonSchema& schema, const SchemaNode& object) const {
  uint64_t fitting = 0;
  for (size_t i = 0; i < object.names.size(); ++i) {
    if (Fits(schema, object.values[i], head_.depth)) fitting |= uint64_t{1} << i;
  }
  return fitting;
}

uint64_t JsonGrammar::KeyNames(const JsonSchema& schema) const {
  const SchemaNode& object = schema.node(Top().node);
  return FirstBits(object.names.size()) & ~Top().seen & Fitting(schema, object);
}

bool JsonGrammar::KeyLeft(const JsonSchema& schema) const {
  return schema.node(Top().node).additional || KeyNames(schema) != 0;
}

bool JsonGrammar::FeedValueStart(const JsonSchema& schema, uint8_t byte) {
  const SchemaNode::Start start = StartOf(byte);
  if (start == SchemaNode::kStarts) return false;
  SchemaNodeId id = schema.Resolve(head_.value);
  if (schema.node(id).kind == Kind::kUnion) id = schema.node(id).alternatives[start];
  if (id == SchemaNode::kNone) return false;
  id = schema.Resolve(id);
  // No value starts that cannot close within the depth limit.
  if (!Fits(schema, id, head_.depth)) return false;
  const SchemaNode& node = schema.node(id);
  if (node.kind == Kind::kAny) {
    if (start == SchemaNode::kStartObject) return Open(schema, JsonSchema::kAnyObject);
    if (start == SchemaNode::kStartArray) return Open(schema, JsonSchema::kAnyArray);
  }
  switch (start) {
    case SchemaNode::kStartObject:
      return node.kind == Kind::kObject && Open(schema, id);
    case SchemaNode::kStartArray:
      return node.kind == Kind::kArray && Open(schema, id);
    case SchemaNode::kStartString:
      if (node.kind != Kind::kString && node.kind != Kind::kAny) return false;
      head_.mode = Mode::kString;
      head_.sub = kPlain;
      head_.key = false;
      head_.counted = LimitsLength(node);
      head_.value = id;
      head_.pos = 0;
      head_.chars = 0;
      head_.patterned = node.pattern != SchemaNode::kNoPattern;
      head_.candidates = head_.patterned ? StringPattern::kStart : FirstBits(node.options.size());
      // A tag offers the variants that fit where its object is.
      if (head_.depth > 0 && !schema.node(Top().node).variants.empty()) {
        const std::vector<SchemaNodeId>& variants = schema.node(Top().node).variants;
        for (size_t k = 0; k < variants.size(); ++k) {
          if (!Fits(schema, variants[k], head_.depth - 1)) head_.candidates &= ~(uint64_t{1} << k);
        }
      }
      break;
    case SchemaNode::kStartNumber:
      if (node.kind != Kind::kNumber && node.kind != Kind::kInteger && node.kind != Kind::kAny) {
        return false;
      }
      if (!StartNumber(node, id, byte)) return false;
      break;
    default: {
      const bool boolean = start == SchemaNode::kStartBool;
      if (node.kind != (boolean ? Kind::kBoolean : Kind::kNull) && node.kind != Kind::kAny) {
        return false;
      }
      // A boolean's enum: true or false alone.
      if (boolean && !node.options.empty() &&
          std::none_of(node.options.begin(), node.options.end(),
                       [&](const std::string& o) { return static_cast<uint8_t>(o[0]) == byte; })) {
        return false;
      }
      head_.mode = Mode::kLiteral;
      head_.literal = byte == 't' ? 0 : byte == 'f' ? 1 : 2;
      head_.sub = 1;
      break;
    }
  }
  EndWhitespace();
  return true;
}

bool JsonGrammar::FeedString(const JsonSchema& schema, uint8_t byte) {
  const bool between_characters = head_.utf8_left == 0 && head_.sub == kPlain;
  if (between_characters && byte == '"') return CloseString(schema);
  if (head_.patterned) {
    const SchemaNode& value = schema.node(head_.value);
    return FeedPatterned(value, schema.pattern(value.pattern), byte);
  }
  // Free text (no names or options left to match, no length to keep): the
  // bytes alone, the mask's walk's common case.
  if (head_.candidates == 0 && !head_.counted && !(head_.key && byte == '\\')) {
    return FeedStringByte(byte);
  }
  // A key is matched against the object's names, a string value against its
  // options; what a prefix matches must stay non-empty unless any key may
  // come (an enum's candidates never run out: the byte is refused first).
  const SchemaNode& node = schema.node(head_.key ? Top().node : head_.value);
  const std::vector<std::string>& names = head_.key ? node.names : node.options;
  uint64_t narrowed = 0;
  if (head_.candidates != 0) {
    for (uint64_t bits = head_.candidates; bits != 0; bits &= bits - 1) {
      const std::string& name = names[__builtin_ctzll(bits)];
      if (name.size() > head_.pos && static_cast<uint8_t>(name[head_.pos]) == byte) {
        narrowed |= bits & -bits;
      }
    }
    if (narrowed == 0 && !(head_.key && node.additional)) return false;
  }
  // Another key of an object with names is written without escapes: one
  // could spell a name ("\u0069d" for "id") and pass as another key. Nor
  // may it leave the names inside an escape a name has ("a\"b" as a\u0022b).
  if (head_.key && narrowed == 0 && !node.names.empty() && (byte == '\\' || head_.sub != kPlain)) {
    return false;
  }
  if (head_.counted && between_characters && head_.chars >= node.max_length) return false;
  if (!FeedStringByte(byte)) return false;
  if (head_.candidates != 0) ++head_.pos;
  head_.candidates = narrowed;
  if (head_.counted && between_characters) {
    ++head_.chars;
    // Without a maximum, nothing is counted once the minimum is met: the
    // states of the rest of the string are equal (and share a cached mask).
    if (node.max_length == std::numeric_limits<uint32_t>::max() && head_.chars >= node.min_length) {
      head_.counted = false;
      head_.chars = 0;
    }
  }
  return true;
}

bool JsonGrammar::FeedPatterned(const SchemaNode& node, const StringPattern& pattern,
                                uint8_t byte) {
  if (head_.utf8_left > 0) return FeedStringByte(byte);  // the rest of a non-ASCII character
  // The pattern's state after character `c`, where a string of the pattern
  // still ends within the length limits.
  const auto after = [&](uint32_t c) -> uint64_t {
    if (c == 0) return 0;
    const uint64_t next = pattern.Step(head_.candidates, c);
    if (next == 0 || !head_.counted) return next;
    const uint32_t chars = head_.chars + 1;
    if (chars > node.max_length) return 0;
    const uint32_t least = node.min_length > chars ? node.min_length - chars : 0;
    const uint32_t most = node.max_length == std::numeric_limits<uint32_t>::max()
                              ? node.max_length
                              : node.max_length - chars;
    return pattern.EndsWithin(next, least, most) ? next : 0;
  };
  uint64_t next = 0;
  if (head_.sub == kEscape) {
    next = after(Unescaped(byte));  // \u escapes are not written here
  } else if (byte == '\\') {
    // Some escape goes on; its letter says which.
    for (const char e : kShortEscapes) next = next != 0 ? next : after(Unescaped(e));
    if (next == 0) return false;
    head_.sub = kEscape;
    return true;
  } else {
    next = after(byte < 0x80 ? byte : StringPattern::kNonAscii);
  }
  if (next == 0 || !FeedStringByte(byte)) return false;
  head_.candidates = next;
  if (head_.counted) {
    ++head_.chars;
    if (node.max_length == std::numeric_limits<uint32_t>::max() && head_.chars >= node.min_length) {
      head_.counted = false;
      head_.chars = 0;
    }
  }
  return true;
}

bool JsonGrammar::CloseString(const JsonSchema& schema) {
  if (head_.key) {
    const Frame& top = Top();
    const SchemaNode& object = schema.node(top.node);
    SchemaNodeId value = JsonSchema::kAnyValue;
    int property = -1;
    for (uint64_t bits = head_.candidates; bits != 0; bits &= bits - 1) {
      const int i = __builtin_ctzll(bits);
      if (object.names[i].size() == head_.pos) property = i;
    }
    if (property >= 0) {
      // Each name once, and only where its value can close in time.
      if (((Top().seen >> property) & 1) != 0 ||
          !Fits(schema, object.values[property], head_.depth)) {
        return false;
      }
      value = object.values[property];
      Top().seen |= uint64_t{1} << property;
    } else if (!object.additional) {
      return false;
    }
    head_.mode = Mode::kColon;
    head_.value = value;
    EndWhitespace();
    head_.candidates = 0;
    head_.pos = 0;
    return true;
  }
  const SchemaNode& node = schema.node(head_.value);
  if (head_.patterned && !schema.pattern(node.pattern).Accepts(head_.candidates)) return false;
  int option = -1;
  for (uint64_t bits = head_.candidates; bits != 0 && !node.options.empty(); bits &= bits - 1) {
    if (node.options[__builtin_ctzll(bits)].size() == head_.pos) option = __builtin_ctzll(bits);
  }
  if (!node.options.empty() && option < 0) return false;
  if (head_.counted && head_.chars < node.min_length) return false;
  if (option >= 0 && head_.depth > 0 && !schema.node(Top().node).variants.empty()) {
    // A tag: the object is its variant from here on, the tag written.
    const SchemaNode& tagged = schema.node(Top().node);
    const SchemaNodeId variant = tagged.variants[option];
    const std::vector<std::string>& names = schema.node(variant).names;
    const auto tag = std::find(names.begin(), names.end(), tagged.names[0]) - names.begin();
    Top().node = variant;
    Top().seen = uint64_t{1} << tag;
  }
  head_.candidates = 0;
  head_.pos = 0;
  head_.chars = 0;
  head_.counted = false;
  head_.patterned = false;
  ValueDone(schema);
  return true;
}

bool JsonGrammar::FeedStringByte(uint8_t byte) {
  if (head_.utf8_left > 0) {
    if (byte < head_.utf8_lo || byte > head_.utf8_hi) return false;
    --head_.utf8_left;
    head_.utf8_lo = 0x80;
    head_.utf8_hi = 0xBF;
    return true;
  }
  // The part after this byte: `next` where it is a hex digit (hex_then) or
  // `want` (byte_then); refused otherwise.
  const auto hex_then = [&](StringPart next) {
    if (!IsHex(byte)) return false;
    head_.sub = next;
    return true;
  };
  const auto byte_then = [&](char want, StringPart next) {
    if (byte != static_cast<uint8_t>(want)) return false;
    head_.sub = next;
    return true;
  };
  switch (head_.sub) {
    case kEscape:
      if (byte == 'u') {
        head_.sub = kHex1;
        return true;
      }
      for (const char c : kShortEscapes) {
        if (byte == static_cast<uint8_t>(c)) {
          head_.sub = kPlain;
          return true;
        }
      }
      return false;
    case kHex1:
      return hex_then((byte | 0x20) == 'd' ? kHexAfterD : kHex2);
    case kHexAfterD:
      // 0-7: a character; 8-B: a high surrogate; C-F: a low one with no
      // high one before it.
      if (byte <= '7') return hex_then(kHex3);
      if (byte <= '9' || (byte | 0x20) <= 'b') return hex_then(kHighHex3);
      return false;
    case kHex2:
      return hex_then(kHex3);
    case kHex3:
      return hex_then(kHex4);
    case kHex4:
      return hex_then(kPlain);
    case kHighHex3:
      return hex_then(kHighHex4);
    case kHighHex4:
      return hex_then(kLowEscape);
    case kLowEscape:
      return byte_then('\\', kLowU);
    case kLowU:
      return byte_then('u', kLowHex1);
    case kLowHex1:
      return (byte | 0x20) == 'd' && hex_then(kLowHex2);
    case kLowHex2:
      return (byte | 0x20) >= 'c' && hex_then(kHex3);
    default:
      break;
  }
  if (byte == '\\') {
    head_.sub = kEscape;
    return true;
  }
  if (byte < 0x20) return false;  // control characters are escaped in JSON
  if (byte < 0x80) return true;
  // The lead byte of a UTF-8 sequence (RFC 3629's table).
  if (byte >= 0xC2 && byte <= 0xDF) {
    head_.utf8_left = 1;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    head_.utf8_left = 2;
    if (byte == 0xE0) head_.utf8_lo = 0xA0;  // not overlong
    if (byte == 0xED) head_.utf8_hi = 0x9F;  // not a surrogate
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    head_.utf8_left = 3;
    if (byte == 0xF0) head_.utf8_lo = 0x90;  // not overlong
    if (byte == 0xF4) head_.utf8_hi = 0x8F;  // not past U+10FFFF
  } else {
    return false;
  }
  return true;
}

bool JsonGrammar::StartNumber(const SchemaNode& node, SchemaNodeId id, uint8_t byte) {
  const Head before = head_;
  head_.mode = Mode::kNumber;
  head_.value = id;
  head_.integer = node.kind == Kind::kInteger;
  head_.candidates = 0;
  head_.pos = 0;
  head_.chars = 0;
  head_.remainder = 0;
  bool goes_on = true;
  if (!node.options.empty()) {
    head_.candidates = FirstBits(node.options.size());
    goes_on = NarrowOptions(node, byte);
  } else {
    // As if after a '-': a digit is the first of the integer part.
    head_.sub = kMinus;
    head_.negative = byte == '-' && node.bounds.any();
    if (byte != '-') goes_on = NumberGoesOn(byte, node.bounds);
  }
  if (goes_on && NumberHolds(node)) return true;
  head_ = before;
  return false;
}

bool JsonGrammar::NarrowOptions(const SchemaNode& node, uint8_t byte) {
  uint64_t narrowed = 0;
  for (uint64_t bits = head_.candidates; bits != 0; bits &= bits - 1) {
    const std::string& option = node.options[__builtin_ctzll(bits)];
    if (option.size() > head_.pos && static_cast<uint8_t>(option[head_.pos]) == byte) {
      narrowed |= bits & -bits;
    }
  }
  if (narrowed == 0) return false;
  head_.candidates = narrowed;
  ++head_.pos;
  return true;
}

bool JsonGrammar::NumberGoesOn(uint8_t byte, const NumberBounds& bounds) {
  const bool bounded = bounds.any();
  const int scale = bounds.scale;
  const bool digit = IsDigit(byte);
  const bool fraction = !head_.integer && byte == '.';
  // A bounded number is written without an exponent.
  const bool exponent = !head_.integer && !bounded && (byte == 'e' || byte == 'E');
  // Only a bounded number's digits are kept: the states of others' stay
  // equal (and share a cached mask).
  const auto integer_digit = [&] {
    if (!bounded) return;
    head_.candidates = NumberPrefix::Grown(head_.candidates, byte - '0');
    if (bounds.multiple > 1) {
      head_.remainder = NumberPrefix::Grown(head_.remainder, byte - '0', bounds.multiple);
    }
  };
  switch (head_.sub) {
    case kMinus:
      if (!digit) return false;
      head_.sub = byte == '0' ? kZero : kInt;
      integer_digit();
      return true;
    case kInt:
      if (digit) {
        integer_digit();
        return true;
      }
      [[fallthrough]];
    case kZero:
      if (fraction) {
        head_.sub = kDot;
        return true;
      }
      if (exponent) {
        head_.sub = kExp;
        return true;
      }
      return false;
    case kDot:
    case kFrac:
      if (digit) {
        head_.sub = kFrac;
        // The bounds' units' digits are kept; past them, whether any is not 0.
        if (bounded && head_.pos < scale) {
          head_.chars = head_.chars * 10 + (byte - '0');
          ++head_.pos;
        } else {
          head_.nonzero_fraction = head_.nonzero_fraction || (bounded && byte != '0');
        }
        return true;
      }
      if (head_.sub == kFrac && exponent) {
        head_.sub = kExp;
        return true;
      }
      return false;
    case kExp:
      if (byte == '+' || byte == '-') {
        head_.sub = kExpSign;
        return true;
      }
      [[fallthrough]];
    case kExpSign:
      if (!digit) return false;
      head_.sub = kExpDigits;
      return true;
    case kExpDigits:
      return digit;
    default:
      return false;
  }
}

bool JsonGrammar::NumberHolds(const SchemaNode& node) {
  if (!node.options.empty()) {
    head_.whole = false;
    for (uint64_t bits = head_.candidates; bits != 0; bits &= bits - 1) {
      head_.whole = head_.whole || node.options[__builtin_ctzll(bits)].size() == head_.pos;
    }
    return true;
  }
  const bool end_part =
      head_.sub == kZero || head_.sub == kInt || head_.sub == kFrac || head_.sub == kExpDigits;
  if (!node.bounds.any()) {
    head_.whole = end_part;
    return true;
  }
  NumberPrefix prefix;
  prefix.negative = head_.negative;
  prefix.digits = head_.sub != kMinus;
  prefix.more_digits = head_.sub == kInt;
  prefix.fraction = head_.sub == kDot || head_.sub == kFrac;
  prefix.fraction_digits = static_cast<uint8_t>(head_.pos);
  prefix.fraction_value = head_.chars;
  prefix.nonzero_fraction = head_.nonzero_fraction;
  prefix.magnitude = head_.candidates;
  prefix.remainder = head_.remainder;
  if (!CanReach(node.bounds, head_.integer, prefix)) return false;
  head_.whole = end_part && Within(node.bounds, prefix);
  return true;
}

bool JsonGrammar::FeedNumber(const JsonSchema& schema, uint8_t byte) {
  const SchemaNode& node = schema.node(head_.value);
  const Head before = head_;
  const bool goes_on =
      node.options.empty() ? NumberGoesOn(byte, node.bounds) : NarrowOptions(node, byte);
  if (goes_on) {
    if (NumberHolds(node)) return true;
    head_ = before;
    return false;
  }
  head_ = before;
  // A number ends at the first byte that cannot continue it, where it is
  // whole, and that byte belongs to what follows.
  if (!head_.whole) return false;
  const JsonGrammar saved = *this;
  ValueDone(schema);
  if (Feed(schema, byte)) return true;
  *this = saved;
  return false;
}

bool JsonGrammar::FeedLiteral(const JsonSchema& schema, uint8_t byte) {
  const std::string_view literal = kLiterals[head_.literal];
  if (byte != static_cast<uint8_t>(literal[head_.sub])) return false;
  if (++head_.sub == literal.size()) ValueDone(schema);
  return true;
}

bool JsonGrammar::Open(const JsonSchema& schema, SchemaNodeId node) {
  if (head_.depth >= kMaxJsonDepth) return false;
  frames_[head_.depth] = Frame{0, 0, node};
  ++head_.depth;
  const SchemaNode& n = schema.node(node);
  head_.mode = n.kind == Kind::kObject ? Mode::kKeyOrEnd : Mode::kValueOrEnd;
  head_.value = n.kind == Kind::kArray ? n.items : 0;  // an object's comes with its key
  EndWhitespace();
  return true;
}

bool JsonGrammar::Close(const JsonSchema& schema, bool object) {
  if (head_.depth == 0) return false;
  const SchemaNode& node = schema.node(Top().node);
  if ((node.kind == Kind::kObject) != object) return false;
  if (object && (node.required & ~Top().seen) != 0) return false;
  if (!object && LimitsItems(node) && Top().count < node.min_items) return false;
  --head_.depth;
  ValueDone(schema);
  return true;
}

void JsonGrammar::ValueDone(const JsonSchema& schema) {
  // Nothing of the value just read stays: states that differ only in what
  // came before are equal (and share a cached mask).
  EndWhitespace();
  head_.sub = 0;
  head_.literal = 0;
  head_.key = false;
  head_.integer = false;
  head_.negative = false;
  head_.nonzero_fraction = false;
  head_.whole = false;
  head_.candidates = 0;
  head_.pos = 0;
  head_.chars = 0;
  head_.remainder = 0;
  head_.value = 0;
  if (head_.depth == 0) {
    head_.mode = Mode::kDone;
    return;
  }
  const SchemaNode& node = schema.node(Top().node);
  if (node.kind == Kind::kObject) {
    head_.mode = Mode::kObjectNext;
    return;
  }
  head_.mode = Mode::kArrayNext;
  head_.value = node.items;
  // Counted up to the maximum, or only up to the minimum where there is none
  // (states past it are equal).
  if (LimitsItems(node) &&
      (node.max_items != std::numeric_limits<uint32_t>::max() || Top().count < node.min_items)) {
    ++Top().count;
  }
}

}  // namespace cohost::runtime
