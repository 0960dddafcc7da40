// `cohost run` end to end on the default model: --json fields, greedy output
// equal to the transformers reference, streaming, and error exits.

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/run_command.h"

namespace {

using Output = cohost::testing::CommandOutput;

// `with_stderr`: stderr joins `out` (else it is dropped).
Output RunCohost(const std::string& args, bool with_stderr = false) {
  return cohost::testing::RunCommand(std::string(COHOST_BINARY) + " run " + args +
                                     (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

nlohmann::json Reference() {
  std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/forward_reference_smollm2.json");
  return nlohmann::json::parse(f);
}

const std::string kModel = std::string("--model ") + COHOST_DEFAULT_MODEL;

TEST(CliTest, JsonGreedyMatchesReferenceForEachPrompt) {
  nlohmann::json ref = Reference();
  Output o = RunCohost(kModel +
                       " --prompt 'The capital of France is' --prompt 'The capital of France is'"
                       " --temperature 0 --max-tokens 32 --ignore-eos --json"
                       " --cpu-precision reference");  // the exact path transformers computes
  ASSERT_EQ(o.exit_code, 0);
  std::istringstream lines(o.out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const char* key :
         {"prompt_ids", "generated_ids", "text", "finish_reason", "ttft_ms", "tokens_per_second"}) {
      EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["prompt_ids"], ref["cases"][0]["prompt_ids"]);
    EXPECT_EQ(j["generated_ids"], ref["cases"][0]["greedy_ids"]);
    EXPECT_EQ(j["finish_reason"], "length");
    EXPECT_GT(j["tokens_per_second"].get<double>(), 0);
    ++count;
  }
  EXPECT_EQ(count, 2);
}

// The default is the int8 path, as close to transformers as llama.cpp is
// (llamacpp_reference_test): its greedy text starts as the reference's.
TEST(CliTest, TheDefaultPrecisionIsInt8AndABadOneIsRefused) {
  const nlohmann::json ref = Reference();
  Output o = RunCohost(kModel +
                       " --prompt 'The capital of France is' --temperature 0 --max-tokens 4"
                       " --ignore-eos --json");
  ASSERT_EQ(o.exit_code, 0);
  const nlohmann::json j = nlohmann::json::parse(o.out.substr(0, o.out.find('\n')));
  std::vector<int32_t> want = ref["cases"][0]["greedy_ids"];
  want.resize(4);
  EXPECT_EQ(j["generated_ids"].get<std::vector<int32_t>>(), want);
  for (const std::string& flags : {std::string(" --cpu-precision fp8"),
                                   std::string(" --cpu-precision reference --keep-quantized")}) {
    std::string args = kModel + " --prompt hi --max-tokens 1";
    args += flags;
    Output bad = RunCohost(args, /*with_stderr=*/true);
    EXPECT_NE(bad.exit_code, 0) << flags;
    EXPECT_NE(bad.out.find("--cpu-precision"), std::string::npos) << bad.out;
  }
}

// Each KV dtype serves the default model, with the reference's first greedy
// tokens; a dtype the backend cannot keep is refused by name.
TEST(CliTest, EachKvDtypeRunsAndABadOneIsRefused) {
  const nlohmann::json ref = Reference();
  std::vector<int32_t> want = ref["cases"][0]["greedy_ids"];
  want.resize(4);
  for (const char* dtype : {"f32", "f16", "bf16"}) {
    Output o = RunCohost(kModel + " --kv-dtype " + dtype +
                         " --prompt 'The capital of France is' --temperature 0 --max-tokens 4"
                         " --ignore-eos --json");
    ASSERT_EQ(o.exit_code, 0) << dtype;
    const nlohmann::json j = nlohmann::json::parse(o.out.substr(0, o.out.find('\n')));
    EXPECT_EQ(j["generated_ids"].get<std::vector<int32_t>>(), want) << dtype;
  }
  for (const std::string& flags :
       {std::string(" --kv-dtype fp8"), std::string(" --kv-dtype f16 --device cuda")}) {
    std::string args = kModel + " --prompt hi --max-tokens 1";
    args += flags;
    Output bad = RunCohost(args, /*with_stderr=*/true);
    EXPECT_NE(bad.exit_code, 0) << flags;
    EXPECT_NE(bad.out.find("--kv-dtype"), std::string::npos) << flags << ": " << bad.out;
  }
}

TEST(CliTest, StreamsPlainTextAndChatWorks) {
  Output o = RunCohost(kModel + " --prompt 'Name a color.' --chat --temperature 0 --max-tokens 12");
  ASSERT_EQ(o.exit_code, 0);
  EXPECT_FALSE(o.out.empty());
  EXPECT_EQ(o.out.find("<|im_"), std::string::npos) << o.out;
}

TEST(CliTest, ErrorsExitNonZero) {
  EXPECT_EQ(RunCohost("").exit_code, 2);  // no flags: usage
  EXPECT_NE(RunCohost(kModel + " --prompt hi --top-p 7").exit_code, 0);
  EXPECT_NE(RunCohost("--model /nonexistent.gguf --prompt hi").exit_code, 0);
  EXPECT_NE(RunCohost(kModel + " --prompt hi --device tpu").exit_code, 0);
  // A system prompt without --chat would be dropped: refused, as by generate.
  const Output system = RunCohost(kModel + " --prompt hi --system be-brief", true);
  EXPECT_NE(system.exit_code, 0);
  EXPECT_NE(system.out.find("--system needs --chat"), std::string::npos) << system.out;
}

}  // namespace
