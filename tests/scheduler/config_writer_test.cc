// FormatServeConfig is ParseServeConfig's inverse: every field, the defaults
// left out, "forever", optional fields unset, odd paths and tenant names, a
// listed tenant's zero over a nonzero default, and tenant weights that are
// not whole numbers all read back equal.

#include "scheduler/config_writer.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/model_config_file.h"

namespace cohost::scheduler {
namespace {

ServeConfig RoundTrip(const ServeConfig& config) {
  const std::string text = FormatServeConfig(config);
  absl::StatusOr<ServeConfig> back = ParseServeConfig(text, "written.yaml");
  EXPECT_TRUE(back.ok()) << back.status() << "\n" << text;
  return back.ok() ? *back : ServeConfig{};
}

TEST(ConfigWriterTest, WhatIsWrittenReadsBackEqual) {
  constexpr std::string_view kYaml = R"(
defaults:
  keep_alive_s: 600
  priority: 5
models:
  - name: smol
    path: models/SmolLM2-135M-Instruct.Q4_1.gguf
    load: lazy
    keep_alive_s: forever
    kv_floor_mb: 64
    kv_cap_mb: 512
    ttft_target_ms: 800
    tpot_target_ms: 150
    ttft_admit_margin_pct: 0
    priority: -3
    device: cuda:1
    chat_template: "templates/a \"quoted\" one.jinja"
  - name: plain
    path: "/srv/models/a file: with \"quotes\" and \u00e9.gguf"
tenant_defaults:
  max_streams: 32
  weight: 0.1
tenants:
  - name: alice
    weight: 2.5
    tokens_per_minute: 100000
    max_queued_prompt_tokens: 50000
    max_priority: 7
  - name: "bob: the \"second\""
    max_streams: 0
)";
  absl::StatusOr<ServeConfig> parsed = ParseServeConfig(kYaml, "models.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->models.size(), 2u);
  ASSERT_EQ(parsed->tenants.named.size(), 2u);
  EXPECT_EQ(RoundTrip(*parsed), *parsed) << FormatServeConfig(*parsed);
}

// A small weight is written with an exponent ("1.0000000000000001e-05"), and
// reads back (the reader took digits and a point only, so the writer's file
// was refused).
TEST(ConfigWriterTest, NumbersWithAnExponentReadBack) {
  absl::StatusOr<ServeConfig> parsed = ParseServeConfig(
      "models: [{name: a, path: a}]\ntenants: [{name: t, weight: 1e-3}, {name: u, weight: "
      "0.00001}]\n",
      "models.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tenants.named.at("t").weight, 1e-3);
  EXPECT_EQ(RoundTrip(*parsed), *parsed) << FormatServeConfig(*parsed);
  // Signs, bare exponents and hex stay refused; so does a weight that would
  // make the fair-share counters infinite.
  for (const char* bad : {"-1e-5", "1e", "e5", "0x10", "1e5.5", "1.5e+", "1e-300"}) {
    EXPECT_FALSE(ParseServeConfig(absl::StrCat("models: [{name: a, path: a}]\ntenants: [{name: t, "
                                               "weight: ",
                                               bad, "}]\n"),
                                  "models.yaml")
                     .ok())
        << bad;
  }
}

TEST(ConfigWriterTest, ABareModelListWritesOnlyNamesAndPaths) {
  ServeConfig config;
  absl::StatusOr<ModelSpec> spec = ModelSpecFromFlag("m0=models/m0.gguf");
  ASSERT_TRUE(spec.ok()) << spec.status();
  config.models.push_back(*spec);
  const std::string text = FormatServeConfig(config);
  EXPECT_EQ(text, "models:\n  - name: m0\n    path: \"models/m0.gguf\"\n");
  EXPECT_EQ(RoundTrip(config), config);
}

}  // namespace
}  // namespace cohost::scheduler
