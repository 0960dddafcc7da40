#include "runtime/sampling/json_grammar.h"

namespace cohost::runtime {
namespace {

constexpr std::string_view kLiterals[] = {"true", "false", "null"};

bool IsWhitespace(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
bool IsDigit(uint8_t b) { return b >= '0' && b <= '9'; }
bool IsHex(uint8_t b) { return IsDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

}  // namespace

bool JsonGrammar::FeedAll(std::string_view bytes) {
  for (const char c : bytes) {
    if (!Feed(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool JsonGrammar::Feed(uint8_t byte) {
  switch (mode_) {
    case Mode::kString:
      return FeedString(byte);
    case Mode::kNumber:
      return FeedNumber(byte);
    case Mode::kLiteral:
      return FeedLiteral(byte);
    default:
      break;
  }
  // Nothing follows the document, not even whitespace: its end is the end
  // of generation (a model at a temperature may wander on in blank lines).
  if (mode_ == Mode::kDone) return false;
  if (IsWhitespace(byte)) return FeedWhitespace(byte);
  switch (mode_) {
    case Mode::kStart:
      return byte == '{' && Open(/*object=*/true);
    case Mode::kValue:
      return FeedValueStart(byte);
    case Mode::kValueOrEnd:
      return byte == ']' ? Close(/*object=*/false) : FeedValueStart(byte);
    case Mode::kKeyOrEnd:
      if (byte == '}') return Close(/*object=*/true);
      [[fallthrough]];
    case Mode::kKey:
      if (byte != '"') return false;
      mode_ = Mode::kString;
      sub_ = kPlain;
      key_ = true;
      whitespace_ = 0;
      return true;
    case Mode::kColon:
      if (byte != ':') return false;
      mode_ = Mode::kValue;
      whitespace_ = 0;
      return true;
    case Mode::kObjectNext:
    case Mode::kArrayNext: {
      const bool object = mode_ == Mode::kObjectNext;
      if (byte == static_cast<uint8_t>(object ? '}' : ']')) return Close(object);
      if (byte != ',') return false;
      mode_ = object ? Mode::kKey : Mode::kValue;
      whitespace_ = 0;
      return true;
    }
    default:
      return false;
  }
}

bool JsonGrammar::FeedWhitespace(uint8_t /*byte*/) {
  if (whitespace_ >= kMaxJsonWhitespaceRun) return false;
  ++whitespace_;
  return true;
}

bool JsonGrammar::FeedValueStart(uint8_t byte) {
  if (byte == '{' || byte == '[') return Open(byte == '{');
  whitespace_ = 0;
  if (byte == '"') {
    mode_ = Mode::kString;
    sub_ = kPlain;
    key_ = false;
    return true;
  }
  if (byte == '-' || IsDigit(byte)) {
    mode_ = Mode::kNumber;
    sub_ = byte == '-' ? kMinus : byte == '0' ? kZero : kInt;
    return true;
  }
  for (uint8_t i = 0; i < 3; ++i) {
    if (byte == static_cast<uint8_t>(kLiterals[i][0])) {
      mode_ = Mode::kLiteral;
      literal_ = i;
      sub_ = 1;
      return true;
    }
  }
  return false;
}

bool JsonGrammar::FeedString(uint8_t byte) {
  if (utf8_left_ > 0) {
    if (byte < utf8_lo_ || byte > utf8_hi_) return false;
    --utf8_left_;
    utf8_lo_ = 0x80;
    utf8_hi_ = 0xBF;
    return true;
  }
  switch (sub_) {
    case kEscape:
      if (byte == 'u') {
        sub_ = kHex1;
        return true;
      }
      for (const char c : std::string_view("\"\\/bfnrt")) {
        if (byte == static_cast<uint8_t>(c)) {
          sub_ = kPlain;
          return true;
        }
      }
      return false;
    case kHex1:
    case kHex2:
    case kHex3:
    case kHex4:
      if (!IsHex(byte)) return false;
      sub_ = static_cast<uint8_t>(sub_ == kHex4 ? kPlain : sub_ + 1);
      return true;
    default:
      break;
  }
  if (byte == '"') {
    if (key_) {
      mode_ = Mode::kColon;
      whitespace_ = 0;
    } else {
      ValueDone();
    }
    return true;
  }
  if (byte == '\\') {
    sub_ = kEscape;
    return true;
  }
  if (byte < 0x20) return false;  // control characters are escaped in JSON
  if (byte < 0x80) return true;
  // The lead byte of a UTF-8 sequence (RFC 3629's table).
  if (byte >= 0xC2 && byte <= 0xDF) {
    utf8_left_ = 1;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    utf8_left_ = 2;
    if (byte == 0xE0) utf8_lo_ = 0xA0;  // not overlong
    if (byte == 0xED) utf8_hi_ = 0x9F;  // not a surrogate
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    utf8_left_ = 3;
    if (byte == 0xF0) utf8_lo_ = 0x90;  // not overlong
    if (byte == 0xF4) utf8_hi_ = 0x8F;  // not past U+10FFFF
  } else {
    return false;
  }
  return true;
}

bool JsonGrammar::FeedNumber(uint8_t byte) {
  const bool digit = IsDigit(byte);
  switch (sub_) {
    case kMinus:
      if (!digit) return false;
      sub_ = byte == '0' ? kZero : kInt;
      return true;
    case kInt:
      if (digit) return true;
      [[fallthrough]];
    case kZero:
      if (byte == '.') {
        sub_ = kDot;
        return true;
      }
      if (byte == 'e' || byte == 'E') {
        sub_ = kExp;
        return true;
      }
      break;
    case kDot:
      if (!digit) return false;
      sub_ = kFrac;
      return true;
    case kFrac:
      if (digit) return true;
      if (byte == 'e' || byte == 'E') {
        sub_ = kExp;
        return true;
      }
      break;
    case kExp:
      if (byte == '+' || byte == '-') {
        sub_ = kExpSign;
        return true;
      }
      [[fallthrough]];
    case kExpSign:
      if (!digit) return false;
      sub_ = kExpDigits;
      return true;
    case kExpDigits:
      if (digit) return true;
      break;
    default:
      return false;
  }
  // A number ends at the first byte that cannot continue it (every part that
  // reaches here is a whole number), and that byte belongs to what follows.
  const JsonGrammar before = *this;
  ValueDone();
  if (Feed(byte)) return true;
  *this = before;
  return false;
}

bool JsonGrammar::FeedLiteral(uint8_t byte) {
  const std::string_view literal = kLiterals[literal_];
  if (byte != static_cast<uint8_t>(literal[sub_])) return false;
  if (++sub_ == literal.size()) ValueDone();
  return true;
}

bool JsonGrammar::Open(bool object) {
  if (depth_ >= kMaxJsonDepth) return false;
  const uint64_t bit = uint64_t{1} << depth_;
  objects_ = object ? objects_ | bit : objects_ & ~bit;
  ++depth_;
  mode_ = object ? Mode::kKeyOrEnd : Mode::kValueOrEnd;
  whitespace_ = 0;
  return true;
}

bool JsonGrammar::Close(bool object) {
  if (depth_ == 0 || InObject() != object) return false;
  --depth_;
  ValueDone();
  return true;
}

void JsonGrammar::ValueDone() {
  whitespace_ = 0;
  if (depth_ == 0) {
    mode_ = Mode::kDone;
  } else {
    mode_ = InObject() ? Mode::kObjectNext : Mode::kArrayNext;
  }
}

}  // namespace cohost::runtime
