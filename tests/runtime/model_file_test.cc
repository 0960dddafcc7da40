// LoadModelFile on tiny GGUF models built by the test: config and tokenizer
// from metadata, every supported tensor type dequantized to known values,
// llama.cpp's Q/K row permutation undone (Llama) or left alone (Qwen2), and
// models that lie about themselves rejected with a clear error.
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model_file.h"
#include "runtime/model_loading.h"
#include "tests/runtime/loader_test_util.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

constexpr int kVocab = 8, kHidden = 64, kHeads = 2, kKvHeads = 1, kHeadDim = 32, kFfn = 96;

// Encoded tensor bytes plus the values they must decode to. Values are small
// multiples of powers of two, so every encoding below is exact.
struct Encoded {
  uint32_t type;
  std::string bytes;
  std::vector<float> values;
};

float Pattern(int64_t i, int seed) { return static_cast<float>(((i * 7 + seed * 13) % 29) - 14) / 8.f; }

Encoded EncodePlain(uint32_t type, const std::vector<float>& v) {
  Encoded e{type, "", v};
  for (float x : v) {
    if (type == kTF32) Append(&e.bytes, x);
    if (type == kTF16) Append<uint16_t>(&e.bytes, ExactHalf(x));
    if (type == kTBF16) Append<uint16_t>(&e.bytes, ExactBf16(x));
  }
  return e;
}

Encoded Encode(uint32_t type, int64_t n, int seed) {
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
      for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(((b * 31 + j * 5 + seed) % 255) - 127);
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

// llama.cpp's converter order: HF row (h, i, j) is written as GGUF row (h, j, i).
std::vector<float> ConverterPermute(const std::vector<float>& hf, int64_t n_head, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(hf.size()) / cols, d = rows / n_head;
  std::vector<float> out(hf.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < d / 2; ++j)
        for (int64_t c = 0; c < cols; ++c)
          out[((h * d + 2 * j + i) * cols) + c] = hf[((h * d + i * d / 2 + j) * cols) + c];
  return out;
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
};

TinyModel MakeTinyModel(const TinyOptions& o = {}) {
  TinyModel m;
  GgufWriter& w = m.writer;
  const std::string a = o.arch;
  w.AddString("general.architecture", a);
  w.AddString("general.name", "tiny");
  w.AddU32(a + ".block_count", 1);
  w.AddU32(a + ".context_length", 128);
  w.AddU32(a + ".embedding_length", kHidden);
  w.AddU32(a + ".feed_forward_length", kFfn);
  w.AddU32(a + ".attention.head_count", kHeads);
  w.AddU32(a + ".attention.head_count_kv", kKvHeads);
  w.AddF32(a + ".rope.freq_base", 500000.f);
  w.AddF32(a + ".attention.layer_norm_rms_epsilon", 1e-6f);
  w.AddU32(a + ".rope.dimension_count", kHeadDim);
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "llama-bpe");
  w.AddStringArray("tokenizer.ggml.tokens",
                   {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "Ġ", "<|eot_id|>"});
  w.AddArray<int32_t>("tokenizer.ggml.token_type", kGI32, {3, 3, 3, 1, 1, 1, 1, 3});
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
      {"token_embd.weight", {kVocab, kHidden}, kTQ8_0, 0},
      {"output_norm.weight", {kHidden}, kTF32, 0},
      {"blk.0.attn_norm.weight", {kHidden}, kTF32, 0},
      {"blk.0.ffn_norm.weight", {kHidden}, kTBF16, 0},
      {"blk.0.attn_q.weight", {kHeads * kHeadDim, kHidden}, kTF32, permuted ? kHeads : 0},
      {"blk.0.attn_k.weight", {kKvHeads * kHeadDim, kHidden}, kTF16, permuted ? kKvHeads : 0},
      {"blk.0.attn_v.weight", {kKvHeads * kHeadDim, kHidden}, kTQ4_1, 0},
      {"blk.0.attn_output.weight", {kHidden, kHeads * kHeadDim}, kTF16, 0},
      {"blk.0.ffn_gate.weight", {kFfn, kHidden}, kTQ8_0, 0},
      {"blk.0.ffn_up.weight", {kFfn, kHidden}, kTQ4_0, 0},
      {"blk.0.ffn_down.weight", {kHidden, kFfn}, kTQ4_1, 0},
  };
  if (!o.tied) specs.push_back({"output.weight", {kVocab, kHidden}, kTQ4_0, 0});
  if (o.bias) {
    specs.push_back({"blk.0.attn_q.bias", {kHeads * kHeadDim}, kTF32, permuted ? kHeads : 0});
    specs.push_back({"blk.0.attn_k.bias", {kKvHeads * kHeadDim}, kTF32, permuted ? kKvHeads : 0});
    specs.push_back({"blk.0.attn_v.bias", {kKvHeads * kHeadDim}, kTF32, 0});
  }
  int seed = 0;
  for (const Spec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    Encoded e = Encode(s.type, n, ++seed);
    m.expected[s.name] = e.values;
    if (s.permute_heads > 0) {
      e = EncodePlain(s.type, ConverterPermute(e.values, s.permute_heads, s.shape.size() == 2 ? s.shape[1] : 1));
    }
    m.shapes[s.name] = s.shape;
    m.tensor_bytes += e.bytes.size();
    w.AddTensor(s.name, std::vector<uint64_t>(s.shape.rbegin(), s.shape.rend()), s.type, e.bytes);
  }
  return m;
}

