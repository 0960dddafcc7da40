// What ToolCallSplitter needs to give out a call as the model writes it
// (OpenAI's streamed `tool_calls`: the call's id and name first, then its
// arguments' text in fragments): where a call's JSON has told its name and
// started its arguments, and the arguments' text, compact, as it comes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cohost::runtime {

// How far the start of a call's JSON, `{"name": "NAME", "arguments": {`
// (JSON whitespace between tokens), has come.
enum class CallOpening {
  kMore,  // every byte so far fits it: more is needed to know
  kNone,  // it is not (another key order, arguments as a string, a name
          // with escapes, or longer than kMaxCallOpeningBytes): the call is
          // read whole, once its JSON ends
  kCall,  // `name` is set, and the arguments' object starts at `arguments`
};
inline constexpr size_t kMaxCallOpeningBytes = 512;
CallOpening MatchCallOpening(std::string_view text, std::string* name, size_t* arguments);

// The text of one JSON object (a call's arguments, from its first byte)
// without the whitespace between its tokens, given out as it comes; a
// string's bytes pass as they are. It reads no further than the object's
// closing brace; it does not check that the text is JSON (the grammar, or
// the model, answers for that).
class ObjectCompactor {
 public:
  // Appends what `text` adds to the object's compact text to `out`, and
  // returns how many bytes of `text` belong to the object (all of them,
  // until it closes).
  size_t Feed(std::string_view text, std::string* out);
  // Its closing brace has come.
  bool done() const { return done_; }

 private:
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  bool done_ = false;
};

}  // namespace cohost::runtime
