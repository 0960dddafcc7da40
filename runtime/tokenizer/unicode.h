// UTF-8 helpers for the tokenizers: strict validation, code point decoding,
// U+FFFD repair by maximal subparts, and the GPT-2 byte <-> code point table
// that byte-level BPE vocabularies are written in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace cohost::runtime {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// common/utf8.h's reading of one sequence.
using ::cohost::DecodeUtf8;

// True when all of s is well-formed UTF-8 (RFC 3629).
bool IsValidUtf8(std::string_view s);

// Byte offset of the first ill-formed sequence in s, or s.size() if none.
size_t FirstInvalidUtf8(std::string_view s);

void AppendUtf8(uint32_t cp, std::string* out);

// Replaces each maximal ill-formed subpart of s with U+FFFD (the Unicode
// "best practice" that Python's errors="replace" also follows).
std::string SanitizeUtf8(std::string_view s);

// Splits `s` for streaming: appends to *out the text that is known complete
// (invalid subparts become U+FFFD) and returns the number of bytes consumed.
// The unconsumed tail is a proper prefix of a well-formed sequence that more
// bytes could still complete (at most 3 bytes).
size_t ConsumeCompleteUtf8(std::string_view s, std::string* out);

// GPT-2 byte-level alphabet: each byte maps to one printable code point
// (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards).
// Returns the UTF-8 encoding of the code point for byte b.
const std::string& ByteToUnicode(uint8_t b);
// Inverse of ByteToUnicode on code points; -1 for code points outside it.
int UnicodeToByte(uint32_t cp);

}  // namespace cohost::runtime
