// The subcommand flag parser: repeated flags, both value spellings, errors.

#include "tools/common/arg_parser.h"

#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

const std::vector<FlagSpec> kSpecs = {
    {"model", "PATH", "model"},
    {"prompt", "TEXT", "prompt", true},
    {"json", "", "json"},
    {"n", "N", "count"},
};

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseArgs(kSpecs, static_cast<int>(argv.size()), argv.data());
}

TEST(ArgParserTest, RepeatedFlagsKeepOrderAndBothSpellingsWork) {
  absl::StatusOr<ParsedArgs> a =
      Parse({"--model=m.gguf", "--prompt", "one", "--prompt=two", "--json", "--n", "7"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->Get("model"), "m.gguf");
  EXPECT_EQ(a->All("prompt"), (std::vector<std::string>{"one", "two"}));
  EXPECT_TRUE(a->Has("json"));
  EXPECT_FALSE(a->Has("missing"));
  EXPECT_EQ(a->GetInt("n", 0, 10).value(), 7);
}

TEST(ArgParserTest, ValuesMayStartWithDashesWhenSeparate) {
  absl::StatusOr<ParsedArgs> a = Parse({"--prompt", "--not-a-flag"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->All("prompt"), std::vector<std::string>{"--not-a-flag"});
}

TEST(ArgParserTest, AFlagIsNotTakenAsTheValueOfTheOneBefore) {
  absl::StatusOr<ParsedArgs> a = Parse({"--prompt", "--json"});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("--prompt=--json"), std::string::npos) << a.status();
  EXPECT_FALSE(Parse({"--model", "--n=3"}).ok());
  a = Parse({"--prompt=--json", "--json"});  // the = spelling still passes it through
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->All("prompt"), std::vector<std::string>{"--json"});
  EXPECT_TRUE(a->Has("json"));
}

TEST(ArgParserTest, Errors) {
  EXPECT_FALSE(Parse({"--bogus"}).ok());
  EXPECT_FALSE(Parse({"positional"}).ok());
  EXPECT_FALSE(Parse({"--model"}).ok());
  EXPECT_FALSE(Parse({"--model", "a", "--model", "b"}).ok());
  EXPECT_FALSE(Parse({"--json=yes"}).ok());
  absl::StatusOr<ParsedArgs> a = Parse({"--n", "11"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->GetInt("n", 0, 10).status().code(), absl::StatusCode::kInvalidArgument);
  a = Parse({"--n", "3x"});
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->GetInt("n", 0, 10).ok());
  EXPECT_FALSE(a->GetDouble("n").ok());
}

}  // namespace
}  // namespace cohost::tools
