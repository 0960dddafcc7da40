// A byte-at-a-time recognizer of JSON text (RFC 8259) held to a JsonSchema,
// for constrained decoding: the state after any prefix of a document is a
// value type (a header and the open containers), so the token mask
// (token_mask.h) copies it at every byte of its walk over the vocabulary.
// It accepts the prefixes of documents the schema allows (by default
// JsonSchema::AnyObject(): any document whose top level is an object,
// OpenAI's `response_format: {"type": "json_object"}`), some written one way
// where JSON has several (never a document the schema refuses): an integer
// (and a number whose multipleOf is whole) without a fraction or exponent,
// a bounded number (or one with a multipleOf) without an exponent, an
// enum's number as its value is written (1, not 1.0), a pattern's string
// without \u escapes (string_pattern.h for its characters), a tagged
// object's tag first (JsonSchema's objects told apart by a tag), with strings
// of valid UTF-8 and no raw control characters, nothing after the document
// (its end is the end of generation), and two limits that keep a model from
// looping where the grammar alone would let it:
//   - at most kMaxJsonDepth open containers;
//   - between two tokens of JSON, at most kMaxJsonNewlines newlines, and at
//     most kMaxJsonIndent other whitespace bytes after each (pretty printing
//     needs a newline and an indent, 4 spaces a level at the deepest; a
//     model stuck on blank lines or spaces must go on with the document).
// Every prefix it accepts can be completed: no byte leads where no document
// goes (a property written, a list at its maxItems, an enum's strings
// narrowed to none, a value that cannot close within the depth limit), so
// a constrained model is never stuck midway. Keys are matched as written:
// a key of an object with names is written without escapes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>

#include "runtime/sampling/json_schema.h"

namespace cohost::runtime {

inline constexpr int32_t kMaxJsonDepth = 32;
static_assert(kMaxJsonDepth == kMaxSchemaDepth, "JsonSchema::Compile refuses what cannot fit");
inline constexpr int32_t kMaxJsonNewlines = 2;
inline constexpr int32_t kMaxJsonIndent = 4 * kMaxJsonDepth;

class JsonGrammar {
 public:
  // The state before the first byte of a document of `schema`'s root
  // (which must outlive every Feed).
  JsonGrammar() : JsonGrammar(JsonSchema::AnyObject()) {}
  explicit JsonGrammar(const JsonSchema& schema) { head_.value = schema.root(); }
  JsonGrammar(const JsonGrammar& other) { *this = other; }
  // Copies only the open containers: the mask's walk copies a state per byte.
  JsonGrammar& operator=(const JsonGrammar& other) {
    head_ = other.head_;
    std::copy_n(other.frames_, other.head_.depth, frames_);
    return *this;
  }

  // Takes one byte; false (and the state unchanged) if no document of the
  // schema has the prefix so far followed by it.
  bool Feed(const JsonSchema& schema, uint8_t byte);
  // Feed for every byte, stopping at the first refused (the state then holds
  // the bytes before it).
  bool FeedAll(const JsonSchema& schema, std::string_view bytes);
  // Under JsonSchema::AnyObject().
  bool Feed(uint8_t byte) { return Feed(JsonSchema::AnyObject(), byte); }
  bool FeedAll(std::string_view bytes) { return FeedAll(JsonSchema::AnyObject(), bytes); }
  // The bytes so far are a whole document (an end of generation may follow).
  bool Complete() const;
  // This state as a mask's cache key for tokens of at most `lookahead`
  // bytes: inside a length-limited string whose count is more than a token
  // away from each limit (or past the minimum), the count decides nothing
  // for the next token, and all such states share one key.
  JsonGrammar MaskKey(const JsonSchema& schema, uint32_t lookahead) const;

  friend bool operator==(const JsonGrammar& a, const JsonGrammar& b) {
    return a.head_ == b.head_ && std::equal(a.frames_, a.frames_ + a.head_.depth, b.frames_);
  }
  template <typename H>
  friend H AbslHashValue(H h, const JsonGrammar& g) {
    const Head& d = g.head_;
    h = H::combine(std::move(h), d.mode, d.sub, d.literal, d.whitespace, d.newlines, d.utf8_left,
                   d.utf8_lo, d.utf8_hi, d.key, d.integer, d.counted, d.patterned, d.negative,
                   d.nonzero_fraction, d.whole, d.depth, d.value, d.pos, d.chars, d.candidates,
                   d.remainder);
    for (int i = 0; i < d.depth; ++i) {
      h = H::combine(std::move(h), g.frames_[i].seen, g.frames_[i].count, g.frames_[i].node);
    }
    return h;
  }

 private:
  enum class Mode : uint8_t {
    kValue,       // a value must start (of node `value`)
    kKeyOrEnd,    // after '{': a key or '}'
    kKey,         // after ',' in an object: a key
    kColon,       // after a key
    kObjectNext,  // after a member's value: ',' or '}'
    kValueOrEnd,  // after '[': a value or ']'
    kArrayNext,   // after an element: ',' or ']'
    kString,      // inside a string (a key when `key`)
    kNumber,      // inside a number (sub: where)
    kLiteral,     // inside true, false or null (sub: which and how far)
    kDone,        // the document is whole: nothing may follow
  };
  // Where a number is: the parts of -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  enum NumberPart : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExp, kExpSign, kExpDigits };
  // Where a string is (besides plain text and the UTF-8 of a character). A
  // \u escape of a high surrogate (D800-DBFF) goes on through kHigh* and
  // must be followed by one of a low surrogate (DC00-DFFF), through kLow*:
  // the pair is one character. A lone surrogate is refused (it is no
  // character: Python, serde and most parsers refuse or mangle it).
  enum StringPart : uint8_t {
    kPlain,
    kEscape,     // after '\'
    kHex1,       // after "\u"
    kHex2,       // after its first hex digit, not D
    kHexAfterD,  // after D: 0-7 a character, 8-B a high surrogate, C-F refused
    kHex3,       // the last two digits of a character (or of a pair's low half)
    kHex4,
    kHighHex3,  // the last two digits of a high surrogate
    kHighHex4,
    kLowEscape,  // a high surrogate written: its low half's '\'
    kLowU,       // its 'u'
    kLowHex1,    // its D
    kLowHex2,    // its C-F
  };

