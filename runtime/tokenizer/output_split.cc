// The reasoning/text/calls split of a chat answer. See output_split.h.

#include "runtime/tokenizer/output_split.h"

#include <utility>

namespace cohost::runtime {

OutputSplitter::Parts OutputSplitter::Push(std::string_view delta) {
  Parts out;
  std::string answer;  // the reasoning splitter's, when there is one
  std::string_view content = delta;
  if (reasoning_) {
    ReasoningSplitter::Parts parts = reasoning_->Push(delta);
    out.reasoning = std::move(parts.reasoning);
    answer = std::move(parts.content);
    content = answer;
  }
  if (!tools_) {
    out.content = std::string(content);
    return out;
  }
  ToolCallSplitter::Parts split = tools_->Push(content);
  out.content = std::move(split.content);
  out.calls = std::move(split.calls);
  return out;
}

OutputSplitter::Parts OutputSplitter::Finish() {
  Parts out;
  std::string content;
  if (reasoning_) {
    ReasoningSplitter::Parts parts = reasoning_->Finish();
    out.reasoning = std::move(parts.reasoning);
    content = std::move(parts.content);
  }
  if (!tools_) {
    out.content = std::move(content);
    return out;
  }
  // What the reasoning splitter held goes through the calls' first.
  ToolCallSplitter::Parts split = tools_->Push(content);
  ToolCallSplitter::Parts rest = tools_->Finish();
  out.content = std::move(split.content) + rest.content;
  out.calls = std::move(split.calls);
  for (ParsedToolCall& call : rest.calls) out.calls.push_back(std::move(call));
  return out;
}

}  // namespace cohost::runtime
