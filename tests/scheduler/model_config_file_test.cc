// The `cohost serve --config` parser: every field and the defaults, the JSON
// form, each error with its file:line and field path, --model NAME=PATH, file
// reading, and that truncated and mutated files never crash it.

#include "scheduler/model_config_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::string_view kFile = "models.yaml";

// Every field once; the second model takes the defaults.
constexpr std::string_view kFullYaml = R"(# Two models on one machine.
defaults:
  keep_alive_s: 600
  ttft_target_ms: 800
  ttft_admit_margin_pct: 50
  priority: 5
models:
  - name: smol
    path: models/SmolLM2-135M-Instruct.Q4_1.gguf
    load: lazy
    keep_alive_s: 300
    kv_floor_mb: 64
    kv_cap_mb: 512
    ttft_target_ms: 1000
    tpot_target_ms: 150
    ttft_admit_margin_pct: 0
    priority: -3
    device: cpu
    chat_template: templates/chatml.jinja
  - name: big
    path: "/srv/models/big model.gguf"
    device: cuda:1
)";

constexpr std::string_view kFullJson = R"({
  "defaults": {"keep_alive_s": 600, "ttft_target_ms": 800, "ttft_admit_margin_pct": 50,
               "priority": 5},
  "models": [
    {
      "name": "smol",
      "path": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
      "load": "lazy",
      "keep_alive_s": 300,
      "kv_floor_mb": 64,
      "kv_cap_mb": 512,
      "ttft_target_ms": 1000,
      "tpot_target_ms": 150,
      "ttft_admit_margin_pct": 0,
      "priority": -3,
      "device": "cpu",
      "chat_template": "templates/chatml.jinja"
    },
    {"name": "big", "path": "/srv/models/big model.gguf", "device": "cuda:1"}
  ]
}
)";

std::vector<ModelSpec> FullSpecs() {
  ModelSpec smol;
  smol.name = "smol";
  smol.path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  smol.load = LoadPolicy::kLazy;
  smol.keep_alive = std::chrono::seconds(300);
  smol.kv_floor_bytes = int64_t{64} << 20;
  smol.kv_cap_bytes = int64_t{512} << 20;
  smol.ttft_target = std::chrono::milliseconds(1000);
  smol.tpot_target = std::chrono::milliseconds(150);
  smol.ttft_admit_margin_pct = 0;
  smol.priority = -3;
  smol.device = "cpu";
  smol.chat_template = "templates/chatml.jinja";
  ModelSpec big;
  big.name = "big";
  big.path = "/srv/models/big model.gguf";
  big.load = LoadPolicy::kStartup;
  big.keep_alive = std::chrono::seconds(600);
  big.ttft_target = std::chrono::milliseconds(800);
  big.tpot_target = std::chrono::milliseconds(200);
  big.ttft_admit_margin_pct = 50;
  big.priority = 5;
  big.device = "cuda:1";
  return {smol, big};
}

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(text, kFile);
  if (specs.ok()) return "(parsed)";
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument) << specs.status();
  return std::string(specs.status().message());
}

TEST(ModelConfigFileTest, ParsesEveryFieldAndAppliesDefaults) {
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(kFullYaml, kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  const std::vector<ModelSpec> want = FullSpecs();
  EXPECT_EQ((*specs)[0], want[0]);
  EXPECT_EQ((*specs)[1], want[1]);
}

TEST(ModelConfigFileTest, JsonFormParsesTheSame) {
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(kFullJson, "models.json");
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(*specs, FullSpecs());
}

TEST(ModelConfigFileTest, MinimalModelGetsTheStructDefaults) {
  absl::StatusOr<std::vector<ModelSpec>> specs =
      ParseModelConfig("models:\n  - {name: a, path: a.gguf}\n", kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ModelSpec want;
  want.name = "a";
  want.path = "a.gguf";
  EXPECT_EQ(*specs, std::vector<ModelSpec>{want});
}

TEST(ModelConfigFileTest, ForeverKeepAlive) {
  constexpr std::string_view kText = R"(
defaults:
  keep_alive_s: forever
models:
  - {name: a, path: a.gguf}
  - {name: b, path: b.gguf, keep_alive_s: 0}
  - {name: c, path: c.gguf, keep_alive_s: "forever"}
)";
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(kText, kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 3u);
  EXPECT_EQ((*specs)[0].keep_alive, std::nullopt);
  EXPECT_EQ((*specs)[1].keep_alive, std::chrono::seconds(0));
  EXPECT_EQ((*specs)[2].keep_alive, std::nullopt);
}

TEST(ModelConfigFileTest, DefaultsMayFollowModelsAndBeEmpty) {
  absl::StatusOr<std::vector<ModelSpec>> specs =
      ParseModelConfig("models:\n  - {name: a, path: a.gguf}\ndefaults:\n  priority: 7\n", kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].priority, 7);

  specs =
      ParseModelConfig("defaults:\n  # nothing yet\nmodels:\n  - {name: a, path: a.gguf}\n", kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].priority, 0);
}

