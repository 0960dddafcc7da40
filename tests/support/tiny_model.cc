// Tiny random-weight model and byte tokenizer for tests.

#include "tests/support/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/unicode.h"

namespace cohost::runtime::testing {

ModelFile MakeTinyModelFile(const TinyModelOptions& options) {
  ModelFile f;
  f.path = "tiny";
  ModelConfig& c = f.config;
  c.architecture = options.experts > 0 ? "qwen3moe" : options.qk_norm ? "qwen3" : "llama";
  if (options.experts > 0) {
    c.num_experts = options.experts;
    c.num_experts_used = 2;
    c.expert_intermediate_size = options.intermediate_size;
  }
  c.name = "tiny";
  c.vocab_size = options.vocab_size;
  c.hidden_size = options.hidden_size;
  c.intermediate_size = options.intermediate_size;
  c.num_layers = options.num_layers;
  c.num_heads = options.num_heads;
  c.num_kv_heads = options.num_kv_heads;
  c.head_dim = options.head_dim;
  c.max_position_embeddings = options.max_position_embeddings;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.f;
  c.tie_word_embeddings = true;
  std::mt19937 rng(options.seed);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale) {
    HostTensor t;
    t.shape = std::move(shape);
    t.data.resize(t.numel());
    std::uniform_real_distribution<float> d(-scale, scale);
    for (float& x : t.data) x = d(rng);
    f.tensors[name] = std::move(t);
  };
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  // Scales for the default shape's fan-ins (32, 48 and 32): a wider model's
  // products keep the default's magnitudes.
  const float from_h = std::sqrt(32.f / static_cast<float>(h));
  const float from_q = std::sqrt(32.f / static_cast<float>(q));
  const float from_inter = std::sqrt(48.f / static_cast<float>(inter));
  add("token_embd.weight", {c.vocab_size, h}, 1.f);
  add("output_norm.weight", {h}, 1.f);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {h}, 1.f);
    add(p + "ffn_norm.weight", {h}, 1.f);
    add(p + "attn_q.weight", {q, h}, 0.6f * from_h);
    add(p + "attn_k.weight", {kv, h}, 0.6f * from_h);
    add(p + "attn_v.weight", {kv, h}, 0.3f * from_h);
    add(p + "attn_output.weight", {h, q}, 0.3f * from_q);
    for (int e = 0; e < std::max(options.experts, 1); ++e) {
      // The dense FFN's names, or each expert's.
      const std::string x = options.experts > 0 ? "." + std::to_string(e) + ".weight" : ".weight";
      add(absl::StrCat(p, "ffn_gate", x), {inter, h}, 0.3f * from_h);
      add(absl::StrCat(p, "ffn_up", x), {inter, h}, 0.3f * from_h);
      add(absl::StrCat(p, "ffn_down", x), {h, inter}, 0.3f * from_inter);
    }
    // Router logits spread over a few units: picks rarely near a tie.
    if (options.experts > 0) add(p + "ffn_gate_inp.weight", {options.experts, h}, 0.6f * from_h);
    if (options.qk_norm || options.experts > 0) {
      add(p + "attn_q_norm.weight", {c.head_dim}, 2.f);
      add(p + "attn_k_norm.weight", {c.head_dim}, 2.f);
    }
  }
  return f;
}

TokenizerSpec MakeByteTokenizerSpec(int32_t vocab_size) {
  TokenizerSpec s;
  s.kind = TokenizerKind::kByteLevelBpe;
  s.pre_tokenizer = "gpt2";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
    s.token_types.push_back(TokenType::kNormal);
  }
  s.tokens.push_back("<eos>");
  s.token_types.push_back(TokenType::kControl);
  for (int32_t i = 257; i < vocab_size; ++i) {
    s.tokens.push_back("<t" + std::to_string(i) + ">");
    s.token_types.push_back(TokenType::kNormal);
  }
  s.eos_id = 256;
  return s;
}

TokenizerSpec MakeThinkingTokenizerSpec() {
  TokenizerSpec s = MakeByteTokenizerSpec();
  s.tokens[kThinkOpen] = "<think>";
  s.tokens[kThinkClose] = "</think>";
  s.token_types[kThinkOpen] = s.token_types[kThinkClose] = TokenType::kUserDefined;
  return s;
}

}  // namespace cohost::runtime::testing
