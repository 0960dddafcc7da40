// Splits a reasoning model's streamed output into its reasoning and its
// answer: Qwen3 writes "<think>\n...\n</think>\n\n" before the answer. As
// vLLM's qwen3 reasoning parser returns as `reasoning` (once
// `reasoning_content`), the reasoning is the text inside the block and the
// answer what follows it. Only the first block counts, and only at the start
// of the output: a "<think>" later in an answer is its text. Unlike vLLM's
// whole-output parser (not its streaming one), a block that never closes is
// reasoning, so that a reply says the same streamed or whole.
#pragma once

#include <string>
#include <string_view>

namespace cohost::runtime {

inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";

class ReasoningSplitter {
 public:
  struct Parts {
    std::string reasoning;
    std::string content;
  };

  // `inside_block`: the prompt already opened the think block (a template
  // whose generation prompt ends in "<think>\n"), so the output starts as
  // reasoning.
  explicit ReasoningSplitter(bool inside_block = false)
      : state_(inside_block ? State::kReasoning : State::kStart) {}

  // The parts of `delta` known now. Text that could still be the start of a
  // tag ("</thi") is held back until the next delta or Finish. Whitespace
  // before the block and between it and the answer is dropped; the
  // reasoning's own leading and trailing newlines are kept, as vLLM does.
  Parts Push(std::string_view delta);
  // At the end of the output: what was held back, as the part it belongs to
  // (an unclosed block is all reasoning; leading whitespace alone, content).
  Parts Finish();

 private:
  enum class State { kStart, kReasoning, kAfterBlock, kContent };
  State state_;
  std::string held_;       // text not yet given out: a possible tag's start, or whitespace
  size_t space_held_ = 0;  // kStart: the whitespace at held_'s start, already read
};

}  // namespace cohost::runtime