TEST(ModelConfigFileTest, LimitsAreInclusive) {
  constexpr std::string_view kText = R"(models:
  - name: a
    path: a.gguf
    kv_floor_mb: 1099511627776
    kv_cap_mb: 0
    ttft_target_ms: 1
    tpot_target_ms: 86400000
    priority: -1000
    device: cuda:63
    keep_alive_s: 1000000000
  - {name: b, path: b.gguf, priority: 1000, device: cuda:0, kv_floor_mb: 5, kv_cap_mb: 5}
)";
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(kText, kFile);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].kv_floor_bytes, int64_t{1} << 60);
  EXPECT_EQ((*specs)[0].priority, -1000);
  EXPECT_EQ((*specs)[0].device, "cuda:63");
  EXPECT_EQ((*specs)[1].priority, 1000);
  EXPECT_EQ((*specs)[1].kv_floor_bytes, (*specs)[1].kv_cap_bytes);
}

struct ErrorCase {
  std::string_view text;
  std::string_view message;
};

TEST(ModelConfigFileTest, ErrorsNameFileLineAndField) {
  const ErrorCase cases[] = {
      // The top level.
      {"", "models.yaml:1: expected a map with a models list, got an empty document"},
      {"# only a comment\n",
       "models.yaml:1: expected a map with a models list, got an empty document"},
      {"- a\n- b\n", "models.yaml:1: expected a map with a models list, got a list"},
      {"hello\n", "models.yaml:1: expected a map with a models list, got \"hello\""},
      {"modles: []\n", "models.yaml:1: modles: unknown field; did you mean models?"},
      {"defaults: {}\n", "models.yaml:1: models: missing; expected a non-empty list of models"},
      {"\nmodels: []\n",
       "models.yaml:2: models: expected a non-empty list of models, got an empty list"},
      {"models:\n", "models.yaml:1: models: expected a non-empty list of models, got null"},
      {"models:\n  name: a\n",
       "models.yaml:1: models: expected a non-empty list of models, got a map"},
      {"models: [{name: a, path: a}]\nmodels: [{name: b, path: b}]\n",
       "models.yaml:2: models: set twice (first on line 1)"},
      {"models:\n  - {name: a, path: a}\n---\nmodels: []\n",
       "models.yaml:3: expected one YAML document, got a second one"},
      {"models:\n  - {name: a, path: a}\n---\n",
       "models.yaml:3: expected one YAML document, got a second one"},
      // yaml-cpp 0.7's LoadAll loops forever on a trailing comma.
      {"{\"models\": [{\"name\": \"a\", \"path\": \"a\"}]},\n",
       "models.yaml:1: expected one YAML document, got a second one"},
      {"{},", "models.yaml:1: expected one YAML document, got a second one"},
      // A model's shape and required fields.
      {"models:\n  - smol\n",
       "models.yaml:2: models[0]: expected a map of model fields, got \"smol\""},
      {"models:\n  - path: a.gguf\n", "models.yaml:2: models[0]: missing name"},
      {"models:\n  - name: a\n", "models.yaml:2: models[0]: missing path"},
      {"models:\n  - name: a\n    path: a\n    path: b\n",
       "models.yaml:4: models[0].path: set twice (first on line 3)"},
      {"models:\n  - name: a\n    path: a\n    ? [x]\n    : 1\n",
       "models.yaml:4: models[0]: expected field names, got a list as a key"},
      // Unknown fields, with a suggestion when one is near.
      {"models:\n  - name: a\n    path: a\n    keep_alive: 5\n",
       "models.yaml:4: models[0].keep_alive: unknown field; did you mean keep_alive_s?"},
      {"models:\n  - name: a\n    path: a\n    kv_floor: 5\n",
       "models.yaml:4: models[0].kv_floor: unknown field; did you mean kv_floor_mb?"},
      {"models:\n  - name: a\n    path: a\n    prority: 5\n",
       "models.yaml:4: models[0].prority: unknown field; did you mean priority?"},
      {"models:\n  - name: a\n    path: a\n    colour: red\n",
       "models.yaml:4: models[0].colour: unknown field"},
      {"models:\n  - name: a\n    path: a\n    \"we\\x01ird\": red\n",
       "models.yaml:4: models[0].\"we\\x01ird\": unknown field"},
      // Names and paths.
      {"models:\n  - name: a b\n    path: a\n",
       "models.yaml:2: models[0].name: the model name \"a b\" may only contain letters, digits, "
       "'.', '_' and '-'"},
      {"models:\n  - name: \"\"\n    path: a\n",
       "models.yaml:2: models[0].name: the model name is empty"},
      {"models:\n  - name: [a]\n    path: a\n",
       "models.yaml:2: models[0].name: expected a string, got a list"},
      {"models:\n  - name:\n    path: a\n",
       "models.yaml:2: models[0].name: expected a string, got null"},
      {"models:\n  - name: a\n    path: \"\"\n",
       "models.yaml:3: models[0].path: the path is empty"},
      {"models:\n  - name: a\n    path: \"a\\0b\"\n",
       "models.yaml:3: models[0].path: the path contains a NUL byte"},
      {"models:\n  - name: a\n    path: {p: 1}\n",
       "models.yaml:3: models[0].path: expected a string, got a map"},
      {"models:\n  - name: a\n    path: a\n    chat_template: \"\"\n",
       "models.yaml:4: models[0].chat_template: the path is empty"},
      {"defaults:\n  chat_template: t.jinja\nmodels:\n  - name: a\n    path: a\n",
       "models.yaml:2: defaults.chat_template: not allowed in defaults; set it per model"},
      // Integers: the brief's example first.
      {"models:\n  - name: a\n    path: a\n    load: lazy\n  - name: b\n    path: b\n"
       "    kv_floor_mb: abc\n",
       "models.yaml:7: models[1].kv_floor_mb: expected an integer >= 0, got \"abc\""},
      {"models:\n  - {name: a, path: a, kv_cap_mb: 1.5}\n",
       "models.yaml:2: models[0].kv_cap_mb: expected an integer >= 0, got \"1.5\""},
      {"models:\n  - {name: a, path: a, kv_cap_mb: 1e3}\n",
       "models.yaml:2: models[0].kv_cap_mb: expected an integer >= 0, got \"1e3\""},
      {"models:\n  - {name: a, path: a, kv_cap_mb: -1}\n",
       "models.yaml:2: models[0].kv_cap_mb: expected an integer >= 0, got \"-1\""},
      {"models:\n  - {name: a, path: a, kv_cap_mb: 1099511627777}\n",
       "models.yaml:2: models[0].kv_cap_mb: expected an integer >= 0, at most 1099511627776, got "
       "\"1099511627777\""},
      {"models:\n  - {name: a, path: a, kv_floor_mb: 99999999999999999999999}\n",
       "models.yaml:2: models[0].kv_floor_mb: expected an integer >= 0, at most 1099511627776, got "
       "\"99999999999999999999999\""},
      {"models:\n  - {name: a, path: a, kv_floor_mb: 0x10}\n",
       "models.yaml:2: models[0].kv_floor_mb: expected an integer >= 0, got \"0x10\""},
      {"models:\n  - {name: a, path: a, priority: 010}\n",
       "models.yaml:2: models[0].priority: expected an integer in [-1000, 1000], got \"010\""},
      {"models:\n  - {name: a, path: a, priority: [1]}\n",
       "models.yaml:2: models[0].priority: expected an integer in [-1000, 1000], got a list"},
      {"models:\n  - {name: a, path: a, priority: 1001}\n",
       "models.yaml:2: models[0].priority: expected an integer in [-1000, 1000], at most 1000, got "
       "\"1001\""},
      {"models:\n  - {name: a, path: a, priority: -99999999999999999999}\n",
       "models.yaml:2: models[0].priority: expected an integer in [-1000, 1000], got "
       "\"-99999999999999999999\""},
      {"models:\n  - {name: a, path: a, priority: +7, kv_cap_mb: 18446744073709551616}\n",
       "models.yaml:2: models[0].kv_cap_mb: expected an integer >= 0, at most 1099511627776, got "
       "\"18446744073709551616\""},
      {"models:\n  - {name: a, path: a, priority: true}\n",
       "models.yaml:2: models[0].priority: expected an integer in [-1000, 1000], got \"true\""},
      {"models:\n  - {name: a, path: a, ttft_target_ms: \"5\"}\n",
       "models.yaml:2: models[0].ttft_target_ms: expected an integer >= 1, got \"5\" (quoted, so a "
       "string)"},
      {"models:\n  - {name: a, path: a, ttft_admit_margin_pct: -1}\n",
       "models.yaml:2: models[0].ttft_admit_margin_pct: expected an integer in [0, 10000], got "
       "\"-1\""},
      {"models:\n  - {name: a, path: a, ttft_target_ms: 0}\n",
       "models.yaml:2: models[0].ttft_target_ms: expected an integer >= 1, got \"0\""},
      {"models:\n  - name: a\n    path: a\n    tpot_target_ms:\n",
       "models.yaml:4: models[0].tpot_target_ms: expected an integer >= 1, got null"},
      {"models:\n  - {name: a, path: a, keep_alive_s: never}\n",
       "models.yaml:2: models[0].keep_alive_s: expected an integer >= 0 or \"forever\", got "
       "\"never\""},
      {"models:\n  - {name: a, path: a, keep_alive_s: 1000000001}\n",
       "models.yaml:2: models[0].keep_alive_s: expected an integer >= 0 or \"forever\", at most "
       "1000000000, got \"1000000001\""},
      // Enums.
      {"models:\n  - {name: a, path: a, load: eager}\n",
       "models.yaml:2: models[0].load: expected startup or lazy, got \"eager\""},
      {"models:\n  - {name: a, path: a, device: gpu}\n",
       "models.yaml:2: models[0].device: expected cpu or cuda:N with N in [0, 63], got \"gpu\""},
      {"models:\n  - {name: a, path: a, device: cuda:64}\n",
       "models.yaml:2: models[0].device: expected cpu or cuda:N with N in [0, 63], got "
       "\"cuda:64\""},
      {"models:\n  - {name: a, path: a, device: cuda:01}\n",
       "models.yaml:2: models[0].device: expected cpu or cuda:N with N in [0, 63], got "
       "\"cuda:01\""},
      {"models:\n  - {name: a, path: a, device: cuda:-1}\n",
       "models.yaml:2: models[0].device: expected cpu or cuda:N with N in [0, 63], got "
       "\"cuda:-1\""},
      {"models:\n  - name: a\n    path: a\n    device: \"cuda:\"\n",
       "models.yaml:4: models[0].device: expected cpu or cuda:N with N in [0, 63], got \"cuda:\""},
      // Floor above cap: at the model's own kv_floor_mb, else its kv_cap_mb.
      {"models:\n  - name: a\n    path: a\n    kv_cap_mb: 512\n    kv_floor_mb: 600\n",
       "models.yaml:5: models[0]: kv_floor_mb (600) is above kv_cap_mb (512)"},
      {"defaults:\n  kv_floor_mb: 600\nmodels:\n  - name: a\n    path: a\n    kv_cap_mb: 512\n",
       "models.yaml:6: models[0]: kv_floor_mb (600) is above kv_cap_mb (512)"},
      {"defaults:\n  kv_floor_mb: 600\n  kv_cap_mb: 512\nmodels:\n  - name: a\n    path: a\n",
       "models.yaml:5: models[0]: kv_floor_mb (600) is above kv_cap_mb (512)"},
      // Defaults.
      {"defaults:\n  device: cpu\nmodels:\n  - {name: a, path: a}\n",
       "models.yaml:2: defaults.device: not allowed in defaults; set it per model"},
      {"defaults:\n  name: x\nmodels:\n  - {name: a, path: a}\n",
       "models.yaml:2: defaults.name: not allowed in defaults; set it per model"},
      {"defaults:\n  keepalive_s: 3\nmodels:\n  - {name: a, path: a}\n",
       "models.yaml:2: defaults.keepalive_s: unknown field; did you mean keep_alive_s?"},
      {"defaults: [1]\nmodels:\n  - {name: a, path: a}\n",
       "models.yaml:1: defaults: expected a map of model fields, got a list"},
      {"defaults:\n  priority: x\nmodels:\n  - {name: a, path: a}\n",
       "models.yaml:2: defaults.priority: expected an integer in [-1000, 1000], got \"x\""},
      // Aliases can make cycles; nothing walks into them.
      {"models: &m [*m]\n", "models.yaml:1: models[0]: expected a map of model fields, got a list"},
      // Bytes YAML forbids, which yaml-cpp would drop or misreport.
      {"models:\n  - {name: \"a\x04\", path: a}\n",
       "models.yaml:2: invalid YAML: control byte 0x04 at column 14"},
      {std::string_view("models:\n\0", 9),
       "models.yaml:2: invalid YAML: control byte 0x00 at column 1"},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(ErrorOf(c.text), c.message);
  }
}

