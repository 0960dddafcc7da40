// A tiny GGUF model for loader tests: every supported tensor type with
// known decoded values, Llama or Qwen2 Q/K row order, tokenizer metadata; and
// helpers to edit its metadata and expect load errors.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/model_file.h"
#include "tests/runtime/loader/loader_test_util.h"

namespace cohost::runtime::testing {

inline constexpr int kVocab = 8, kHidden = 64, kHeads = 2, kKvHeads = 1, kHeadDim = 32, kFfn = 96;

// Encoded tensor bytes plus the values they must decode to. Values are small
// multiples of powers of two, so every encoding below is exact.
struct Encoded {
  uint32_t type;
  std::string bytes;
  std::vector<float> values;
};

inline float Pattern(int64_t i, int seed) {
  return static_cast<float>(((i * 7 + seed * 13) % 29) - 14) / 8.f;
}

inline Encoded EncodePlain(uint32_t type, const std::vector<float>& v) {
  Encoded e{type, "", v};
  for (float x : v) {
    if (type == kTF32) Append(&e.bytes, x);
    if (type == kTF16) Append<uint16_t>(&e.bytes, ExactHalf(x));
    if (type == kTBF16) Append<uint16_t>(&e.bytes, ExactBf16(x));
  }
  return e;
}

inline Encoded Encode(uint32_t type, int64_t n, int seed) {
  if (type == kTF32 || type == kTF16 || type == kTBF16) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = Pattern(i, seed);
    return EncodePlain(type, v);
  }
  Encoded e{type, "", {}};
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = std::ldexp(1.f, -static_cast<int>((b + seed) % 4) - 1);
    if (type == kTQ8_0) {
      std::vector<int8_t> q(32);
      for (int j = 0; j < 32; ++j)
        q[j] = static_cast<int8_t>(((b * 31 + j * 5 + seed) % 255) - 127);
      e.bytes += Q8_0Block(d, q);
      for (int j = 0; j < 32; ++j) e.values.push_back(d * q[j]);
      continue;
    }
    std::vector<uint8_t> qs(16);
    for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((b * 3 + j * 5 + seed) % 256);
    const float m = type == kTQ4_1 ? -static_cast<float>((b + seed) % 5) : 0.f;
    e.bytes += type == kTQ4_0 ? Q4_0Block(d, qs) : Q4_1Block(d, m, qs);
    std::vector<float> block(32);
    for (int j = 0; j < 16; ++j) {
      const int lo = qs[j] & 15, hi = qs[j] >> 4;
      block[j] = type == kTQ4_0 ? d * (lo - 8) : d * lo + m;
      block[j + 16] = type == kTQ4_0 ? d * (hi - 8) : d * hi + m;
    }
    e.values.insert(e.values.end(), block.begin(), block.end());
  }
  return e;
}

struct TinyModel {
  GgufWriter writer;
  absl::flat_hash_map<std::string, std::vector<float>> expected;  // canonical values
  absl::flat_hash_map<std::string, std::vector<int64_t>> shapes;
  uint64_t tensor_bytes = 0;
};

struct TinyOptions {
  std::string arch = "llama";
  bool tied = false;
  bool bias = false;
  // q, k and v all Q8_0 (so that a loader keeping blocks keeps them, q and k
  // with their rows in the converter's RoPE order).
  bool quantized_attention = false;
  // Rows of the embedding and the output (kVocab or more: the tokens past
  // kVocab are plain ones, "t8", "t9", ...).
  int vocab = kVocab;
  // The hidden and feed-forward widths (head_dim: hidden / kHeads). 256
  // makes every matrix's rows whole K-quant blocks.
  int hidden = kHidden, ffn = kFfn;
  // > 0: that many experts (2 used) in place of the FFN, each ffn wide, as
  // llama.cpp writes them: a router (F32) and each of gate (Q8_0), up (Q4_0)
  // and down (Q4_1) merged into one [experts, rows, cols] tensor; the
  // expected values under the per-expert canonical names. Not merged: each
  // expert's three under its canonical name, as older Mixtral files hold them.
  int experts = 0;
  bool merged_experts = true;
};

// The rows of `bytes` (rows of equal size) in the converter's RoPE order.
inline std::string PermuteRows(const std::string& bytes, int64_t rows, int64_t n_head) {
  std::vector<float> index(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) index[r] = static_cast<float>(r);
  const std::vector<float> order = ConverterPermute(index, n_head, 1);
  const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
  std::string out;
  for (float from : order) out += bytes.substr(static_cast<size_t>(from) * row_bytes, row_bytes);
  return out;
}

