#include "runtime/sampling/string_pattern.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;

StringPattern Compiled(std::string_view source) {
  absl::StatusOr<StringPattern> p = StringPattern::Compile(source);
  EXPECT_TRUE(p.ok()) << source << ": " << p.status();
  return p.ok() ? *std::move(p) : *StringPattern::Compile("");
}

// On ASCII text, a pattern matches where ECMAScript's search does (std::regex
// is the reference): random strings over the characters the patterns name.
TEST(StringPatternTest, MatchesAsEcmaScriptDoesOnAsciiText) {
  const char* patterns[] = {
      "^[a-z]+$",
      "^[A-Z][a-z]*(-[A-Z][a-z]*)?$",
      "ab|^c$",
      "^(ab)*c?$",
      "^a{2,3}b{2}$",
      "^a{2,}$",
      "^\\d{3}-\\d{4}$",
      "^[^a-c]+$",
      "^(?:x|yz)+?$",
      "b",
      "^$",
      "^[\\w.]+@[\\w]+\\.[a-z]{2,3}$",
      "^\\S+\\s\\S+$",
      "^[-+]?\\d+(\\.\\d+)?$",
      "^a.c$",
      "^[\\]a]+$",
      "^\\{x\\}$",
      "^(a|)b$",
  };
  const std::string alphabet = "abcxyzAZ09-+.@ {}]\tq_";
  std::mt19937 rng(7);
  for (const char* source : patterns) {
    const StringPattern pattern = Compiled(source);
    const std::regex reference(source, std::regex::ECMAScript);
    for (int i = 0; i < 3000; ++i) {
      std::string text;
      const int length = static_cast<int>(rng() % 9);
      for (int k = 0; k < length; ++k) text += alphabet[rng() % alphabet.size()];
      EXPECT_EQ(pattern.Matches(text), std::regex_search(text, reference))
          << source << " on \"" << text << "\"";
    }
  }
  // What std::regex does not take: a named group, a '{' that starts no count.
  EXPECT_TRUE(Compiled("^(?<tag>[xy])z$").Matches("yz"));
  EXPECT_FALSE(Compiled("^(?<tag>[xy])z$").Matches("zz"));
  EXPECT_TRUE(Compiled("^x{$").Matches("x{"));
  EXPECT_TRUE(Compiled("^x{1,$").Matches("x{1,"));
  // Some that random text rarely hits.
  EXPECT_TRUE(Compiled("^[\\w.]+@[\\w]+\\.[a-z]{2,3}$").Matches("a.b@c.io"));
  EXPECT_TRUE(Compiled("^\\d{3}-\\d{4}$").Matches("555-0199"));
  EXPECT_TRUE(Compiled("^a{2,3}b{2}$").Matches("aaabb"));
}

// Non-ASCII characters are one symbol, held only by classes that hold them
// all: a narrower language than ECMA's, never a wider one.
TEST(StringPatternTest, NonAsciiOnlyWhereEveryOneIsHeld) {
  EXPECT_TRUE(Compiled("^[^@]+$").Matches("caf\xC3\xA9"));
  EXPECT_TRUE(Compiled("^\\D+$").Matches("\xE2\x82\xAC"));
  EXPECT_FALSE(Compiled("^.+$").Matches("caf\xC3\xA9")) << "'.' leaves out U+2028";
  EXPECT_FALSE(Compiled("^\\S+$").Matches("\xC2\xA0")) << "U+00A0 is a \\s";
  EXPECT_FALSE(Compiled("^[^\\s]+$").Matches("\xC3\xA9"));
  EXPECT_TRUE(Compiled("^.+$").Matches("cafe"));
}

