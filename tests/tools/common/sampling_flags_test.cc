// Sampling flags map onto SamplingParams; malformed values are errors.

#include "tools/common/sampling_flags.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::tools {
namespace {

absl::StatusOr<runtime::SamplingParams> Parse(std::vector<std::string> args,
                                              std::string* json_schema = nullptr) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(SamplingFlagSpecs(), static_cast<int>(argv.size()), argv.data());
  if (!parsed.ok()) return parsed.status();
  return SamplingParamsFromArgs(*parsed, json_schema);
}

TEST(SamplingFlagsTest, Defaults) {
  absl::StatusOr<runtime::SamplingParams> p = Parse({});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_tokens, 128);
  EXPECT_FLOAT_EQ(p->temperature, 0.7f);
  EXPECT_FALSE(p->seed.has_value());
}

TEST(SamplingFlagsTest, EveryFlagLandsInItsField) {
  absl::StatusOr<runtime::SamplingParams> p = Parse({"--max-tokens",
                                                     "5",
                                                     "--temperature",
                                                     "0",
                                                     "--top-k",
                                                     "3",
                                                     "--top-p",
                                                     "0.5",
                                                     "--min-p",
                                                     "0.1",
                                                     "--repetition-penalty",
                                                     "1.2",
                                                     "--presence-penalty",
                                                     "0.5",
                                                     "--frequency-penalty",
                                                     "-0.5",
                                                     "--seed",
                                                     "9",
                                                     "--stop",
                                                     "a",
                                                     "--stop",
                                                     "b",
                                                     "--stop-token",
                                                     "7",
                                                     "--ignore-eos"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_tokens, 5);
  EXPECT_EQ(p->temperature, 0.f);
  EXPECT_EQ(p->top_k, 3);
  EXPECT_FLOAT_EQ(p->top_p, 0.5f);
  EXPECT_FLOAT_EQ(p->min_p, 0.1f);
  EXPECT_FLOAT_EQ(p->repetition_penalty, 1.2f);
  EXPECT_FLOAT_EQ(p->presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(p->frequency_penalty, -0.5f);
  EXPECT_EQ(p->seed, 9u);
  EXPECT_EQ(p->stop_strings, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p->stop_token_ids, std::vector<int32_t>{7});
  EXPECT_TRUE(p->ignore_eos);
}

TEST(SamplingFlagsTest, MalformedValuesAreErrors) {
  EXPECT_FALSE(Parse({"--max-tokens", "0"}).ok());
  EXPECT_FALSE(Parse({"--max-tokens", "ten"}).ok());
  EXPECT_FALSE(Parse({"--temperature", "hot"}).ok());
  EXPECT_FALSE(Parse({"--top-k", "-1"}).ok());
  EXPECT_FALSE(Parse({"--seed", "-3"}).ok());
  EXPECT_FALSE(Parse({"--stop-token", "x"}).ok());
  for (const char* bad : {"7", "7=", "=1", "x=1", "7=high", "-1=2", "7=1x"}) {
    absl::StatusOr<runtime::SamplingParams> p = Parse({"--logit-bias", bad});
    EXPECT_FALSE(p.ok()) << bad;
    EXPECT_THAT(std::string(p.status().message()), ::testing::HasSubstr("--logit-bias")) << bad;
  }
  EXPECT_FALSE(Parse({"--logit-bias", "7=1", "--logit-bias", "7=2"}).ok()) << "a token twice";
}

// --logit-bias ID=B, repeated: by token, each once; the range is checked with
// the vocabulary (SamplingParams::Validate).
TEST(SamplingFlagsTest, LogitBiasesAreReadByToken) {
  absl::StatusOr<runtime::SamplingParams> p =
      Parse({"--logit-bias", "50=-100", "--logit-bias", "7=2.5"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->logit_bias, (std::vector<runtime::LogitBias>{{7, 2.5f}, {50, -100.f}}));
}

// --json-schema FILE: read once, compiled for `cohost run` and its text kept
// for the clients to send; an unreadable file, bad JSON or an unsupported
// keyword are errors naming the flag.
TEST(SamplingFlagsTest, AJsonSchemaFileIsReadAndCompiled) {
  const std::string dir = ::testing::TempDir();
  const auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
  };
  const std::string good = write("good.json", R"({"type":"object","properties":{"a":{}}})");
  std::string text;
  absl::StatusOr<runtime::SamplingParams> p = Parse({"--json-schema", good}, &text);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(text, R"({"type":"object","properties":{"a":{}}})") << "the file's text, as it is";
  EXPECT_EQ(p->response_format, runtime::ResponseFormat::kJsonSchema);
  ASSERT_NE(p->json_schema, nullptr);
  EXPECT_TRUE(p->Validate(100).ok());
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--json-schema", dir + "/missing.json"}, "cannot be read"},
           {{"--json-schema", write("bad.json", "{not json")}, "not JSON"},
           {{"--json-schema", write("format.json", R"({"type":"string","format":"uri"})")},
            "format"},
           {{"--json-schema", good, "--json-object"}, "exclude"}}) {
    absl::StatusOr<runtime::SamplingParams> bad = Parse(args);
    ASSERT_FALSE(bad.ok()) << says;
    EXPECT_NE(std::string(bad.status().message()).find(says), std::string::npos) << bad.status();
    EXPECT_NE(std::string(bad.status().message()).find("--json"), std::string::npos)
        << bad.status();
  }
}

}  // namespace
}  // namespace cohost::tools
