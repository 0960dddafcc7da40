// A chat answer split as it streams into its reasoning, its text and its
// calls: a ReasoningSplitter takes the think block off the front, and a
// ToolCallSplitter reads the calls out of what follows. Either may be off;
// with both off the text passes as it is. Both front doors split with it
// (CompletionCall's choices, the gRPC Generate stream).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/reasoning_split.h"
#include "runtime/tokenizer/tool_call_split.h"

namespace cohost::runtime {

class OutputSplitter {
 public:
  struct Parts {
    std::string reasoning;
    std::string content;
    std::vector<ParsedToolCall> calls;
  };

  OutputSplitter() = default;
  OutputSplitter(std::optional<ReasoningSplitter> reasoning, std::optional<ToolCallSplitter> tools)
      : reasoning_(std::move(reasoning)), tools_(std::move(tools)) {}

  // Either splitter is on (off, the text passes as it is).
  bool active() const { return reasoning_.has_value() || tools_.has_value(); }

  // The parts of `delta` known now (see the splitters for what each holds).
  Parts Push(std::string_view delta);
  // At the end of the output: what the splitters held.
  Parts Finish();

 private:
  std::optional<ReasoningSplitter> reasoning_;
  std::optional<ToolCallSplitter> tools_;
};

}  // namespace cohost::runtime
