#include "runtime/tokenizer/unicode.h"

#include <array>

namespace cohost::runtime {
namespace {

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 324> to_byte;  // code points used are all below 0x144
};

ByteTables MakeByteTables() {
  ByteTables t;
  t.to_byte.fill(-1);
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    AppendUtf8(cp, &t.to_unicode[b]);
    t.to_byte[cp] = static_cast<int16_t>(b);
  }
  return t;
}

const ByteTables& Tables() {
  static const ByteTables* tables = new ByteTables(MakeByteTables());
  return *tables;
}

}  // namespace

size_t FirstInvalidUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Utf8Scan scan = ScanUtf8(s, pos);
    if (!scan.ok) return pos;
    pos += scan.length;
  }
  return s.size();
}

bool IsValidUtf8(std::string_view s) { return FirstInvalidUtf8(s) == s.size(); }

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementChar;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t ConsumeCompleteUtf8(std::string_view s, std::string* out) {
  size_t pos = 0;
  while (pos < s.size()) {
    const Utf8Scan scan = ScanUtf8(s, pos);
    if (scan.ok) {
      out->append(s.substr(pos, scan.length));
    } else if (scan.truncated) {
      return pos;  // may still be completed by later bytes
    } else {
      AppendUtf8(kReplacementChar, out);
    }
    pos += scan.length;
  }
  return pos;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const size_t used = ConsumeCompleteUtf8(s, &out);
  if (used < s.size()) AppendUtf8(kReplacementChar, &out);  // one truncated subpart
  return out;
}

const std::string& ByteToUnicode(uint8_t b) { return Tables().to_unicode[b]; }

int UnicodeToByte(uint32_t cp) {
  const auto& to_byte = Tables().to_byte;
  return cp < to_byte.size() ? to_byte[cp] : -1;
}

}  // namespace cohost::runtime