inline TinyModel MakeTinyModel(const TinyOptions& o = {}) {
  TinyModel m;
  GgufWriter& w = m.writer;
  const std::string a = o.arch;
  const int hidden = o.hidden, ffn = o.ffn, head_dim = o.hidden / kHeads;
  w.AddString("general.architecture", a);
  w.AddString("general.name", "tiny");
  w.AddU32(a + ".block_count", 1);
  w.AddU32(a + ".context_length", 128);
  w.AddU32(a + ".embedding_length", hidden);
  w.AddU32(a + ".feed_forward_length", ffn);
  w.AddU32(a + ".attention.head_count", kHeads);
  w.AddU32(a + ".attention.head_count_kv", kKvHeads);
  w.AddF32(a + ".rope.freq_base", 500000.f);
  w.AddF32(a + ".attention.layer_norm_rms_epsilon", 1e-6f);
  w.AddU32(a + ".rope.dimension_count", head_dim);
  if (o.experts > 0) {
    w.AddU32(a + ".expert_count", o.experts);
    w.AddU32(a + ".expert_used_count", 2);
    if (a == "qwen3moe") w.AddU32(a + ".expert_feed_forward_length", ffn);
  }
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "llama-bpe");
  std::vector<std::string> tokens = {
      "<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "Ġ", "<|eot_id|>"};
  std::vector<int32_t> token_types = {3, 3, 3, 1, 1, 1, 1, 3};
  for (int i = kVocab; i < o.vocab; ++i) {
    tokens.push_back(absl::StrCat("t", i));
    token_types.push_back(1);
  }
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddArray<int32_t>("tokenizer.ggml.token_type", kGI32, token_types);
  w.AddStringArray("tokenizer.ggml.merges", {"a b"});
  w.AddU32("tokenizer.ggml.bos_token_id", 1);
  w.AddU32("tokenizer.ggml.eos_token_id", 2);
  w.AddU32("tokenizer.ggml.unknown_token_id", 0);
  w.AddBool("tokenizer.ggml.add_bos_token", true);
  w.AddString("tokenizer.chat_template", "{{ messages }}");

  // name, canonical shape (outer first), type, permute heads (0: none)
  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    int64_t permute_heads;
  };
  const bool permuted = o.arch == "llama";
  std::vector<Spec> specs = {
      {"token_embd.weight", {o.vocab, hidden}, kTQ8_0, 0},
      {"output_norm.weight", {hidden}, kTF32, 0},
      {"blk.0.attn_norm.weight", {hidden}, kTF32, 0},
      {"blk.0.ffn_norm.weight", {hidden}, kTBF16, 0},
      {"blk.0.attn_q.weight",
       {kHeads * head_dim, hidden},
       o.quantized_attention ? kTQ8_0 : kTF32,
       permuted ? kHeads : 0},
      {"blk.0.attn_k.weight",
       {kKvHeads * head_dim, hidden},
       o.quantized_attention ? kTQ8_0 : kTF16,
       permuted ? kKvHeads : 0},
      {"blk.0.attn_v.weight",
       {kKvHeads * head_dim, hidden},
       o.quantized_attention ? kTQ8_0 : kTQ4_1,
       0},
      {"blk.0.attn_output.weight", {hidden, kHeads * head_dim}, kTF16, 0},
  };
  if (o.experts == 0) {
    specs.push_back({"blk.0.ffn_gate.weight", {ffn, hidden}, kTQ8_0, 0});
    specs.push_back({"blk.0.ffn_up.weight", {ffn, hidden}, kTQ4_0, 0});
    specs.push_back({"blk.0.ffn_down.weight", {hidden, ffn}, kTQ4_1, 0});
  } else if (o.merged_experts) {
    specs.push_back({"blk.0.ffn_gate_inp.weight", {o.experts, hidden}, kTF32, 0});
    specs.push_back({"blk.0.ffn_gate_exps.weight", {o.experts, ffn, hidden}, kTQ8_0, 0});
    specs.push_back({"blk.0.ffn_up_exps.weight", {o.experts, ffn, hidden}, kTQ4_0, 0});
    specs.push_back({"blk.0.ffn_down_exps.weight", {o.experts, hidden, ffn}, kTQ4_1, 0});
  } else {
    specs.push_back({"blk.0.ffn_gate_inp.weight", {o.experts, hidden}, kTF32, 0});
    for (int e = 0; e < o.experts; ++e) {
      specs.push_back({ExpertTensorName(0, "ffn_gate", e), {ffn, hidden}, kTQ8_0, 0});
      specs.push_back({ExpertTensorName(0, "ffn_up", e), {ffn, hidden}, kTQ4_0, 0});
      specs.push_back({ExpertTensorName(0, "ffn_down", e), {hidden, ffn}, kTQ4_1, 0});
    }
  }
  if (!o.tied) specs.push_back({"output.weight", {o.vocab, hidden}, kTQ4_0, 0});
  if (o.bias) {
    specs.push_back({"blk.0.attn_q.bias", {kHeads * head_dim}, kTF32, permuted ? kHeads : 0});
    specs.push_back({"blk.0.attn_k.bias", {kKvHeads * head_dim}, kTF32, permuted ? kKvHeads : 0});
    specs.push_back({"blk.0.attn_v.bias", {kKvHeads * head_dim}, kTF32, 0});
  }
  if (o.arch == "qwen3" || o.arch == "qwen3moe") {
    specs.push_back({"blk.0.attn_q_norm.weight", {head_dim}, kTF32, 0});
    specs.push_back({"blk.0.attn_k_norm.weight", {head_dim}, kTF32, 0});
  }
  int seed = 0;
  for (const Spec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    Encoded e = Encode(s.type, n, ++seed);
    m.expected[s.name] = e.values;
    if (s.permute_heads > 0 && (s.type == kTF32 || s.type == kTF16 || s.type == kTBF16)) {
      e = EncodePlain(s.type, ConverterPermute(e.values, s.permute_heads,
                                               s.shape.size() == 2 ? s.shape[1] : 1));
    } else if (s.permute_heads > 0) {
      e.bytes = PermuteRows(e.bytes, s.shape[0], s.permute_heads);  // blocks never span rows
    }
    if (s.shape.size() == 3) {
      // A layer's experts: each under its own canonical name.
      const std::string kind = s.name.substr(0, s.name.find("_exps"));  // blk.0.ffn_gate
      const size_t per = e.values.size() / static_cast<size_t>(s.shape[0]);
      for (int64_t x = 0; x < s.shape[0]; ++x) {
        const std::string name = absl::StrCat(kind, ".", x, ".weight");
        m.expected[name].assign(e.values.begin() + x * per, e.values.begin() + (x + 1) * per);
        m.shapes[name] = {s.shape[1], s.shape[2]};
      }
      m.expected.erase(s.name);
    } else {
      m.shapes[s.name] = s.shape;
    }
    m.tensor_bytes += e.bytes.size();
    w.AddTensor(s.name, std::vector<uint64_t>(s.shape.rbegin(), s.shape.rend()), s.type, e.bytes);
  }
  return m;
}

