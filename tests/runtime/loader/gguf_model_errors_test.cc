// LoadModelFile on tiny GGUF models whose metadata or tensors are wrong:
// each gives a clear error naming the file; plus the metadata variants that
// are accepted (SentencePiece defaults, Llama-3 rope_freqs).
#include <cmath>
#include <numbers>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/gguf_reader.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/runtime/loader/tiny_gguf_model.h"

namespace cohost::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

TEST(GgufModelTest, TensorProblems) {
  {
    TinyModel m = MakeTinyModel();
    std::erase_if(m.writer.tensors, [](const auto& t) { return t.name == "blk.0.ffn_up.weight"; });
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "missing tensor 'blk.0.ffn_up.weight'");
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
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "not a multiple of the Q4_K block size");
  }
  for (const auto& [type, block_bytes, scale_at] :
       {std::tuple{kTQ5_0, 22, 0}, std::tuple{kTQ4_1, 20, 2}}) {
    // A scale or min that is NaN, in a tensor kept in its blocks or
    // dequantized: refused before use, naming the tensor and the block (the
    // K-quants' fields: dequant_test).
    for (const bool keep : {false, true}) {
      TinyModel m = MakeTinyModel();
      GgufWriter::Tensor& t = FindTensor(m.writer, "blk.0.ffn_down.weight");
      const int64_t values = t.dims[0] * t.dims[1];
      t.type = type;
      t.data = std::string(static_cast<size_t>(values / 32 * block_bytes), '\0');
      t.data[static_cast<size_t>(block_bytes) + static_cast<size_t>(scale_at) + 1] =
          '\x7e';  // 0x7e00: NaN
      LoadOptions options;
      options.keep_quantized = keep;
      ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                      "tensor 'blk.0.ffn_down.weight': ", options);
      ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                      "block 1 has a non-finite scale", options);
    }
  }
  for (const char* extra : {"blk.0.attn_q_norm.weight", "blk.1.attn_norm.weight"}) {
    // Another architecture's norm (Qwen3's, in a file saying llama), or a
    // layer past block_count: refused, not left out of the computation.
    TinyModel m = MakeTinyModel();
    m.writer.AddTensor(extra, {64}, kTF32, std::string(256, '\0'));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented,
                    absl::StrCat("tensor '", extra, "' is not part of the model"));
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