  struct Head {
    Mode mode = Mode::kValue;
    uint8_t sub = 0;                // the NumberPart, StringPart or literal byte index
    uint8_t literal = 0;            // which literal: 0 true, 1 false, 2 null
    uint8_t whitespace = 0;         // whitespace bytes since the last newline or token
    uint8_t newlines = 0;           // newlines since the last token
    uint8_t utf8_left = 0;          // continuation bytes still due in a string
    uint8_t utf8_lo = 0x80;         // the range of the next one (narrower after
    uint8_t utf8_hi = 0xBF;         // E0, ED, F0 and F4: no overlong, no surrogate)
    bool key = false;               // the string is an object's key
    bool integer = false;           // the number may have no fraction or exponent
    bool counted = false;           // the string's characters are counted (a length limit)
    bool patterned = false;         // the string is held to its node's pattern
    bool negative = false;          // a bounded number's sign
    bool nonzero_fraction = false;  // and a digit other than 0 after its '.' (past pos)
    bool whole = false;             // the number so far may end here
    uint8_t depth = 0;              // open containers
    SchemaNodeId value = 0;         // the value starting next, or the string or number being read
    // A key's or option's bytes so far, while matched; a bounded number's
    // fraction digits within its bounds' scale.
    uint16_t pos = 0;
    // A length-limited string's characters so far; the value of a bounded
    // number's fraction digits within its bounds' scale.
    uint32_t chars = 0;
    // The names (of a key) or options still matching; a pattern's state (of
    // a string with one); a bounded number's integer part (its magnitude).
    uint64_t candidates = 0;
    // A number's integer part mod its bounds' multiple (where it has one).
    uint32_t remainder = 0;
    friend bool operator==(const Head&, const Head&) = default;
  };
  // An open container: its node, and (only where its schema limits them)
  // the properties written or the elements so far, so that states that
  // differ in nothing else are equal (and share a cached mask).
  // No initializers: the frames past `depth` are never read, and a state's
  // copy or construction should not write them.
  struct Frame {
    uint64_t seen;   // an object's properties written: bit i for names[i]
    uint32_t count;  // an array's elements
    SchemaNodeId node;
    friend bool operator==(const Frame&, const Frame&) = default;
  };

  bool FeedWhitespace(uint8_t byte);
  void EndWhitespace() {
    head_.whitespace = 0;
    head_.newlines = 0;
  }
  bool FeedValueStart(const JsonSchema& schema, uint8_t byte);
  bool FeedString(const JsonSchema& schema, uint8_t byte);
  bool FeedStringByte(uint8_t byte);  // the text alone: escapes and UTF-8
  // A string held to a pattern, character by character.
  bool FeedPatterned(const SchemaNode& node, const StringPattern& pattern, uint8_t byte);
  bool CloseString(const JsonSchema& schema);
  bool StartNumber(const SchemaNode& node, SchemaNodeId id, uint8_t byte);
  // Of a number's options, those that go on with `byte`; false for none.
  bool NarrowOptions(const SchemaNode& node, uint8_t byte);
  bool FeedNumber(const JsonSchema& schema, uint8_t byte);
  // The number's grammar alone: `byte` goes on with it (and the state with
  // it; a bounded number's digits as its bounds' units of 10^-scale see them).
  bool NumberGoesOn(uint8_t byte, const NumberBounds& bounds);
  // After a byte of a number: its prefix is one of the node's, and whether
  // it may end here.
  bool NumberHolds(const SchemaNode& node);
  bool FeedLiteral(const JsonSchema& schema, uint8_t byte);
  bool Open(const JsonSchema& schema, SchemaNodeId node);
  bool Close(const JsonSchema& schema, bool object);
  // Another key may come in the innermost object.
  bool KeyLeft(const JsonSchema& schema) const;
  // The names a key of the innermost object may still be: not written yet,
  // and with a value that fits below the depth limit.
  uint64_t KeyNames(const JsonSchema& schema) const;
  // Of an object's names, those whose value fits at the current depth.
  uint64_t Fitting(const JsonSchema& schema, const SchemaNode& object) const;
  // Note: kept apart from KeyNames for objects that take other keys, where
  // every name is matched and refused at its close instead.
  // A value of node `id` started at `depth` can close within kMaxJsonDepth.
  bool Fits(const JsonSchema& schema, SchemaNodeId id, int32_t depth) const;
  // A value just ended: where the container around it goes next.
  void ValueDone(const JsonSchema& schema);
  const Frame& Top() const { return frames_[head_.depth - 1]; }
  Frame& Top() { return frames_[head_.depth - 1]; }

  Head head_;
  Frame frames_[kMaxJsonDepth];
};

}  // namespace cohost::runtime
