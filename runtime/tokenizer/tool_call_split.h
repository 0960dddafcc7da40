// Splits the answer of a model whose chat template offers tools (Qwen2.5's
// and Qwen3's Hermes format, chat_tools.h) into its text and its calls, as
// the model writes them:
//
//   I'll look.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>
//
// A block whose JSON is an object with a string "name" and an object
// "arguments" (or the text of one; absent reads as {}) is a call; any
// other block stays in the text, tags and all, so that nothing the model
// wrote is lost. A block the output ends inside (max_tokens, or a model that
// stops after its JSON) is a call if its JSON is whole. Whitespace right
// before a call's block and right after it is dropped; the rest of the text
// is content, wherever it is. (vLLM's hermes parser keeps only the text
// before the first block of a whole output, and drops a whole output's
// calls when one block is not JSON; streamed, it does otherwise.) The split
// is the same however the output is cut into deltas.
//
// Streamed (OpenAI's streamed tool_calls), a call is given out as the model
// writes it: once its JSON has told its name and opened its arguments'
// object (`{"name": "f", "arguments": {`, call_stream.h), its id and name,
// then its arguments' text, compact, as it comes; the block is a call from
// then on, even if its JSON goes wrong later (as vLLM's), and a block the
// output ends inside is a call with the arguments written so far (finish
// reason "length" says so). The rest of the block after the arguments is
// text, unless it is whitespace and the closing brace alone. A block that
// starts otherwise (another key order, arguments as a string) is read
// whole, as above. Streamed arguments keep a string's escapes as the model
// wrote them ("\u00e9"), where whole ones are written again ("é"): the same
// JSON values. Streamed or forced too, the calls (their pieces joined by
// index) and the text are the same however the output is cut into deltas
// (tests/fuzz/output_split_fuzz.cc holds it to that).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/call_stream.h"

namespace cohost::runtime {

inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

struct ParsedToolCall {
  std::string id;  // "call_" and 24 random letters and digits, as OpenAI's
  std::string name;
  std::string arguments;  // a JSON object, compact
  // The call's place among the output's calls (0, 1, ...).
  int index = 0;
};
// Streamed, a call comes in pieces: its first with its id and name (and
// the arguments' text so far), each further one (id and name empty) with
// more of the arguments' text of the last call begun, and its index.

// A new call's id (thread-safe).
std::string NewToolCallId();

class ToolCallSplitter {
 public:
  struct Parts {
    std::string content;
    std::vector<ParsedToolCall> calls;
  };

  // Finds the calls in the output's blocks; `stream` gives each out in
  // pieces as the model writes it.
  explicit ToolCallSplitter(bool stream = false) : stream_(stream) {}
  // The output is one call, given out at Finish (as text if it is not one):
  // the arguments of `name` (a grammar held them to the function's
  // parameters, as for OpenAI's named tool_choice), or, when `name` is
  // empty, a block's JSON ({"name": ..., "arguments": ...}; "required").
  // Streamed, the arguments are given out as they come (of a call's JSON,
  // once it has told its name and opened them).
  static ToolCallSplitter Forced(std::string name, bool stream = false);

  // The parts of `delta` known now. Text that could still open a block
  // ("<tool_c"), whitespace before it, and a block not yet closed are held
  // until the next delta or Finish.
  Parts Push(std::string_view delta);
  // At the end of the output: what was held.
  Parts Finish();

 private:
  enum class State { kText, kBlock, kForced };
  // Gives out what `text` (held_ and a delta, in walking_) settles, holding
  // the rest in held_.
  void Walk(std::string_view text, Parts* out);
  // Ends the block whose JSON is `body`: a call, or text again.
  void EndBlock(std::string_view body, bool closed, Parts* out);
  // Streamed: reads the start of a call's JSON in `text` (a block's, up to
  // its closing tag if it has come; a forced call's). Once it has opened
  // the arguments, gives out the call's first piece and drops what was
  // read; once it cannot, leaves the call to be read whole (opening_ kNone).
  void OpenCall(std::string_view* text, Parts* out);
  // Streamed: gives out a call's first piece; its arguments come next.
  void BeginCall(std::string name, Parts* out);
  // Streamed: gives out what `text` adds to the open call's arguments (the
  // rest of the block after them kept in tail_).
  void FeedArguments(std::string_view text, Parts* out);
  // Streamed: ends the open call: what its block held after the arguments
  // is text, unless it is whitespace and the closing brace alone.
  void EndCall(Parts* out);

  State state_ = State::kText;
  bool stream_ = false;
  // Streamed: how far the current block's (or forced call's) JSON has
  // opened a call; kCall once its arguments are being given out.
  CallOpening opening_ = CallOpening::kMore;
  ObjectCompactor arguments_;  // opening_ kCall
  std::string tail_;           // opening_ kCall: the block's text after the arguments
  std::string name_;           // kForced
  std::string held_;   // kText: whitespace and a possible tag's start; else the block's text
  std::string space_;  // kBlock: the whitespace before its tag, given out if not a call
  // The text a Walk reads: held_'s buffer swapped out, so that neither is
  // allocated again at each delta.
  std::string walking_;
  size_t scanned_ = 0;       // kBlock: held_'s bytes known to hold no closing tag's start
  bool after_call_ = false;  // kText: whitespace after a call's block is dropped
  int calls_ = 0;            // calls begun (the next one's index)
};

// The call a block's JSON makes (its id left as it is); false (and `call`
// unset) if it makes none.
bool ParseToolCallJson(std::string_view json, ParsedToolCall* call);

}  // namespace cohost::runtime