LoadOptions ConfigOnly() {
  LoadOptions o;
  o.load_tensors = false;
  return o;
}

absl::StatusOr<ModelFile> LoadBytes(const std::string& bytes, const LoadOptions& options = {},
                                    const std::string& name = "tiny.gguf") {
  const std::string path = TempPath(name);
  WriteFile(path, bytes);
  return LoadModelFile(path, options);
}

void ExpectTensorsMatch(const ModelFile& mf, const TinyModel& m) {
  EXPECT_EQ(mf.tensors.size(), m.expected.size());
  for (const auto& [name, values] : m.expected) {
    auto it = mf.tensors.find(name);
    ASSERT_NE(it, mf.tensors.end()) << name;
    EXPECT_EQ(it->second.shape, m.shapes.at(name)) << name;
    EXPECT_EQ(it->second.data, values) << name;
  }
}

TEST(GgufModelTest, TinyLlamaLoads) {
  TinyModel m = MakeTinyModel();
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  LoadOptions options;
  options.progress = [&](uint64_t done, uint64_t total) { progress.push_back({done, total}); };
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build(), options);
  ASSERT_TRUE(mf.ok()) << mf.status();
  const ModelConfig& c = mf->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.name, "tiny");
  EXPECT_EQ(c.vocab_size, kVocab);  // from the token list
  EXPECT_EQ(c.hidden_size, kHidden);
  EXPECT_EQ(c.intermediate_size, kFfn);
  EXPECT_EQ(c.num_layers, 1);
  EXPECT_EQ(c.num_heads, kHeads);
  EXPECT_EQ(c.num_kv_heads, kKvHeads);
  EXPECT_EQ(c.head_dim, kHeadDim);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 500000.f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);

  const TokenizerSpec& t = mf->tokenizer;
  EXPECT_EQ(t.kind, TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t.pre_tokenizer, "llama-bpe");
  EXPECT_EQ(t.tokens.size(), 8u);
  EXPECT_EQ(t.tokens[5], "ab");
  EXPECT_THAT(t.merges, ElementsAre("a b"));
  EXPECT_EQ(t.token_types[3], TokenType::kNormal);
  EXPECT_EQ(t.token_types[7], TokenType::kControl);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_EQ(t.pad_id, -1);
  EXPECT_THAT(t.extra_eos_ids, ElementsAre(7, 0));  // <|eot_id|>, <|endoftext|>; not eos itself
  EXPECT_TRUE(t.add_bos);
  EXPECT_FALSE(t.add_eos);
  EXPECT_FALSE(t.add_space_prefix);
  EXPECT_EQ(t.chat_template, "{{ messages }}");

  ExpectTensorsMatch(*mf, m);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(m.tensor_bytes, m.tensor_bytes));
}

TEST(GgufModelTest, Qwen2KeepsRowOrderAndLoadsBiases) {
  TinyModel m = MakeTinyModel({.arch = "qwen2", .tied = true, .bias = true});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.architecture, "qwen2");
  EXPECT_TRUE(mf->config.tie_word_embeddings);
  EXPECT_TRUE(mf->config.attention_bias);
  EXPECT_FALSE(mf->tensors.contains("output.weight"));
  ExpectTensorsMatch(*mf, m);
}

