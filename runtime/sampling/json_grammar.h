// A byte-at-a-time recognizer of JSON text (RFC 8259), for constrained
// decoding: the state after any prefix of a document is a small value type,
// so the token mask (token_mask.h) copies it at every byte of its walk over
// the vocabulary. It accepts exactly the prefixes of documents whose top
// level is an object (OpenAI's `response_format: {"type": "json_object"}`),
// with strings of valid UTF-8 and no raw control characters, nothing after
// the document (its end is the end of generation), and two limits that keep
// a model from looping where the grammar alone would let it:
//   - at most kMaxJsonDepth open containers;
//   - at most kMaxJsonWhitespaceRun whitespace bytes in a row (pretty
//     printing needs a newline and an indent; a model stuck on spaces ends).
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

namespace cohost::runtime {

inline constexpr int32_t kMaxJsonDepth = 64;
inline constexpr int32_t kMaxJsonWhitespaceRun = 32;

class JsonGrammar {
 public:
  // The state before the first byte: whitespace, then '{'.
  JsonGrammar() = default;

  // Takes one byte; false (and the state unchanged) if no document has the
  // prefix so far followed by it.
  bool Feed(uint8_t byte);
  // Feed for every byte, stopping at the first refused (the state then holds
  // the bytes before it).
  bool FeedAll(std::string_view bytes);
  // The bytes so far are a whole document (an end of generation may follow).
  bool Complete() const { return mode_ == Mode::kDone; }

  friend bool operator==(const JsonGrammar&, const JsonGrammar&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const JsonGrammar& g) {
    return H::combine(std::move(h), g.mode_, g.sub_, g.literal_, g.whitespace_, g.utf8_left_,
                      g.utf8_lo_, g.utf8_hi_, g.key_, g.depth_, g.objects_);
  }

 private:
  enum class Mode : uint8_t {
    kStart,       // before the top-level '{'
    kValue,       // a value must start (after ':' or ',' in an array)
    kKeyOrEnd,    // after '{': a key or '}'
    kKey,         // after ',' in an object: a key
    kColon,       // after a key
    kObjectNext,  // after a member's value: ',' or '}'
    kValueOrEnd,  // after '[': a value or ']'
    kArrayNext,   // after an element: ',' or ']'
    kString,      // inside a string (a key when key_)
    kNumber,      // inside a number (sub_: where)
    kLiteral,     // inside true, false or null (sub_: which and how far)
    kDone,        // the top-level object closed: nothing may follow
  };
  // Where a number is: the parts of -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  enum NumberPart : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExp, kExpSign, kExpDigits };
  // Where a string is (besides plain text and the UTF-8 of a character).
  enum StringPart : uint8_t { kPlain, kEscape, kHex1, kHex2, kHex3, kHex4 };

  bool FeedWhitespace(uint8_t byte);
  bool FeedValueStart(uint8_t byte);
  bool FeedString(uint8_t byte);
  bool FeedNumber(uint8_t byte);
  bool FeedLiteral(uint8_t byte);
  bool Open(bool object);
  bool Close(bool object);
  // A value just ended: where the container around it goes next.
  void ValueDone();
  bool InObject() const { return depth_ > 0 && ((objects_ >> (depth_ - 1)) & 1) != 0; }

  Mode mode_ = Mode::kStart;
  uint8_t sub_ = 0;         // the NumberPart, StringPart or literal byte index
  uint8_t literal_ = 0;     // which literal: 0 true, 1 false, 2 null
  uint8_t whitespace_ = 0;  // whitespace bytes in a row
  uint8_t utf8_left_ = 0;   // continuation bytes still due in a string
  uint8_t utf8_lo_ = 0x80;  // the range of the next one (narrower after
  uint8_t utf8_hi_ = 0xBF;  // E0, ED, F0 and F4: no overlong, no surrogate)
  bool key_ = false;        // the string is an object's key
  uint8_t depth_ = 0;       // open containers
  uint64_t objects_ = 0;    // bit d: the container at depth d + 1 is an object
};

}  // namespace cohost::runtime
