// Parses sampling flags into runtime::SamplingParams.

#include "tools/common/sampling_flags.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/json_schema.h"
#include "tools/common/json_file.h"

namespace cohost::tools {

std::vector<FlagSpec> SamplingFlagSpecs() {
  return {
      {"max-tokens", "N", "tokens to generate at most (default 128)"},
      {"temperature", "T", "0 = greedy (default 0.7)"},
      {"top-k", "K", "keep the K most likely tokens; 0 = off (default)"},
      {"top-p", "P", "nucleus sampling mass in (0, 1] (default 0.95)"},
      {"min-p", "P", "drop tokens below P x the top probability (default 0)"},
      {"repetition-penalty", "R", "divide logits of seen tokens by R (default 1)"},
      {"presence-penalty", "X", "OpenAI presence penalty in [-2, 2] (default 0)"},
      {"frequency-penalty", "X", "OpenAI frequency penalty in [-2, 2] (default 0)"},
      {"seed", "S", "random seed; same seed, same output"},
      {"stop", "TEXT", "stop when this text is generated", /*repeated=*/true},
      {"stop-token", "ID", "stop when this token id is generated", /*repeated=*/true},
      {"logit-bias", "ID=B", "add B in [-100, 100] to token ID's logit (-100 bans it)",
       /*repeated=*/true},
      {"ignore-eos", "", "keep generating past end-of-sequence tokens"},
      {"json-object", "", "the output is a JSON object, held to JSON token by token"},
      {"json-schema", "FILE", "the output is held to the JSON Schema in FILE"},
  };
}

namespace {

// A flag's token id: a decimal in [0, 2^31).
std::optional<int32_t> TokenId(const std::string& text) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0 || v > std::numeric_limits<int32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<int32_t>(v);
}

// The text of --json-schema's file, if the flag is given (ReadFlagFile).
absl::StatusOr<std::optional<std::string>> JsonSchemaText(const ParsedArgs& args) {
  const std::optional<std::string> path = args.Get("json-schema");
  if (!path) return std::nullopt;
  return ReadFlagFile("--json-schema", *path);
}

}  // namespace

absl::StatusOr<runtime::SamplingParams> SamplingParamsFromArgs(const ParsedArgs& args,
                                                               std::string* json_schema_text) {
  runtime::SamplingParams p;
  p.max_tokens = 128;
  p.temperature = 0.7f;
  p.top_p = 0.95f;

  auto set_float = [&](const char* name, float* out) -> absl::Status {
    absl::StatusOr<std::optional<double>> v = args.GetDouble(name);
    if (!v.ok()) return v.status();
    if (v->has_value()) *out = static_cast<float>(**v);
    return absl::OkStatus();
  };
  for (auto [name, field] : {std::pair{"temperature", &p.temperature},
                             {"top-p", &p.top_p},
                             {"min-p", &p.min_p},
                             {"repetition-penalty", &p.repetition_penalty},
                             {"presence-penalty", &p.presence_penalty},
                             {"frequency-penalty", &p.frequency_penalty}}) {
    RETURN_IF_ERROR(set_float(name, field));
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  absl::StatusOr<std::optional<int64_t>> max_tokens = args.GetInt("max-tokens", 1, kMaxInt);
  if (!max_tokens.ok()) return max_tokens.status();
  if (max_tokens->has_value()) p.max_tokens = static_cast<int32_t>(**max_tokens);
  absl::StatusOr<std::optional<int64_t>> top_k = args.GetInt("top-k", 0, kMaxInt);
  if (!top_k.ok()) return top_k.status();
  if (top_k->has_value()) p.top_k = static_cast<int32_t>(**top_k);
  absl::StatusOr<std::optional<int64_t>> seed =
      args.GetInt("seed", 0, std::numeric_limits<int64_t>::max());
  if (!seed.ok()) return seed.status();
  if (seed->has_value()) p.seed = static_cast<uint64_t>(**seed);
  for (const std::string& s : args.All("stop")) p.stop_strings.push_back(s);
  for (const std::string& id : args.All("stop-token")) {
    const std::optional<int32_t> token = TokenId(id);
    if (!token) {
      return absl::InvalidArgumentError("--stop-token: expected a token id, got '" + id + "'");
    }
    p.stop_token_ids.push_back(*token);
  }
  for (const std::string& entry : args.All("logit-bias")) {
    const size_t eq = entry.find('=');
    const std::optional<int32_t> token = TokenId(entry.substr(0, eq));
    char* bias_end = nullptr;
    const double bias =
        eq == std::string::npos ? 0 : std::strtod(entry.c_str() + eq + 1, &bias_end);
    if (eq == std::string::npos || !token || bias_end == entry.c_str() + eq + 1 ||
        *bias_end != '\0') {
      return absl::InvalidArgumentError("--logit-bias: expected ID=BIAS, got '" + entry + "'");
    }
    p.logit_bias.push_back({*token, static_cast<float>(bias)});
  }
  std::sort(p.logit_bias.begin(), p.logit_bias.end(), runtime::ByToken);
  for (size_t i = 1; i < p.logit_bias.size(); ++i) {
    if (p.logit_bias[i].token == p.logit_bias[i - 1].token) {
      return absl::InvalidArgumentError(
          absl::StrCat("--logit-bias: token ", p.logit_bias[i].token, " given twice"));
    }
  }
  p.ignore_eos = args.Has("ignore-eos");
  if (args.Has("json-object")) p.response_format = runtime::ResponseFormat::kJsonObject;
  ASSIGN_OR_RETURN(const std::optional<std::string> schema_text, JsonSchemaText(args));
  if (schema_text) {
    if (args.Has("json-object")) {
      return absl::InvalidArgumentError("--json-object and --json-schema exclude each other");
    }
    ASSIGN_OR_RETURN(
        const nlohmann::json parsed,
        ParseFlagJson<nlohmann::json>("--json-schema", *args.Get("json-schema"), *schema_text));
    absl::StatusOr<runtime::JsonSchema> schema = runtime::JsonSchema::Compile(parsed);
    if (!schema.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--json-schema: ", schema.status().message()));
    }
    p.json_schema = std::make_shared<const runtime::JsonSchema>(*std::move(schema));
    p.response_format = runtime::ResponseFormat::kJsonSchema;
    if (json_schema_text != nullptr) *json_schema_text = *schema_text;
  }
  return p;
}

}  // namespace cohost::tools