TEST(GgufModelTest, LlamaBiasesArePermutedToo) {
  TinyModel m = MakeTinyModel({.arch = "llama", .tied = true, .bias = true});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  ExpectTensorsMatch(*mf, m);
}

TEST(GgufModelTest, ConfigOnlyLoad) {
  TinyModel m = MakeTinyModel();
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build(), ConfigOnly());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_TRUE(mf->tensors.empty());
  EXPECT_EQ(mf->config.hidden_size, kHidden);
}

TEST(GgufModelTest, MissingPathIsNotFound) {
  EXPECT_EQ(LoadModelFile(TempPath("nothing_here.gguf")).status().code(), absl::StatusCode::kNotFound);
}

// Replaces the value of metadata `key` (which must exist).
void SetMeta(GgufWriter& w, const std::string& key, uint32_t type, const std::string& value) {
  for (GgufWriter::Kv& kv : w.kvs) {
    if (kv.key == key) {
      kv.type = type;
      kv.value = value;
      return;
    }
  }
  ADD_FAILURE() << "no key " << key;
}
std::string U32(uint32_t v) {
  std::string s;
  Append(&s, v);
  return s;
}
void RemoveMeta(GgufWriter& w, const std::string& key) {
  std::erase_if(w.kvs, [&](const GgufWriter::Kv& kv) { return kv.key == key; });
}
GgufWriter::Tensor& FindTensor(GgufWriter& w, const std::string& name) {
  for (GgufWriter::Tensor& t : w.tensors) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return w.tensors[0];
}

void ExpectLoadError(const GgufWriter& w, absl::StatusCode code, const std::string& substring) {
  absl::StatusOr<ModelFile> mf = LoadBytes(w.Build(), {}, "bad_model.gguf");
  ASSERT_FALSE(mf.ok()) << "expected: " << substring;
  EXPECT_EQ(mf.status().code(), code) << mf.status();
  EXPECT_THAT(Msg(mf.status()), HasSubstr("bad_model.gguf"));
  EXPECT_THAT(Msg(mf.status()), HasSubstr(substring));
}

TEST(GgufModelTest, TensorProblems) {
  {
    TinyModel m = MakeTinyModel();
    std::erase_if(m.writer.tensors, [](const auto& t) { return t.name == "blk.0.ffn_up.weight"; });
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "missing tensor 'blk.0.ffn_up.weight'");
  }
  {
    TinyModel m = MakeTinyModel();
    FindTensor(m.writer, "blk.0.attn_norm.weight").dims = {32};
    FindTensor(m.writer, "blk.0.attn_norm.weight").data.resize(128);
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "tensor 'blk.0.attn_norm.weight' has shape [32]; the config needs [64]");
  }
  {
    TinyModel m = MakeTinyModel();
    GgufWriter::Tensor& t = FindTensor(m.writer, "blk.0.ffn_norm.weight");
    t.dims = {256};
    t.type = kTQ4_K;
    t.data = std::string(144, '\0');
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "has shape [256]");
    t.dims = {64, 4};  // rows of 64 cannot hold 256-value Q4_K blocks
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "not a multiple of the Q4_K block size");
  }
  {
    // A needed tensor in a type we cannot dequantize.
    TinyModel m = MakeTinyModel();
    GgufWriter::Tensor& t = FindTensor(m.writer, "blk.0.attn_q.weight");
    t.dims = {256, 16};  // 4096 values as Q4_K (same element count as [64, 64])
    t.type = kTQ4_K;
    t.data = std::string(16 * 144, '\0');
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "blk.0.attn_q.weight");
  }
}

TEST(GgufModelTest, UnsupportedTensorTypeIsUnimplemented) {
  // Q4_K for the [256]-wide rows of a model whose hidden size is 256.
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"block_count", 1}, {"context_length", 64}, {"embedding_length", 256},
                      {"feed_forward_length", 256}, {"attention.head_count", 4}}) {
    w.AddU32(absl::StrCat("llama.", k), v);
  }
  w.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b"});
  w.AddStringArray("tokenizer.ggml.merges", {"a b"});
  w.AddTensor("token_embd.weight", {256, 2}, kTQ4_K, std::string(2 * 144, '\0'));
  ExpectLoadError(w, absl::StatusCode::kUnimplemented, "tensor 'token_embd.weight' has type Q4_K");
}

