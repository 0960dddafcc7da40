// Hugging Face config.json -> ModelConfig for LlamaForCausalLM,
// MistralForCausalLM and Qwen2ForCausalLM.
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "runtime/loader/loader_json.h"
#include "runtime/loader/model_loading.h"

namespace cohost::runtime {
namespace {

// Field readers over one config object; the first error sticks.
class Fields {
 public:
  Fields(const nlohmann::json& obj, const std::string& path) : obj_(obj), path_(path) {}

  const absl::Status& status() const { return status_; }

  // nullptr for absent or null.
  const nlohmann::json* Get(absl::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  void Int(absl::string_view key, bool required, int32_t* out) {
    const nlohmann::json* v = Get(key);
    if (v == nullptr) {
      if (required) Fail(key, "is missing");
      return;
    }
    std::optional<int64_t> i = JsonInt64(*v);
    if (!i) return Fail(key, "must be an integer");
    if (*i < 0 || *i > std::numeric_limits<int32_t>::max())
      return Fail(key, absl::StrCat("= ", *i, " is out of range"));
    *out = static_cast<int32_t>(*i);
  }

  void Float(absl::string_view key, float* out) {
    const nlohmann::json* v = Get(key);
    if (v == nullptr) return;
    if (!v->is_number()) return Fail(key, "must be a number");
    *out = v->get<float>();
  }

  void Bool(absl::string_view key, bool* out) {
    const nlohmann::json* v = Get(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return Fail(key, "must be true or false");
    *out = v->get<bool>();
  }

  void Fail(absl::string_view key, absl::string_view what) {
    if (status_.ok())
      status_ = absl::InvalidArgumentError(absl::StrCat(path_, ": '", key, "' ", what));
  }

 private:
  const nlohmann::json& obj_;
  const std::string& path_;
  absl::Status status_;
};

absl::StatusOr<std::string> Architecture(const nlohmann::json& j, const std::string& path) {
  static constexpr std::pair<absl::string_view, absl::string_view> kArchs[] = {
      {"LlamaForCausalLM", "llama"},
      {"MistralForCausalLM", "mistral"},
      {"Qwen2ForCausalLM", "qwen2"},
      {"Qwen3ForCausalLM", "qwen3"},
      {"Qwen3MoeForCausalLM", "qwen3moe"},
      {"MixtralForCausalLM", "mixtral"}};  // "mistral" with experts (ParseExperts)
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array() || it->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": 'architectures' is missing"));
  }
  std::string seen;
  for (const nlohmann::json& a : *it) {
    if (!a.is_string())
      return absl::InvalidArgumentError(absl::StrCat(path, ": 'architectures' must hold strings"));
    for (const auto& [hf, ours] : kArchs) {
      if (a.get_ref<const std::string&>() == hf) return std::string(ours);
    }
    absl::StrAppend(&seen, seen.empty() ? "" : ", ", Quote(a.get_ref<const std::string&>()));
  }
  return absl::UnimplementedError(absl::StrFormat(
      "%s: architecture %s is not supported (supported: LlamaForCausalLM, MistralForCausalLM, "
      "MixtralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM)",
      path, seen));
}

// `j` is the object under `key`: "rope_scaling", or transformers' newer
// "rope_parameters" (which holds rope_theta too).
absl::Status ParseRopeScaling(const nlohmann::json& j, const std::string& path,
                              absl::string_view key, RopeScaling* r) {
  if (!j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' must be an object"));
  auto type = j.find("rope_type");
  if (type == j.end()) type = j.find("type");  // older configs
  if (type == j.end() || !type->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' has no rope_type"));
  }
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "default") return absl::OkStatus();
  if (t != "llama3") {
    return absl::UnimplementedError(
        absl::StrFormat("%s: %s type '%s' is not supported (supported: llama3)", path, key, t));
  }
  r->kind = RopeScaling::Kind::kLlama3;
  Fields f(j, path);
  for (const char* field : {"factor", "low_freq_factor", "high_freq_factor"}) {
    if (f.Get(field) == nullptr) f.Fail(absl::StrCat(key, ".", field), "is missing");
  }
  f.Float("factor", &r->factor);
  f.Float("low_freq_factor", &r->low_freq_factor);
  f.Float("high_freq_factor", &r->high_freq_factor);
  f.Int("original_max_position_embeddings", true, &r->original_max_position_embeddings);
  return f.status();
}

// The experts of a Mixtral or Qwen3-MoE config (`mixtral`: the class was
// MixtralForCausalLM): their count, how many a token uses, their width, and
// whether the picked probabilities are divided by their sum (Mixtral's
// always are; Qwen3-MoE's where norm_topk_prob, false by default, as in
// transformers). A Qwen3-MoE config whose layers are not all sparse is refused.
absl::Status ParseExperts(const nlohmann::json& j, const std::string& path, bool mixtral,
                          ModelConfig* c) {
  Fields f(j, path);
  f.Int(mixtral ? "num_local_experts" : "num_experts", true, &c->num_experts);
  f.Int("num_experts_per_tok", true, &c->num_experts_used);
  if (mixtral) {
    c->expert_intermediate_size = c->intermediate_size;
    c->norm_topk_prob = true;
    return f.status();
  }
  f.Int("moe_intermediate_size", true, &c->expert_intermediate_size);
  c->norm_topk_prob = false;
  f.Bool("norm_topk_prob", &c->norm_topk_prob);
  int32_t sparse_step = 1;
  f.Int("decoder_sparse_step", false, &sparse_step);
  RETURN_IF_ERROR(f.status());
  const nlohmann::json* dense = f.Get("mlp_only_layers");
  if (sparse_step != 1 || (dense != nullptr && !(dense->is_array() && dense->empty()))) {
    return absl::UnimplementedError(absl::StrCat(
        path,
        ": dense layers among the sparse ones (decoder_sparse_step, mlp_only_layers) are "
        "not supported"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, const std::string& path) {
  absl::StatusOr<nlohmann::json> parsed = ParseJsonStrict(json_text, path);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  ModelConfig c;
  absl::StatusOr<std::string> arch = Architecture(j, path);
  if (!arch.ok()) return arch.status();
  const bool mixtral = *arch == "mixtral";
  c.architecture = mixtral ? "mistral" : *arch;
  if (auto it = j.find("_name_or_path"); it != j.end() && it->is_string())
    c.name = it->get<std::string>();

  Fields f(j, path);
  f.Int("vocab_size", true, &c.vocab_size);
  f.Int("hidden_size", true, &c.hidden_size);
  f.Int("intermediate_size", true, &c.intermediate_size);
  f.Int("num_hidden_layers", true, &c.num_layers);
  f.Int("num_attention_heads", true, &c.num_heads);
  f.Int("max_position_embeddings", true, &c.max_position_embeddings);
  c.num_kv_heads = 0;
  f.Int("num_key_value_heads", false, &c.num_kv_heads);
  f.Int("head_dim", false, &c.head_dim);
  c.rms_norm_eps = 1e-6f;  // the transformers default for these three classes
  f.Float("rms_norm_eps", &c.rms_norm_eps);
  f.Float("rope_theta", &c.rope_theta);
  f.Bool("tie_word_embeddings", &c.tie_word_embeddings);
  f.Bool("attention_bias", &c.attention_bias);
  bool mlp_bias = false;
  f.Bool("mlp_bias", &mlp_bias);
  if (!f.status().ok()) return f.status();
  // What these models compute and cohost does not: refused, not run without.
  if (const nlohmann::json* act = f.Get("hidden_act");
      act != nullptr && !(act->is_string() && act->get_ref<const std::string&>() == "silu")) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": hidden_act ",
        act->is_string()
            ? absl::StrCat("\"", act->get_ref<const std::string&>().substr(0, 64), "\"")
            : std::string("(not a string)"),
        " is not supported (supported: \"silu\")"));
  }
  if (mlp_bias) {
    return absl::UnimplementedError(absl::StrCat(path, ": mlp_bias is not supported"));
  }
  if (c.attention_bias &&
      (c.architecture == "llama" || c.architecture == "qwen3" || c.architecture == "qwen3moe")) {
    // transformers' Llama and Qwen3 put it on o_proj too; only q/k/v biases are run.
    return absl::UnimplementedError(absl::StrCat(
        path, ": attention_bias (a bias on o_proj too) is not supported for Llama or Qwen3"));
  }
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (c.head_dim == 0 && c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  if (mixtral || c.architecture == "qwen3moe") {
    RETURN_IF_ERROR(ParseExperts(j, path, mixtral, &c));
  }
  if (c.architecture == "qwen2" || c.architecture == "qwen3" || c.architecture == "qwen3moe") {
    if (c.architecture == "qwen2") c.attention_bias = true;  // Qwen2 always has q/k/v biases
    bool sliding = false;
    f.Bool("use_sliding_window", &sliding);
    if (!f.status().ok()) return f.status();
    if (sliding)
      return absl::UnimplementedError(absl::StrCat(path, ": use_sliding_window is not supported"));
  }
  if (c.architecture == "mistral") {
    // transformers' Mistral has no attention_bias: its projections never
    // have biases, whatever the key says.
    c.attention_bias = false;
    // Sliding-window attention equals full attention within the window, so we
    // serve contexts up to the window only.
    int32_t window = 0;
    f.Int("sliding_window", false, &window);
    if (!f.status().ok()) return f.status();
    if (window > 0 && window < c.max_position_embeddings) c.max_position_embeddings = window;
  }
  // transformers' newer form holds the theta and the scaling in one object;
  // where both forms are there, it is the one transformers reads.
  if (const nlohmann::json* rp = f.Get("rope_parameters"); rp != nullptr) {
    RETURN_IF_ERROR(ParseRopeScaling(*rp, path, "rope_parameters", &c.rope_scaling));
    Fields params(*rp, path);
    params.Float("rope_theta", &c.rope_theta);
    RETURN_IF_ERROR(params.status());
  } else if (const nlohmann::json* rs = f.Get("rope_scaling"); rs != nullptr) {
    RETURN_IF_ERROR(ParseRopeScaling(*rs, path, "rope_scaling", &c.rope_scaling));
  }
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return c;
}

}  // namespace cohost::runtime