TEST(StringPatternTest, FormatsHoldTheirShape) {
  struct Case {
    const char* format;
    std::vector<const char*> good, bad;
  };
  for (const Case& c : {
           Case{"date",
                {"2024-02-28", "1999-12-31", "2023-04-30"},
                {"2024-02-30", "2024-13-01", "2024-04-31", "24-01-01", "2024-1-01", ""}},
           Case{"time", {"23:59:59Z", "00:00:00.123+05:30"}, {"24:00:00Z", "12:00:00", "1:2:3Z"}},
           Case{"date-time",
                {"2024-06-01T12:30:00Z", "2024-06-01T12:30:00.5-07:00"},
                {"2024-06-01 12:30:00Z", "2024-06-01T12:30Z"}},
           Case{"uuid",
                {"123e4567-e89b-12d3-a456-426614174000"},
                {"123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g"}},
           Case{"ipv4",
                {"0.0.0.0", "255.255.255.255", "10.1.20.199"},
                {"256.1.1.1", "01.1.1.1", "1.1.1", "1.1.1.1.1"}},
           Case{"email",
                {"a.b+c@example.co.uk", "x@y.z", "first_last@sub-domain.example.org"},
                {"a@b", "@b.c", "a b@c.d", "a@b..c", "a..b@x.y", ".a@x.y", "a@-.y", "a@x-.y"}},
           Case{"hostname",
                {"localhost", "example.com", "a-b.c1.D2", "x"},
                {"", "-a.com", "a-.com", "a..b", ".a", "a.", "a_b.com", "a b"}},
           Case{"duration",
                {"P1D", "P3Y6M4DT12H30M5S", "PT20M", "PT1H", "P2W", "P1M", "P1Y2M", "PT36S",
                 "P1DT2H"},
                {"P", "PT", "P1H", "PT1D", "P1DT", "1D", "P1W2D", "P1S", "PT1H1S", "P1D2Y"}},
       }) {
    absl::StatusOr<StringPattern> p = StringPattern::OfFormat(c.format);
    ASSERT_TRUE(p.ok()) << c.format << ": " << p.status();
    for (const char* s : c.good) EXPECT_TRUE(p->Matches(s)) << c.format << " " << s;
    for (const char* s : c.bad) EXPECT_FALSE(p->Matches(s)) << c.format << " " << s;
  }
  EXPECT_THAT(std::string(StringPattern::OfFormat("ipv6").status().message()),
              HasSubstr("only date"));
  // Each fits the automaton's positions.
  for (const char* format :
       {"date", "time", "date-time", "duration", "uuid", "ipv4", "email", "hostname"}) {
    EXPECT_TRUE(StringPattern::OfFormat(format).ok()) << format;
  }
}

TEST(StringPatternTest, LengthsAreKnownExactly) {
  const StringPattern p = Compiled("^(ab)+$");
  const uint64_t s = StringPattern::kStart;
  EXPECT_FALSE(p.EndsWithin(s, 0, 1));
  EXPECT_TRUE(p.EndsWithin(s, 2, 2));
  EXPECT_FALSE(p.EndsWithin(s, 3, 3)) << "only even lengths";
  EXPECT_TRUE(p.EndsWithin(s, 300, UINT32_MAX)) << "no end to its length";
  const StringPattern fixed = Compiled("^[a-z]{2,4}$");
  EXPECT_FALSE(fixed.EndsWithin(s, 5, UINT32_MAX));
  const uint64_t one = fixed.Step(s, 'q');
  ASSERT_NE(one, 0u);
  EXPECT_TRUE(fixed.EndsWithin(one, 1, 1));
  EXPECT_FALSE(fixed.EndsWithin(one, 4, 10));
  EXPECT_EQ(fixed.Step(s, 'Q'), 0u);
}

TEST(StringPatternTest, WhatIsNotHeldIsRefusedByName) {
  struct Case {
    const char* pattern;
    const char* says;
  };
  for (const Case& c : {
           Case{"(?=a)b", "lookahead"},
           Case{"(?<!a)b", "lookbehind"},
           Case{"(a)\\1", "backreference"},
           Case{"\\bword", "word boundary"},
           Case{"a^b", "anchor"},
           Case{"a$b", "anchor"},
           Case{"(a", "unclosed"},
           Case{"a)", "unmatched"},
           Case{"[a", "unclosed"},
           Case{"*a", "nothing to repeat"},
           Case{"a**", "after a quantifier"},
           Case{"caf\xC3\xA9", "non-ASCII"},
           Case{"\\u00e9", "non-ASCII"},
           Case{"\\p{L}", "escape"},
           Case{"[z-a]", "out of order"},
           Case{"[\\d-z]", "range"},
           Case{"a{5,2}", "above"},
           Case{"a{2000}", "above"},
           Case{"^\\d{64}$", "positions"},
           Case{"((((a{0}){100}){100}){100})", "10000"},
           Case{"[\\x00-\\x07]", "no character"},
       }) {
    absl::StatusOr<StringPattern> p = StringPattern::Compile(c.pattern);
    ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << c.pattern;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.says)) << c.pattern;
  }
  // A client's expression is bounded before it is read.
  EXPECT_THAT(std::string(StringPattern::Compile(std::string(5000, 'a')).status().message()),
              HasSubstr("longer than 4096"));
}

}  // namespace
}  // namespace cohost::runtime