inline LoadOptions ConfigOnly() {
  LoadOptions o;
  o.load_tensors = false;
  return o;
}

inline absl::StatusOr<ModelFile> LoadBytes(const std::string& bytes,
                                           const LoadOptions& options = {},
                                           const std::string& name = "tiny.gguf") {
  const std::string path = TempPath(name);
  WriteFile(path, bytes);
  return LoadModelFile(path, options);
}

inline void ExpectTensorsMatch(const ModelFile& mf, const TinyModel& m) {
  EXPECT_EQ(mf.tensors.size(), m.expected.size());
  for (const auto& [name, values] : m.expected) {
    auto it = mf.tensors.find(name);
    ASSERT_NE(it, mf.tensors.end()) << name;
    EXPECT_EQ(it->second.shape, m.shapes.at(name)) << name;
    EXPECT_EQ(it->second.data, values) << name;
  }
}

inline void SetMeta(GgufWriter& w, const std::string& key, uint32_t type,
                    const std::string& value) {
  for (GgufWriter::Kv& kv : w.kvs) {
    if (kv.key == key) {
      kv.type = type;
      kv.value = value;
      return;
    }
  }
  ADD_FAILURE() << "no key " << key;
}
inline std::string U32(uint32_t v) {
  std::string s;
  Append(&s, v);
  return s;
}
inline void RemoveMeta(GgufWriter& w, const std::string& key) {
  std::erase_if(w.kvs, [&](const GgufWriter::Kv& kv) { return kv.key == key; });
}
inline GgufWriter::Tensor& FindTensor(GgufWriter& w, const std::string& name) {
  for (GgufWriter::Tensor& t : w.tensors) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return w.tensors[0];
}

inline void ExpectLoadError(const GgufWriter& w, absl::StatusCode code,
                            const std::string& substring, const LoadOptions& options = {}) {
  absl::StatusOr<ModelFile> mf = LoadBytes(w.Build(), options, "bad_model.gguf");
  ASSERT_FALSE(mf.ok()) << "expected: " << substring;
  EXPECT_EQ(mf.status().code(), code) << mf.status();
  EXPECT_THAT(Msg(mf.status()), ::testing::HasSubstr("bad_model.gguf"));
  EXPECT_THAT(Msg(mf.status()), ::testing::HasSubstr(substring));
}

}  // namespace cohost::runtime::testing