TEST(ModelConfigFileTest, DuplicateNamesNameBothLines) {
  EXPECT_EQ(ErrorOf(R"(models:
  - name: smol
    path: a.gguf
  - name: big
    path: b.gguf
  - path: c.gguf
    name: smol
)"),
            "models.yaml:7: models[2].name: duplicate model name \"smol\" (first on line 2)");
}

TEST(ModelConfigFileTest, SyntaxErrorsCarryYamlCppsLine) {
  EXPECT_THAT(ErrorOf("models:\n  - name: a\n    path: [a\n  - name: b\n"),
              StartsWith("models.yaml:"));
  EXPECT_THAT(ErrorOf("models:\n  - name: a\n    path: [a\n  - name: b\n"),
              HasSubstr(": invalid YAML: "));
  EXPECT_EQ(ErrorOf("models:\n  - name: a\n   path: b\n"),
            "models.yaml:3: invalid YAML: end of sequence not found (column 4)");
  EXPECT_EQ(ErrorOf("{\"models\": [}\n"),
            "models.yaml:1: invalid YAML: illegal flow end (column 13)");
}

TEST(ModelConfigFileTest, DeepNestingIsAnErrorNotACrash) {
  EXPECT_EQ(ErrorOf(std::string(100000, '[')), "models.yaml:1: invalid YAML: nested too deeply");
  std::string blocks = "models:\n";
  for (int i = 1; i < 1000; ++i) blocks += std::string(i, ' ') + "- \n";
  EXPECT_THAT(ErrorOf(blocks), HasSubstr("invalid YAML"));
}