// Every type a matrix may be stored in, in a file whose matrix of that type
// is wrong: rows that are not whole blocks; an infinite or NaN scale or min
// (each such field of a block), whether the matrix is dequantized, kept as
// copied blocks or kept in the file's mapping; a file that ends inside it.
// Each is refused, naming the file, the tensor and what is wrong. (The
// fields' offsets are written out here, not taken from the loader's table.)
TEST(GgufModelTest, EachStoredTypesBadMatricesAreRefused) {
  struct Type {
    uint32_t id;
    std::string name;
    int block_values, block_bytes;
    std::vector<int> scale_fields;  // byte offsets of a block's fp16 factors
  };
  const Type types[] = {
      {kTF16, "F16", 1, 2, {}},           {kTBF16, "BF16", 1, 2, {}},
      {kTQ4_0, "Q4_0", 32, 18, {0}},      {kTQ4_1, "Q4_1", 32, 20, {0, 2}},
      {kTQ5_0, "Q5_0", 32, 22, {0}},      {kTQ5_1, "Q5_1", 32, 24, {0, 2}},
      {kTQ8_0, "Q8_0", 32, 34, {0}},      {kTQ2_K, "Q2_K", 256, 84, {80, 82}},
      {kTQ3_K, "Q3_K", 256, 110, {108}},  {kTQ4_K, "Q4_K", 256, 144, {0, 2}},
      {kTQ5_K, "Q5_K", 256, 176, {0, 2}}, {kTQ6_K, "Q6_K", 256, 210, {208}},
  };
  TinyOptions wide;  // rows of 256: whole blocks of every type
  wide.hidden = 256;
  wide.ffn = 256;
  constexpr int64_t kValues = 256 * 256;
  const std::string kName = "blk.0.ffn_down.weight";
  // The tiny model with its ffn_down stored as `t` (zero blocks), last in the file.
  const auto stored_as = [&](const Type& t) {
    TinyModel m = MakeTinyModel(wide);
    GgufWriter::Tensor x = FindTensor(m.writer, kName);
    std::erase_if(m.writer.tensors, [&](const auto& other) { return other.name == kName; });
    x.type = t.id;
    x.data = std::string(static_cast<size_t>(kValues / t.block_values * t.block_bytes), '\0');
    m.writer.tensors.push_back(std::move(x));
    return m;
  };
  LoadOptions dequantized, copied, mapped;
  copied.keep_quantized = mapped.keep_quantized = true;
  mapped.map_weights = true;
  for (const Type& t : types) {
    SCOPED_TRACE(t.name);
    {
      // Well formed, it loads, and the mapped load keeps it in the mapping.
      absl::StatusOr<ModelFile> mf = LoadBytes(stored_as(t).writer.Build(), mapped);
      ASSERT_TRUE(mf.ok()) << mf.status();
      EXPECT_FALSE(mf->tensors.at(kName).mapped.empty());
    }
    if (t.block_values > 1) {
      TinyModel m = stored_as(t);
      FindTensor(m.writer, kName).dims = {static_cast<uint64_t>(t.block_values / 2),
                                          static_cast<uint64_t>(kValues * 2 / t.block_values)};
      ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                      absl::StrCat("row length ", t.block_values / 2, " is not a multiple of the ",
                                   t.name, " block size"));
    }
    for (const int field : t.scale_fields) {
      for (const uint8_t high : {uint8_t{0x7c}, uint8_t{0xfe}}) {  // +infinity, a NaN
        for (const LoadOptions& options : {dequantized, copied, mapped}) {
          TinyModel m = stored_as(t);
          // The high byte of the field in block 1 (little-endian fp16).
          FindTensor(m.writer, kName)
              .data[static_cast<size_t>(t.block_bytes) + static_cast<size_t>(field) + 1] =
              static_cast<char>(high);
          ExpectLoadError(
              m.writer, absl::StatusCode::kInvalidArgument,
              absl::StrCat("tensor '", kName, "': ", t.name, " block 1 has a non-finite scale"),
              options);
        }
      }
    }
    {
      // The file ends a block before the matrix does.
      std::string bytes = stored_as(t).writer.Build();
      bytes.resize(bytes.size() - static_cast<size_t>(t.block_bytes));
      const absl::StatusOr<ModelFile> mf = LoadBytes(bytes, mapped, "cut.gguf");
      ASSERT_FALSE(mf.ok());
      EXPECT_EQ(mf.status().code(), absl::StatusCode::kInvalidArgument) << mf.status();
      EXPECT_THAT(Msg(mf.status()), HasSubstr("cut.gguf"));
      EXPECT_THAT(Msg(mf.status()), HasSubstr(absl::StrCat("tensor '", kName, "' data")));
      EXPECT_THAT(Msg(mf.status()), HasSubstr("runs past the end of the file"));
    }
  }
}