TEST(GgufModelTest, ConfigProblems) {
  {
    TinyModel m = MakeTinyModel();
    RemoveMeta(m.writer, "llama.block_count");
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "'llama.block_count' is missing");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "general.architecture", kGString, std::string("\x04\0\0\0\0\0\0\0gpt2", 12));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "architecture 'gpt2' is not supported");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.attention.head_count_kv", kGU32, U32(3));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "num_heads 2 is not a multiple of num_kv_heads 3");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.embedding_length", kGString, std::string("\x02\0\0\0\0\0\0\0" "64", 10));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "'llama.embedding_length': expected an integer");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.block_count", kGU32, U32(100000));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "num_layers = 100000");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.rope.dimension_count", kGU32, U32(16));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "16 rotary dims");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddString("llama.rope.scaling.type", "yarn");
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "rope scaling 'yarn'");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.attention.layer_norm_rms_epsilon", kGF32, std::string("\0\0\xc0\x7f", 4));  // NaN
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "rms_norm_eps");
  }
}

TEST(GgufModelTest, TokenizerProblems) {
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "tokenizer.ggml.model", kGString, std::string("\x04\0\0\0\0\0\0\0bert", 12));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "tokenizer model 'bert'");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "tokenizer.ggml.bos_token_id", kGU32, U32(8));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "'tokenizer.ggml.bos_token_id' = 8 is not a token id");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddArray<float>("tokenizer.ggml.scores", kGF32, {0, 1, 2});
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "scores has 3 entries for 8 tokens");
  }
  {
    TinyModel m = MakeTinyModel();
    RemoveMeta(m.writer, "tokenizer.ggml.token_type");
    m.writer.AddArray<int32_t>("tokenizer.ggml.token_type", kGI32, {1, 1, 1, 1, 1, 1, 1, 9});
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "token 7 has invalid token type 9");
  }
  {
    TinyModel m = MakeTinyModel();
    RemoveMeta(m.writer, "tokenizer.ggml.merges");
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "needs 'tokenizer.ggml.merges'");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddU32("llama.vocab_size", 4);  // fewer than the 8 tokens
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "8 tokens but the model's vocab_size is 4");
  }
}

TEST(GgufModelTest, SentencePieceDefaults) {
  TinyModel m = MakeTinyModel();
  SetMeta(m.writer, "tokenizer.ggml.model", kGString, std::string("\x05\0\0\0\0\0\0\0llama", 13));
  RemoveMeta(m.writer, "tokenizer.ggml.add_bos_token");
  m.writer.AddArray<float>("tokenizer.ggml.scores", kGF32, {0, 0, 0, -1, -2, -3, -4, 0});
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build(), ConfigOnly());
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->tokenizer.kind, TokenizerKind::kSentencePiece);
  EXPECT_THAT(mf->tokenizer.scores, ElementsAre(0, 0, 0, -1, -2, -3, -4, 0));
  EXPECT_TRUE(mf->tokenizer.add_bos);
  EXPECT_TRUE(mf->tokenizer.add_space_prefix);
}