TEST(ModelConfigFileTest, OversizedTextIsRefused) {
  const std::string text(kMaxModelConfigBytes + 1, ' ');
  EXPECT_EQ(ErrorOf(text), "models.yaml: the file is 1048577 bytes; at most 1048576 are allowed");
}

TEST(ModelConfigFileTest, ModelSpecFromFlag) {
  absl::StatusOr<ModelSpec> spec = ModelSpecFromFlag("smol=models/smol.gguf");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ModelSpec want;
  want.name = "smol";
  want.path = "models/smol.gguf";
  EXPECT_EQ(*spec, want);

  spec = ModelSpecFromFlag("smol=/a=b.gguf");  // names have no '=', paths may
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "smol");
  EXPECT_EQ(spec->path, "/a=b.gguf");

  const ErrorCase bad[] = {
      {"smol", "--model \"smol\": expected NAME=PATH"},
      {"", "--model \"\": expected NAME=PATH"},
      {"=a.gguf", "--model \"=a.gguf\": the model name is empty"},
      {"a b=a.gguf",
       "--model \"a b=a.gguf\": the model name \"a b\" may only contain letters, digits, '.', '_' "
       "and '-'"},
      {"smol=", "--model \"smol=\": the path after '=' is empty"},
      {std::string_view("smol=a\0b", 8),
       "--model \"smol=a\\x00\\x62\": the path contains a NUL byte"},
  };
  for (const ErrorCase& c : bad) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<ModelSpec> got = ModelSpecFromFlag(c.text);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(got.status().message()), c.message);
  }
}

