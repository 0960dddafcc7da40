// The reasoning/answer split: the same parts whatever way the text is cut
// into deltas, tags held back across cuts, and the edge cases of a block that
// never closes or never opens.

#include "runtime/tokenizer/reasoning_split.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using Parts = ReasoningSplitter::Parts;

// Feeds `text` in deltas of `step` bytes (0: whole) and finishes.
Parts Split(std::string_view text, size_t step, bool inside_block = false) {
  ReasoningSplitter s(inside_block);
  Parts all;
  auto add = [&](const Parts& p) {
    all.reasoning += p.reasoning;
    all.content += p.content;
  };
  if (step == 0) step = text.size() + 1;
  for (size_t i = 0; i < text.size(); i += step) add(s.Push(text.substr(i, step)));
  add(s.Finish());
  return all;
}

void ExpectSplit(std::string_view text, std::string_view reasoning, std::string_view content,
                 bool inside_block = false) {
  for (size_t step : {0, 1, 2, 3, 5, 7}) {
    const Parts p = Split(text, step, inside_block);
    EXPECT_EQ(p.reasoning, reasoning) << "'" << text << "' in deltas of " << step;
    EXPECT_EQ(p.content, content) << "'" << text << "' in deltas of " << step;
  }
}

TEST(ReasoningSplitterTest, ABlockThenTheAnswer) {
  ExpectSplit("<think>\nLet me add.\n</think>\n\nIt is 4.", "\nLet me add.\n", "It is 4.");
  ExpectSplit("\n<think>x</think>y", "x", "y");
}

TEST(ReasoningSplitterTest, ThinkingOffGivesAnEmptyBlockOrNone) {
  // Qwen3 with enable_thinking false: the template wrote the empty block.
  ExpectSplit("It is 4.", "", "It is 4.");
  ExpectSplit("<think>\n\n</think>\n\nIt is 4.", "\n\n", "It is 4.");
}

TEST(ReasoningSplitterTest, OnlyALeadingBlockCounts) {
  ExpectSplit("Use <think> tags.", "", "Use <think> tags.");
  ExpectSplit("<think>a</think>b <think>c</think>", "a", "b <think>c</think>");
  ExpectSplit("<thinking>", "", "<thinking>");
  ExpectSplit("<thi", "", "<thi");  // ended before the tag could complete
}

TEST(ReasoningSplitterTest, AnUnclosedBlockIsAllReasoning) {
  ExpectSplit("<think>still going</thi", "still going</thi", "");
  ExpectSplit("<think>\n", "\n", "");
}

TEST(ReasoningSplitterTest, APromptThatOpenedTheBlockStartsInReasoning) {
  ExpectSplit("step 1\n</think>\n\nDone.", "step 1\n", "Done.", /*inside_block=*/true);
}

TEST(ReasoningSplitterTest, WhitespaceOnlyOutputIsContent) {
  ExpectSplit("\n\n", "", "\n\n");
  ExpectSplit("<think>a</think>\n\n", "a", "");
}

TEST(ReasoningSplitterTest, NothingIsHeldBackThatCannotBeATag) {
  ReasoningSplitter s;
  Parts p = s.Push("<think>abc");
  EXPECT_EQ(p.reasoning, "abc");
  p = s.Push("def</");
  EXPECT_EQ(p.reasoning, "def");  // "</" may start the closing tag
  p = s.Push("b>");
  EXPECT_EQ(p.reasoning, "</b>");
  p = s.Push("</think>Answer");
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "Answer");
  p = s.Push(" more");
  EXPECT_EQ(p.content, " more");
}

// A reply opening with many whitespace tokens: the whitespace waits (a block
// may follow, and drops it), whatever comes after. (That it is read once, not
// rescanned and copied with every push, is the splitter's code to keep: its
// output is the same either way, only slower.)
TEST(ReasoningSplitterTest, LongLeadingWhitespaceIsHeldUntilWhatFollowsIsKnown) {
  for (const std::string_view after :
       {std::string_view("<think>a</think>b"), std::string_view("b")}) {
    ReasoningSplitter s;
    Parts all;
    for (int i = 0; i < 100000; ++i) {
      const Parts p = s.Push("\n");
      EXPECT_TRUE(p.reasoning.empty() && p.content.empty());
      if (!p.content.empty()) break;
    }
    for (const Parts& p : {s.Push(after), s.Finish()}) {
      all.reasoning += p.reasoning;
      all.content += p.content;
    }
    if (after == "b") {
      EXPECT_EQ(all.content, std::string(100000, '\n') + "b") << "no block: the answer's own";
    } else {
      EXPECT_EQ(all.reasoning, "a");
      EXPECT_EQ(all.content, "b");
    }
  }
}

}  // namespace
}  // namespace cohost::runtime