TEST(GgufModelTest, UnsupportedTensorTypeIsUnimplemented) {
  // Q8_K (llama.cpp's activation type, never a weight's) for the [256]-wide
  // rows of a model whose hidden size is 256.
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  for (auto [k, v] : {std::pair{"block_count", 1},
                      {"context_length", 64},
                      {"embedding_length", 256},
                      {"feed_forward_length", 256},
                      {"attention.head_count", 4}}) {
    w.AddU32(absl::StrCat("llama.", k), v);
  }
  w.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b"});
  w.AddStringArray("tokenizer.ggml.merges", {"a b"});
  w.AddTensor("token_embd.weight", {256, 2}, kTQ8_K, std::string(2 * 292, '\0'));
  ExpectLoadError(w, absl::StatusCode::kUnimplemented, "tensor 'token_embd.weight' has type Q8_K");
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
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented,
                    "architecture \"gpt2\" is not supported");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.attention.head_count_kv", kGU32, U32(3));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "num_heads 2 is not a multiple of num_kv_heads 3");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.embedding_length", kGString,
            std::string("\x02\0\0\0\0\0\0\0"
                        "64",
                        10));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "'llama.embedding_length': expected an integer");
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
  // Linear scaling that llama.cpp applies: by the older key, or a factor
  // without a type (linear to it); refused, not run unscaled.
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddF32("llama.rope.scale_linear", 4.f);
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "rope.scale_linear 4");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddF32("llama.rope.scaling.factor", 4.f);
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "rope scaling 'linear' (factor 4)");
  }
  // Biases llama.cpp adds where a file has them, and cohost has no place for.
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddF32Tensor("blk.0.attn_output.bias", {static_cast<uint64_t>(kHidden)},
                          std::vector<float>(kHidden, 0.5f));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "'blk.0.attn_output.bias'");
  }
  {
    TinyModel m = MakeTinyModel();
    SetMeta(m.writer, "llama.attention.layer_norm_rms_epsilon", kGF32,
            std::string("\0\0\xc0\x7f", 4));  // NaN
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "rms_norm_eps");
  }
}

TEST(GgufModelTest, ExpertProblems) {
  {
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    RemoveMeta(m.writer, "qwen3moe.expert_count");
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "'qwen3moe.expert_count' is missing");
  }
  {
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    RemoveMeta(m.writer, "qwen3moe.expert_feed_forward_length");
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "'qwen3moe.expert_feed_forward_length' is missing");
  }
  {
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    SetMeta(m.writer, "qwen3moe.expert_used_count", kGU32, U32(4));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "num_experts_used = 4 is outside [1, 3]");
  }
  {
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    m.writer.AddU32("qwen3moe.expert_gating_func", 2);
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "expert_gating_func 2");
  }
  {
    // Qwen2-MoE's layout (shared experts) is another architecture; experts
    // in a Qwen2 file are not run as Mixtral's.
    TinyModel m = MakeTinyModel({.arch = "qwen2", .experts = 3});
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "experts in a qwen2 model");
  }
  {
    // The merged tensor holds 3 experts where the metadata says 4.
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    SetMeta(m.writer, "qwen3moe.expert_count", kGU32, U32(4));
    ExpectLoadError(
        m.writer, absl::StatusCode::kInvalidArgument,
        "tensor 'blk.0.ffn_gate_inp.weight' has shape [3, 64]; the config needs [4, 64]");
  }
  {
    // The router says 4 experts with the metadata, the merged tensors hold
    // 3: named, whether the experts would be kept in blocks (mapped or
    // copied) or dequantized.
    for (const bool keep : {false, true}) {
      for (const bool map : {false, true}) {
        TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
        SetMeta(m.writer, "qwen3moe.expert_count", kGU32, U32(4));
        std::erase_if(m.writer.tensors, [](const GgufWriter::Tensor& t) {
          return t.name == "blk.0.ffn_gate_inp.weight";
        });
        m.writer.AddF32Tensor("blk.0.ffn_gate_inp.weight", {static_cast<uint64_t>(kHidden), 4},
                              std::vector<float>(4 * kHidden, 0.5f));
        LoadOptions options;
        options.keep_quantized = keep;
        options.map_weights = map;
        ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                        "tensor 'blk.0.ffn_gate_exps.weight' has shape [3, 96, 64]; the config "
                        "needs [4, 96, 64]",
                        options);
      }
    }
  }
  {
    // More layers of experts than any model has: refused before the tensors
    // they would name are listed.
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    SetMeta(m.writer, "qwen3moe.expert_count", kGU32, U32(1024));
    SetMeta(m.writer, "qwen3moe.block_count", kGU32, U32(512));
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "512 layers of 1024 experts is over 65536 experts in all");
  }
  {
    // A shared expert (Qwen2-MoE's, DeepSeek's) is not run: refused.
    TinyModel m = MakeTinyModel({.arch = "qwen3moe", .experts = 3});
    m.writer.AddF32Tensor("blk.0.ffn_gate_shexp.weight", {static_cast<uint64_t>(kHidden)},
                          std::vector<float>(kHidden, 0.5f));
    ExpectLoadError(m.writer, absl::StatusCode::kUnimplemented, "'blk.0.ffn_gate_shexp.weight'");
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
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "'tokenizer.ggml.bos_token_id' = 8 is not a token id");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddArray<float>("tokenizer.ggml.scores", kGF32, {0, 1, 2});
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "scores has 3 entries for 8 tokens");
  }
  {
    TinyModel m = MakeTinyModel();
    RemoveMeta(m.writer, "tokenizer.ggml.token_type");
    m.writer.AddArray<int32_t>("tokenizer.ggml.token_type", kGI32, {1, 1, 1, 1, 1, 1, 1, 9});
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "token 7 has invalid token type 9");
  }
  {
    TinyModel m = MakeTinyModel();
    RemoveMeta(m.writer, "tokenizer.ggml.merges");
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument, "needs 'tokenizer.ggml.merges'");
  }
  {
    TinyModel m = MakeTinyModel();
    m.writer.AddU32("llama.vocab_size", 4);  // fewer than the 8 tokens
    ExpectLoadError(m.writer, absl::StatusCode::kInvalidArgument,
                    "8 tokens but the model's vocab_size is 4");
  }
}