std::string WriteTempFile(const std::string& name, std::string_view content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  return path;
}

// LoadServeConfigFile's models.
absl::StatusOr<std::vector<ModelSpec>> LoadModels(const std::string& path) {
  absl::StatusOr<ServeConfig> config = LoadServeConfigFile(path);
  if (!config.ok()) return config.status();
  return config->models;
}

TEST(ModelConfigFileTest, LoadServeConfigFileReadsAndNamesTheFile) {
  const std::string path = WriteTempFile("cohost_models.yaml", kFullYaml);
  absl::StatusOr<std::vector<ModelSpec>> specs = LoadModels(path);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(*specs, FullSpecs());

  const std::string bad = WriteTempFile("cohost_bad_models.yaml", "models:\n  - name: a\n");
  specs = LoadModels(bad);
  ASSERT_FALSE(specs.ok());
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(specs.status().message()), bad + ":2: models[0]: missing path");

  // Exactly the limit is still read.
  std::string padded(kFullYaml);
  padded += "#";
  padded.resize(kMaxModelConfigBytes, '#');
  const std::string full = WriteTempFile("cohost_full_models.yaml", padded);
  specs = LoadModels(full);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(*specs, FullSpecs());

  for (const std::string& p : {path, bad, full}) std::remove(p.c_str());
}

