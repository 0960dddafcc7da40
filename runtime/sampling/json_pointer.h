// What a JSON Schema `$ref` within one document names: "#", or a JSON
// pointer after it (RFC 6901: "/"-separated tokens, ~0 for "~" and ~1 for
// "/"; in a URI fragment, %XX escapes too), each token an object's key or
// an array's index. The one reading of a $ref's pointer (the schema
// compiler's).
#pragma once

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>
#include <system_error>

namespace cohost::runtime {

// The pointer's tokens, unescaped, each passed to `step` in turn; false if
// `ref` is not "#" and a pointer, or a step fails.
template <typename Step>
bool ForEachPointerToken(std::string_view ref, Step step) {
  if (ref.empty() || ref[0] != '#') return false;
  ref.remove_prefix(1);
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (!ref.empty()) {
    if (ref[0] != '/') return false;
    ref.remove_prefix(1);
    const size_t end = std::min(ref.find('/'), ref.size());
    // Percent escapes first (the fragment's), then the pointer's own.
    std::string decoded;
    for (size_t i = 0; i < end; ++i) {
      if (ref[i] != '%') {
        decoded += ref[i];
        continue;
      }
      if (i + 2 >= end) return false;
      const int hi = hex(ref[i + 1]), lo = hex(ref[i + 2]);
      if (hi < 0 || lo < 0) return false;
      decoded += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    std::string token;
    for (size_t i = 0; i < decoded.size(); ++i) {
      if (decoded[i] != '~') {
        token += decoded[i];
      } else if (i + 1 < decoded.size() && (decoded[i + 1] == '0' || decoded[i + 1] == '1')) {
        token += decoded[++i] == '0' ? '~' : '/';
      } else {
        return false;
      }
    }
    ref.remove_prefix(end);
    if (!step(token)) return false;
  }
  return true;
}

// What `ref` names in `root` (nlohmann's json or ordered_json, const or
// not); null where it names nothing.
template <typename JsonT>
JsonT* PointerTarget(JsonT& root, std::string_view ref) {
  JsonT* at = &root;
  const bool found = ForEachPointerToken(ref, [&](const std::string& token) {
    if (at->is_object()) {
      const auto it = at->find(token);
      if (it == at->end()) return false;
      at = &*it;
      return true;
    }
    if (!at->is_array()) return false;
    size_t index = 0;
    const char* last = token.data() + token.size();
    const auto [stop, error] = std::from_chars(token.data(), last, index);
    if (token.empty() || error != std::errc() || stop != last || index >= at->size() ||
        (token.size() > 1 && token[0] == '0')) {
      return false;
    }
    at = &(*at)[index];
    return true;
  });
  return found ? at : nullptr;
}

}  // namespace cohost::runtime
