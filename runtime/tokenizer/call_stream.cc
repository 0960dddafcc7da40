// A call given out as the model writes it. See call_stream.h.

#include "runtime/tokenizer/call_stream.h"

#include "runtime/tokenizer/tag_scan.h"

namespace cohost::runtime {

CallOpening MatchCallOpening(std::string_view text, std::string* name, size_t* arguments) {
  size_t at = 0;
  // Each step reads one token after JSON whitespace: kMore where the text
  // ends first, kNone where it differs.
  const auto token = [&](std::string_view want) {
    while (at < text.size() && IsBlockSpace(text[at])) ++at;
    const std::string_view have = text.substr(at, want.size());
    if (have != want.substr(0, have.size())) return CallOpening::kNone;
    if (have.size() < want.size()) return CallOpening::kMore;
    at += want.size();
    return CallOpening::kCall;
  };
  const auto string = [&]() {
    if (CallOpening got = token("\""); got != CallOpening::kCall) return got;
    const size_t start = at;
    for (; at < text.size(); ++at) {
      const auto c = static_cast<unsigned char>(text[at]);
      if (c == '"') break;
      if (c == '\\' || c < 0x20) return CallOpening::kNone;  // read whole, unescaped
    }
    if (at == text.size()) return CallOpening::kMore;
    if (at == start) return CallOpening::kNone;  // no name
    name->assign(text.substr(start, at - start));
    ++at;
    return CallOpening::kCall;
  };
  const auto opening = [&]() {
    for (const std::string_view want : {"{", "\"name\"", ":"}) {
      if (CallOpening got = token(want); got != CallOpening::kCall) return got;
    }
    if (CallOpening got = string(); got != CallOpening::kCall) return got;
    for (const std::string_view want : {",", "\"arguments\"", ":", "{"}) {
      if (CallOpening got = token(want); got != CallOpening::kCall) return got;
    }
    return CallOpening::kCall;
  };
  const CallOpening got = opening();
  // Taken only within the bound, however the text came: an opening that
  // ends past it is no opening, nor is one still to end once past it.
  if (got == CallOpening::kCall && at <= kMaxCallOpeningBytes) {
    *arguments = at - 1;
    return got;
  }
  if (got == CallOpening::kNone || text.size() >= kMaxCallOpeningBytes) return CallOpening::kNone;
  return CallOpening::kMore;
}

size_t ObjectCompactor::Feed(std::string_view text, std::string* out) {
  size_t at = 0;
  for (; at < text.size() && !done_; ++at) {
    const char c = text[at];
    if (in_string_) {
      out->push_back(c);
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (IsBlockSpace(c)) continue;
    out->push_back(c);
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if ((c == '}' || c == ']') && --depth_ <= 0) {
      done_ = true;
    }
  }
  return at;
}

}  // namespace cohost::runtime