TEST(ModelConfigFileTest, LoadServeConfigFileErrors) {
  const std::string missing = ::testing::TempDir() + "/cohost_no_such_models.yaml";
  absl::StatusOr<std::vector<ModelSpec>> specs = LoadModels(missing);
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(specs.status().message()), HasSubstr(missing));

  const std::string big =
      WriteTempFile("cohost_big_models.yaml", std::string(kMaxModelConfigBytes + 1, '#'));
  specs = LoadModels(big);
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(specs.status().message()),
            big + ": the file is 1048577 bytes; at most 1048576 are allowed");
  std::remove(big.c_str());

  specs = LoadModels(::testing::TempDir());
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(specs.status().message()), HasSubstr("not a regular file"));

  if (::geteuid() != 0) {  // root reads anything
    const std::string locked = WriteTempFile("cohost_locked_models.yaml", kFullYaml);
    ASSERT_EQ(::chmod(locked.c_str(), 0), 0);
    specs = LoadModels(locked);
    EXPECT_EQ(specs.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(specs.status().message()), HasSubstr(locked));
    std::remove(locked.c_str());
  }
}

// What the fuzz loops accept: a parse, or INVALID_ARGUMENT naming the file.
void ExpectOkOrInvalid(std::string_view text) {
  absl::StatusOr<std::vector<ModelSpec>> specs = ParseModelConfig(text, kFile);
  if (specs.ok()) return;
  ASSERT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument)
      << specs.status() << "\n--- input ---\n"
      << text;
  ASSERT_THAT(std::string(specs.status().message()), StartsWith("models.yaml"));
}

TEST(ModelConfigFileTest, TenantsStartFromTheirDefaults) {
  constexpr std::string_view kText = R"(
tenant_defaults:
  max_streams: 32
  tokens_per_minute: 6000
models:
  - {name: a, path: a}
tenants:
  - name: alice
    weight: 2.5
    tokens_per_minute: 0
    max_queued_prompt_tokens: 50000
    max_priority: 10
  - {name: "bob the builder", max_streams: 1, max_priority: -2}
)";
  absl::StatusOr<ServeConfig> c = ParseServeConfig(kText, kFile);
  ASSERT_TRUE(c.ok()) << c.status();
  TenantLimits defaults;
  defaults.max_streams = 32;
  defaults.tokens_per_minute = 6000;
  EXPECT_EQ(c->tenants.defaults, defaults);
  TenantLimits alice = defaults;
  alice.weight = 2.5;
  alice.tokens_per_minute = 0;
  alice.max_queued_prompt_tokens = 50000;
  alice.max_priority = 10;
  TenantLimits bob = defaults;
  bob.max_streams = 1;
  bob.max_priority = -2;
  EXPECT_EQ(c->tenants.named,
            (std::map<std::string, TenantLimits>{{"alice", alice}, {"bob the builder", bob}}));
  EXPECT_EQ(c->models.size(), 1u);
  // Without the sections: no budgets, weight 1.
  c = ParseServeConfig("models: [{name: a, path: a}]\n", kFile);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->tenants, TenantPolicy{});
}

