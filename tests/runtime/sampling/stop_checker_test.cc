#include "runtime/sampling/stop_checker.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using Strings = std::vector<std::string>;

struct Outcome {
  std::string text;  // everything emitted, including Flush()
  bool stopped = false;
  std::string matched;
};

// Feeds deltas one by one; checks after each that the held-back text stays within
// the bound and that nothing is emitted past a stop.
Outcome Feed(const Strings& stops, const Strings& deltas) {
  size_t max_len = 0;
  for (const std::string& s : stops) max_len = std::max(max_len, s.size());
  StopChecker checker(stops);
  Outcome out;
  size_t pushed = 0;
  for (const std::string& d : deltas) {
    StopChecker::Result r = checker.Push(d);
    pushed += d.size();
    if (out.stopped) {
      EXPECT_TRUE(r.stopped);
      EXPECT_EQ(r.text, "");
      continue;
    }
    out.text += r.text;
    if (r.stopped) {
      out.stopped = true;
      out.matched = r.matched;
    } else {
      EXPECT_LE(pushed - out.text.size(), max_len > 0 ? max_len - 1 : 0) << "held too much";
    }
  }
  const std::string rest = checker.Flush();
  if (out.stopped) {
    EXPECT_EQ(rest, "");
  }
  out.text += rest;
  return out;
}

// Reference on the whole text: the stop string ending first (then starting first).
Outcome Reference(const Strings& stops, const std::string& text) {
  Outcome best{text, false, ""};
  size_t best_end = std::string::npos, best_start = 0;
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    for (size_t start = 0; start + s.size() <= text.size(); ++start) {
      if (text.compare(start, s.size(), s) != 0) continue;
      const size_t end = start + s.size();
      if (end < best_end || (end == best_end && start < best_start)) {
        best_end = end;
        best_start = start;
        best = {text.substr(0, start), true, s};
      }
    }
  }
  return best;
}

TEST(StopCheckerTest, NoStopStringsPassesThrough) {
  StopChecker checker({});
  StopChecker::Result r = checker.Push("hello ");
  EXPECT_EQ(r.text, "hello ");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(checker.Push("world").text, "world");
  EXPECT_EQ(checker.Flush(), "");
}

TEST(StopCheckerTest, StopInOneDelta) {
  StopChecker checker({"STOP"});
  StopChecker::Result r = checker.Push("Hello STOP world");
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "STOP");
  r = checker.Push("more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(checker.Flush(), "");
}

TEST(StopCheckerTest, StopSplitAcrossDeltasIsHeldBack) {
  StopChecker checker({"STOP"});
  StopChecker::Result r = checker.Push("He");
  EXPECT_EQ(r.text, "He");
  r = checker.Push("llo S");
  EXPECT_EQ(r.text, "llo ");
  r = checker.Push("T");
  EXPECT_EQ(r.text, "");
  r = checker.Push("O");
  EXPECT_EQ(r.text, "");
  EXPECT_FALSE(r.stopped);
  r = checker.Push("P and more");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "STOP");
}

TEST(StopCheckerTest, FalseStartIsReleased) {
  StopChecker checker({"STOP"});
  EXPECT_EQ(checker.Push("a ST").text, "a ");
  StopChecker::Result r = checker.Push("Ox");
  EXPECT_EQ(r.text, "STOx");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(checker.Push("ST").text, "");
  EXPECT_EQ(checker.Flush(), "ST");  // end of generation: held text is not a stop
}

TEST(StopCheckerTest, StopAtVeryStart) {
  StopChecker checker({"<|end|>"});
  StopChecker::Result r = checker.Push("<|");
  EXPECT_EQ(r.text, "");
  r = checker.Push("end|>tail");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.matched, "<|end|>");
}

TEST(StopCheckerTest, OverlappingPrefixesShorterCompletesFirst) {
  Outcome o = Feed({"abc", "ab"}, {"xa", "bc"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.matched, "ab");
  EXPECT_EQ(o.text, "x");
  // Same end: the one starting first wins.
  o = Feed({"bc", "abc"}, {"xabcd"});
  EXPECT_EQ(o.matched, "abc");
  EXPECT_EQ(o.text, "x");
}

TEST(StopCheckerTest, MultipleStopStrings) {
  Outcome o = Feed({"\n\n", "User:", "###"}, {"Sure. ", "Us", "e", "d it.", "\n", "#", "##"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.matched, "###");
  EXPECT_EQ(o.text, "Sure. Used it.\n");
}

TEST(StopCheckerTest, Utf8StopStringAcrossCharacters) {
  const Outcome o = Feed({"停止"}, {"你", "好", "停", "下", "，", "停", "止", "了"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "你好停下，");
  StopChecker checker({"停止"});
  EXPECT_EQ(checker.Push("é停").text, "é");  // whole characters only
  EXPECT_EQ(checker.Push("下").text, "停下");
}

TEST(StopCheckerTest, EmptyStopStringsAreIgnored) {
  const Outcome o = Feed({"", "z"}, {"abc", "dzq"});
  EXPECT_EQ(o.text, "abcd");
  EXPECT_EQ(o.matched, "z");
}

TEST(StopCheckerTest, HeldBackIsBounded) {
  StopChecker checker({std::string(200, 'a') + "b"});
  std::string emitted;
  for (int i = 0; i < 1000; ++i) emitted += checker.Push("a").text;
  EXPECT_EQ(emitted.size(), 1000u - 200u);
  EXPECT_EQ(checker.Flush(), std::string(200, 'a'));
}

// Every way of cutting the text into deltas gives the reference outcome.
TEST(StopCheckerTest, ResultIndependentOfDeltaBoundaries) {
  const std::vector<std::pair<Strings, std::string>> cases = {
      {{"ab", "abc"}, "xxabcab"},      {{"aab"}, "aaaab"},      {{"abab"}, "abaababab"},
      {{"STOP", "TO"}, "a STOP"},      {{"x", "yz"}, "yyyzx"},  {{"abc", "bcd"}, "zabcd"},
      {{"</s>", "\n\n"}, "a<\n/\n\n"}, {{"aa", "ba"}, "bbbaa"}, {{"qq"}, "no stop here"},
      {{"hello world"}, "say hello"},
  };
  for (const auto& [stops, text] : cases) {
    const Outcome want = Reference(stops, text);
    const size_t n = text.size();
    for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {  // bit i: cut after byte i
      Strings deltas;
      size_t start = 0;
      for (size_t i = 0; i + 1 < n; ++i) {
        if (mask & (1u << i)) {
          deltas.push_back(text.substr(start, i + 1 - start));
          start = i + 1;
        }
      }
      deltas.push_back(text.substr(start));
      const Outcome got = Feed(stops, deltas);
      ASSERT_EQ(got.text, want.text) << text << " mask " << mask;
      ASSERT_EQ(got.stopped, want.stopped) << text << " mask " << mask;
      ASSERT_EQ(got.matched, want.matched) << text << " mask " << mask;
    }
  }
}

}  // namespace
}  // namespace cohost::runtime