// Corrupting any one byte before the tensor data gives a model or an error,
// never a crash (AddressSanitizer runs of loader_test check the memory side).
TEST(GgufModelTest, CorruptedMetadataNeverCrashes) {
  const std::string bytes = MakeTinyModel().writer.Build();
  absl::StatusOr<GgufFile> f = GgufFile::Open([&] {
    const std::string path = TempPath("tiny_ok.gguf");
    WriteFile(path, bytes);
    return path;
  }());
  ASSERT_TRUE(f.ok()) << f.status();
  int errors = 0;
  for (size_t i = 0; i < f->data_offset(); i += 3) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    if (!LoadBytes(bad, {}, "corrupt_model.gguf").ok()) ++errors;
  }
  EXPECT_GT(errors, 0);
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
  EXPECT_TRUE(mf->tokenizer.space_prefix_after_special) << "llama.cpp's rule";
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
  ExpectLoadError(other.writer, absl::StatusCode::kUnimplemented,
                  "does not match Llama-3 RoPE scaling");

  // Ones but one entry below: llama.cpp would divide that frequency; it was
  // taken as "no scaling" because the largest entry is 1.
  TinyModel below = MakeTinyModel();
  std::vector<float> ones(kHeadDim / 2, 1.f);
  ones.back() = 0.25f;
  below.writer.AddF32Tensor("rope_freqs.weight", {kHeadDim / 2}, ones);
  ExpectLoadError(below.writer, absl::StatusCode::kUnimplemented,
                  "does not match Llama-3 RoPE scaling");
  // Factors the formula gives for an original context of 0 (every wavelength
  // past it: all entries the factor), and a factor below 1: refused as a
  // config.json's rope_scaling would be, not taken as scaling.
  for (const auto& [factor, original] : {std::pair{2.f, 0}, std::pair{0.5f, 8192}}) {
    TinyModel bad = MakeTinyModel();
    bad.writer.AddU32("llama.rope.scaling.original_context_length", original);
    bad.writer.AddF32Tensor("rope_freqs.weight", {kHeadDim / 2},
                            std::vector<float>(kHeadDim / 2, factor));
    ExpectLoadError(bad.writer, absl::StatusCode::kInvalidArgument, "invalid llama3 rope_scaling");
  }
  // All ones: no scaling.
  TinyModel plain = MakeTinyModel();
  plain.writer.AddF32Tensor("rope_freqs.weight", {kHeadDim / 2},
                            std::vector<float>(kHeadDim / 2, 1.f));
  absl::StatusOr<ModelFile> none = LoadBytes(plain.writer.Build());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->config.rope_scaling.kind, RopeScaling::Kind::kNone);
}

}  // namespace
}  // namespace cohost::runtime