// rope_freqs.weight as llama.cpp's converter writes it for Llama-3 scaling.
std::vector<float> Llama3Freqs(double factor, double theta) {
  std::vector<float> out;
  for (int i = 0; i < kHeadDim / 2; ++i) {
    const double wavelen = 2 * std::numbers::pi * std::pow(theta, 2.0 * i / kHeadDim);
    if (wavelen < 8192 / 4.0) {
      out.push_back(1.f);
    } else if (wavelen > 8192 / 1.0) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (8192 / wavelen - 1) / (4 - 1);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

TEST(GgufModelTest, Llama3RopeScalingFromRopeFreqs) {
  const std::vector<float> freqs = Llama3Freqs(8, 500000);
  // The tiny head_dim must exercise all three regions of the formula.
  ASSERT_EQ(freqs.front(), 1.f);
  ASSERT_EQ(freqs.back(), 8.f);
  ASSERT_TRUE(std::any_of(freqs.begin(), freqs.end(), [](float f) { return f > 1.f && f < 8.f; }));
  TinyModel m = MakeTinyModel();
  m.writer.AddF32Tensor("rope_freqs.weight", {kHeadDim / 2}, freqs);
  absl::StatusOr<ModelFile> mf = LoadBytes(m.writer.Build());
  ASSERT_TRUE(mf.ok()) << mf.status();
  const RopeScaling& r = mf->config.rope_scaling;
  EXPECT_EQ(r.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(r.factor, 8.f);
  EXPECT_EQ(r.low_freq_factor, 1.f);
  EXPECT_EQ(r.high_freq_factor, 4.f);
  EXPECT_EQ(r.original_max_position_embeddings, 8192);
  EXPECT_FALSE(mf->tensors.contains("rope_freqs.weight"));

  TinyModel other = MakeTinyModel();
  std::vector<float> odd = freqs;
  odd[odd.size() / 2] *= 1.5f;
  other.writer.AddF32Tensor("rope_freqs.weight", {kHeadDim / 2}, odd);
  ExpectLoadError(other.writer, absl::StatusCode::kUnimplemented, "does not match Llama-3 RoPE scaling");
}

TEST(RopePermutationTest, UndoesTheConverterPermutation) {
  const int64_t n_head = 3, d = 8, cols = 5;
  std::vector<float> hf(n_head * d * cols);
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
  std::vector<float> gguf = ConverterPermute(hf, n_head, cols);
  ASSERT_NE(gguf, hf);
  // Spot check the converter's layout: GGUF row 1 of head 0 is HF row d/2.
  EXPECT_EQ(gguf[1 * cols], hf[(d / 2) * cols]);
  ASSERT_TRUE(UndoLlamaRopePermutation(absl::MakeSpan(gguf), n_head * d, cols, n_head).ok());
  EXPECT_EQ(gguf, hf);
  // A bias (one column).
  std::vector<float> bias = {0, 1, 2, 3, 10, 11, 12, 13};
  std::vector<float> permuted = ConverterPermute(bias, 2, 1);
  EXPECT_THAT(permuted, ElementsAre(0, 2, 1, 3, 10, 12, 11, 13));
  ASSERT_TRUE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 8, 1, 2).ok());
  EXPECT_EQ(permuted, bias);
  EXPECT_FALSE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 8, 1, 3).ok());
  EXPECT_FALSE(UndoLlamaRopePermutation(absl::MakeSpan(permuted), 9, 1, 1).ok());
}

TEST(ModelConfigTest, Validate) {
  ModelConfig good;
  good.architecture = "llama";
  good.vocab_size = 100;
  good.hidden_size = 64;
  good.intermediate_size = 128;
  good.num_layers = 2;
  good.num_heads = 4;
  good.num_kv_heads = 2;
  good.head_dim = 16;
  good.max_position_embeddings = 256;
  ASSERT_TRUE(good.Validate().ok());
  const std::pair<std::function<void(ModelConfig&)>, const char*> bad[] = {
      {[](ModelConfig& c) { c.architecture = ""; }, "architecture"},
      {[](ModelConfig& c) { c.vocab_size = 0; }, "vocab_size"},
      {[](ModelConfig& c) { c.vocab_size = (1 << 22) + 1; }, "vocab_size"},
      {[](ModelConfig& c) { c.hidden_size = -64; }, "hidden_size"},
      {[](ModelConfig& c) { c.hidden_size = 1 << 17; }, "hidden_size"},
      {[](ModelConfig& c) { c.num_layers = 513; }, "num_layers"},
      {[](ModelConfig& c) { c.intermediate_size = 0; }, "intermediate_size"},
      {[](ModelConfig& c) { c.max_position_embeddings = 0; }, "max_position_embeddings"},
      {[](ModelConfig& c) { c.hidden_size = 66; }, "not a multiple of num_heads"},
      {[](ModelConfig& c) { c.num_kv_heads = 3; }, "not a multiple of num_kv_heads"},
      {[](ModelConfig& c) { c.head_dim = 15; }, "odd"},
      {[](ModelConfig& c) { c.rms_norm_eps = 0; }, "rms_norm_eps"},
      {[](ModelConfig& c) { c.rms_norm_eps = INFINITY; }, "rms_norm_eps"},
      {[](ModelConfig& c) { c.rope_theta = -1; }, "rope_theta"},
      {[](ModelConfig& c) { c.rope_theta = NAN; }, "rope_theta"},
      {[](ModelConfig& c) {
         c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
         c.rope_scaling.low_freq_factor = 5;
       },
       "llama3 rope_scaling"},
  };
  for (const auto& [mutate, field] : bad) {
    ModelConfig c = good;
    mutate(c);
    absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(Msg(s), HasSubstr(field));
  }
}

}  // namespace
}  // namespace cohost::runtime