TEST(ModelConfigFileTest, TenantErrorsNameFileLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"models: [{name: a, path: a}]\ntenants: [{weight: 2}]\n",
       "models.yaml:2: tenants[0]: missing name"},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, weight: 0}]\n",
       "models.yaml:2: tenants[0].weight: expected a number above 0, at most 1000, got \"0\""},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, weight: -1}]\n",
       "models.yaml:2: tenants[0].weight: expected a number above 0, at most 1000, got \"-1\""},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, weight: \"2\"}]\n",
       "models.yaml:2: tenants[0].weight: expected a number above 0, at most 1000, got \"2\""},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, weight: .nan}]\n",
       "models.yaml:2: tenants[0].weight: expected a number above 0, at most 1000, got \".nan\""},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, max_stream: 2}]\n",
       "models.yaml:2: tenants[0].max_stream: unknown field; did you mean max_streams?"},
      {"models: [{name: a, path: a}]\ntenants: [{name: x, tokens_per_minute: -5}]\n",
       "models.yaml:2: tenants[0].tokens_per_minute: expected an integer >= 0 (0: no limit), got "
       "\"-5\""},
      {"models: [{name: a, path: a}]\ntenants: [{name: \"\"}]\n",
       "models.yaml:2: tenants[0].name: the name is empty"},
      {"models: [{name: a, path: a}]\ntenants: [{name: \"a\\tb\"}]\n",
       "models.yaml:2: tenants[0].name: a tenant name must be UTF-8 without control characters"},
      {"models: [{name: a, path: a}]\ntenants:\n  - {name: x}\n  - {name: x}\n",
       "models.yaml:4: tenants[1].name: duplicate tenant name \"x\" (first on line 3)"},
      {"models: [{name: a, path: a}]\ntenants: {name: x}\n",
       "models.yaml:2: tenants: expected a list of tenants, got a map"},
      {"models: [{name: a, path: a}]\ntenants: [x]\n",
       "models.yaml:2: tenants[0]: expected a map of tenant fields, got \"x\""},
      {"models: [{name: a, path: a}]\ntenant_defaults: {name: x}\n",
       "models.yaml:2: tenant_defaults.name: not allowed in tenant_defaults"},
      {"models: [{name: a, path: a}]\ntenant: []\n",
       "models.yaml:2: tenant: unknown field; did you mean tenants?"},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(ErrorOf(text), want) << text;
}

TEST(ModelConfigFileTest, EveryPrefixParsesOrFailsCleanly) {
  for (std::string_view text : {kFullYaml, kFullJson}) {
    for (size_t n = 0; n <= text.size(); ++n) {
      ASSERT_NO_FATAL_FAILURE(ExpectOkOrInvalid(text.substr(0, n))) << "prefix " << n;
    }
  }
}

TEST(ModelConfigFileTest, RandomMutationsParseOrFailCleanly) {
  // Bytes that mean something to YAML, so that mutations reach past the scanner.
  constexpr std::string_view kSpecial = "[]{}:-,&*!|>'\"#%@`?\n\t \\~0123456789";
  std::mt19937 rng(20240611);
  for (std::string_view base : {kFullYaml, kFullJson}) {
    for (int round = 0; round < 300; ++round) {
      std::string text(base);
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !text.empty(); ++e) {
        const size_t at = rng() % text.size();
        const char byte =
            rng() % 2 == 0 ? kSpecial[rng() % kSpecial.size()] : static_cast<char>(rng() % 256);
        switch (rng() % 3) {
          case 0:
            text[at] = byte;
            break;
          case 1:
            text.insert(at, 1, byte);
            break;
          default:
            text.erase(at, 1 + rng() % 8);
            break;
        }
      }
      ASSERT_NO_FATAL_FAILURE(ExpectOkOrInvalid(text)) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace cohost::scheduler
