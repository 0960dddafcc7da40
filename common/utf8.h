// The one reading of UTF-8 (RFC 3629, Unicode's table 3-7: no overlong
// forms, no surrogates, nothing past U+10FFFF) that the tokenizers and the
// tenant-name rule share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cohost {

// What the bytes starting at s[pos] (pos < s.size()) are.
struct Utf8Scan {
  size_t length;   // bytes of the well-formed sequence, or of the ill-formed subpart
  bool ok;         // a whole well-formed sequence
  bool truncated;  // ill-formed only because s ended (a longer s could complete it)
  uint32_t cp;     // the code point, when ok
};

// The length of the sequence a byte starts: 1 for ASCII, 2 to 4 for a lead
// byte, 0 for a byte that starts none (a continuation byte, C0, C1, F5-FF).
inline size_t Utf8SequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// The Unicode "maximal subpart" rule: an ill-formed subpart is the lead byte
// plus the continuation bytes that were still acceptable.
inline Utf8Scan ScanUtf8(std::string_view s, size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  const size_t need = Utf8SequenceLength(b0);
  if (need == 1) return {1, true, false, b0};
  if (need == 0) return {1, false, false, 0};
  uint32_t cp = b0 & (0x7F >> need);  // the lead byte's payload bits
  uint8_t lo = 0x80, hi = 0xBF;       // allowed range of the second byte
  if (b0 == 0xE0) lo = 0xA0;          // overlong
  if (b0 == 0xED) hi = 0x9F;          // surrogates
  if (b0 == 0xF0) lo = 0x90;          // overlong
  if (b0 == 0xF4) hi = 0x8F;          // beyond U+10FFFF
  for (size_t i = 1; i < need; ++i) {
    if (pos + i >= s.size()) return {i, false, true, 0};
    const auto b = static_cast<uint8_t>(s[pos + i]);
    const uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return {i, false, false, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {need, true, false, cp};
}

// Length in bytes of the well-formed UTF-8 sequence starting at s[pos], or 0
// when no well-formed sequence starts there (bad lead byte, bad continuation,
// overlong form, surrogate, beyond U+10FFFF, or truncated by the end of s).
// On success *cp (if given) receives the code point.
inline size_t DecodeUtf8(std::string_view s, size_t pos, uint32_t* cp = nullptr) {
  if (pos >= s.size()) return 0;
  const Utf8Scan scan = ScanUtf8(s, pos);
  if (!scan.ok) return 0;
  if (cp != nullptr) *cp = scan.cp;
  return scan.length;
}

}  // namespace cohost
