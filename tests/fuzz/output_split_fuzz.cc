// A model's output (anything a model can write) split into reasoning,
// content and tool calls as the front doors split it: ReasoningSplitter and
// ToolCallSplitter (whole calls, streamed calls, and a forced call, named or
// "required"). The input is a byte of cuts, a NUL, then the output's text.
// Their contract: the split is the same however the output is cut into
// deltas, so each is fed the text whole and cut where the input says, and
// the parts compared (a streamed call's pieces joined by index; ids are
// random and left out).

#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/reasoning_split.h"
#include "runtime/tokenizer/tool_call_split.h"
#include "tests/fuzz/fuzz_target.h"

namespace cohost::fuzz {
namespace {

using runtime::ParsedToolCall;
using runtime::ReasoningSplitter;
using runtime::ToolCallSplitter;

// The deltas of `text`: cut after each `step`-th byte, `step` from the cut
// byte's bits in turn (1 to 8), so that every tag is cut somewhere.
std::vector<std::string_view> Cut(std::string_view text, uint8_t cuts) {
  std::vector<std::string_view> deltas;
  int bit = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t step = 1 + ((cuts >> (bit++ % 6)) & 7);
    deltas.push_back(text.substr(at, step));
    at += step;
  }
  return deltas;
}

struct Split {
  std::string content;
  std::vector<ParsedToolCall> calls;  // joined by index; ids cleared
};

void Take(ToolCallSplitter::Parts parts, Split* out) {
  out->content += parts.content;
  for (ParsedToolCall& call : parts.calls) {
    if (!out->calls.empty() && out->calls.back().index == call.index && call.name.empty()) {
      out->calls.back().arguments += call.arguments;  // a streamed call's next piece
      continue;
    }
    call.id.clear();
    out->calls.push_back(std::move(call));
  }
}

Split Run(ToolCallSplitter splitter, const std::vector<std::string_view>& deltas) {
  Split out;
  for (const std::string_view delta : deltas) Take(splitter.Push(delta), &out);
  Take(splitter.Finish(), &out);
  return out;
}

void CheckSame(const Split& whole, const Split& cut, const char* what) {
  FUZZ_CHECK(whole.content == cut.content, "%s: content '%s' whole, '%s' cut", what,
             whole.content.c_str(), cut.content.c_str());
  FUZZ_CHECK(whole.calls.size() == cut.calls.size(), "%s: %zu calls whole, %zu cut", what,
             whole.calls.size(), cut.calls.size());
  for (size_t i = 0; i < whole.calls.size(); ++i) {
    const ParsedToolCall& a = whole.calls[i];
    const ParsedToolCall& b = cut.calls[i];
    FUZZ_CHECK(a.name == b.name && a.arguments == b.arguments && a.index == b.index,
               "%s: call %zu is %s(%s) #%d whole, %s(%s) #%d cut", what, i, a.name.c_str(),
               a.arguments.c_str(), a.index, b.name.c_str(), b.arguments.c_str(), b.index);
  }
}

void Run(const uint8_t* data, size_t size) {
  if (size < 2 || data[1] != 0) return;
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::vector<std::string_view> cut = Cut(text, data[0]);
  const std::vector<std::string_view> whole = {text};

  for (const bool inside : {false, true}) {
    ReasoningSplitter a(inside), b(inside);
    ReasoningSplitter::Parts pa = a.Push(text), pb;
    for (const std::string_view delta : cut) {
      ReasoningSplitter::Parts p = b.Push(delta);
      pb.reasoning += p.reasoning;
      pb.content += p.content;
    }
    const ReasoningSplitter::Parts fa = a.Finish(), fb = b.Finish();
    FUZZ_CHECK(pa.reasoning + fa.reasoning == pb.reasoning + fb.reasoning &&
                   pa.content + fa.content == pb.content + fb.content,
               "reasoning split differs when cut (inside %d)", inside);
  }
  for (const bool stream : {false, true}) {
    CheckSame(Run(ToolCallSplitter(stream), whole), Run(ToolCallSplitter(stream), cut),
              stream ? "streamed calls" : "calls");
    CheckSame(Run(ToolCallSplitter::Forced("f", stream), whole),
              Run(ToolCallSplitter::Forced("f", stream), cut), "forced f");
    CheckSame(Run(ToolCallSplitter::Forced("", stream), whole),
              Run(ToolCallSplitter::Forced("", stream), cut), "required");
  }
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::fuzz::Run(data, size);
  return 0;
}
