// LoadModelFile on tiny Hugging Face directories written by the test:
// config.json parsing, single-file and sharded safetensors, HF -> canonical
// names, and bad configs / indexes rejected with clear errors.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "cohost/kernels/cpu_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/engine/loaded_model.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "runtime/model/model.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/support/last_logits.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;
using namespace ::cohost::runtime::testing;  // NOLINT

struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // F32, F16, BF16
  std::vector<float> values;
};

// The file's bytes; with `align`, the header padded with spaces (as the
// format allows) so that the data section starts at a multiple of it.
std::string SafetensorsFileBytes(const std::vector<HfTensor>& tensors, size_t align = 0) {
  std::vector<std::string> entries = {R"("__metadata__": {"format": "pt"})"};
  std::string data;
  for (const HfTensor& t : tensors) {
    const size_t begin = data.size();
    for (float v : t.values) {
      if (t.dtype == "F32") Append(&data, v);
      if (t.dtype == "F16") Append<uint16_t>(&data, ExactHalf(v));
      if (t.dtype == "BF16") Append<uint16_t>(&data, ExactBf16(v));
    }
    entries.push_back(absl::StrCat("\"", t.name, "\": {\"dtype\": \"", t.dtype, "\", \"shape\": [",
                                   absl::StrJoin(t.shape, ", "), "], \"data_offsets\": [", begin,
                                   ", ", data.size(), "]}"));
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ", "), "}");
  if (align > 0) header.append((align - (8 + header.size()) % align) % align, ' ');
  return SafetensorsBytes(header, data);
}

constexpr char kLlamaConfig[] = R"({
  "architectures": ["LlamaForCausalLM"], "_name_or_path": "tiny-llama",
  "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "vocab_size": 8,
  "tie_word_embeddings": false, "rope_scaling": null, "torch_dtype": "bfloat16"})";

struct HfModel {
  std::vector<HfTensor> tensors;
  absl::flat_hash_map<std::string, std::vector<float>> expected;  // canonical name -> values
};

HfModel MakeHfModel(bool tied = false, bool bias = false, bool qk_norm = false) {
  HfModel m;
  int seed = 0;
  auto add = [&](const std::string& hf, const std::string& canonical, std::vector<int64_t> shape,
                 const std::string& dtype) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    ++seed;
    for (int64_t i = 0; i < n; ++i)
      v[i] = static_cast<float>(((i * 5 + seed * 11) % 23) - 11) / 4.f;
    m.tensors.push_back({hf, shape, dtype, v});
    if (!canonical.empty()) m.expected[canonical] = v;
  };
  add("model.embed_tokens.weight", "token_embd.weight", {8, 64}, "BF16");
  add("model.norm.weight", "output_norm.weight", {64}, "F32");
  if (!tied) add("lm_head.weight", "output.weight", {8, 64}, "F16");
  for (int l = 0; l < 2; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, "."), b = absl::StrCat("blk.", l, ".");
    add(p + "input_layernorm.weight", b + "attn_norm.weight", {64}, "F32");
    add(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", {64}, "F32");
    add(p + "self_attn.q_proj.weight", b + "attn_q.weight", {64, 64}, "F16");
    add(p + "self_attn.k_proj.weight", b + "attn_k.weight", {32, 64}, "BF16");
    add(p + "self_attn.v_proj.weight", b + "attn_v.weight", {32, 64}, "F32");
    add(p + "self_attn.o_proj.weight", b + "attn_output.weight", {64, 64}, "F32");
    add(p + "mlp.gate_proj.weight", b + "ffn_gate.weight", {96, 64}, "F32");
    add(p + "mlp.up_proj.weight", b + "ffn_up.weight", {96, 64}, "F16");
    add(p + "mlp.down_proj.weight", b + "ffn_down.weight", {64, 96}, "BF16");
    if (bias) {
      add(p + "self_attn.q_proj.bias", b + "attn_q.bias", {64}, "F32");
      add(p + "self_attn.k_proj.bias", b + "attn_k.bias", {32}, "F32");
      add(p + "self_attn.v_proj.bias", b + "attn_v.bias", {32}, "F32");
    }
    if (qk_norm) {
      add(p + "self_attn.q_norm.weight", b + "attn_q_norm.weight", {32}, "BF16");
      add(p + "self_attn.k_norm.weight", b + "attn_k_norm.weight", {32}, "F32");
    }
  }
  add("model.layers.0.self_attn.rotary_emb.inv_freq", "", {16}, "F32");  // ignored
  return m;
}

std::string WriteDir(const std::string& name, const std::string& config, const HfModel& m,
                     size_t align = 0) {
  const std::string dir = MakeTempDir(name);
  WriteFile(dir + "/config.json", config);
  WriteFile(dir + "/model.safetensors", SafetensorsFileBytes(m.tensors, align));
  return dir;
}

void ExpectTensors(const ModelFile& mf, const HfModel& m) {
  EXPECT_EQ(mf.tensors.size(), m.expected.size());
  for (const auto& [name, values] : m.expected) {
    auto it = mf.tensors.find(name);
    ASSERT_NE(it, mf.tensors.end()) << name;
    EXPECT_EQ(it->second.data, values) << name;  // no permutation: HF is rotate-half already
  }
}

TEST(HfModelTest, SingleFileLoads) {
  HfModel m = MakeHfModel();
  const std::string dir = WriteDir("hf_single", kLlamaConfig, m);
  absl::StatusOr<ModelFile> mf = LoadModelFile(dir);
  ASSERT_TRUE(mf.ok()) << mf.status();
  const ModelConfig& c = mf->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.name, "tiny-llama");
  EXPECT_EQ(c.vocab_size, 8);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_EQ(mf->tensors.at("blk.1.attn_k.weight").shape, (std::vector<int64_t>{32, 64}));
  ExpectTensors(*mf, m);
  // The tokenizer of a directory comes from tokenizer.json, read by the tokenizer library.
  EXPECT_TRUE(mf->tokenizer.tokens.empty());
}

// A tokenizer whose end-of-sequence token is past the config's vocab_size
// (rows of the embedding) is refused: it could never be sampled. Other
// tokens past it (a Llama 2 fine-tune's uncounted <pad>) are not.
// Kept as stored (the CPU's default), a checkpoint's F16 and BF16 matrices
// stay 16-bit as a GGUF's do: copied, or left in the file's mapping where
// they start 32-byte aligned; F32 ones and vectors arrive as fp32. The types
// are in the config for placement's prediction, which the model's weights
// then take exactly; its logits are the fp32 load's to rounding (of the
// activations too, where bf16 weights take AMX tiles or AVX512-BF16 pairs).
TEST(HfModelTest, SixteenBitMatricesStaySixteenBitWhenKept) {
  const HfModel m = MakeHfModel();
  for (const bool map : {false, true}) {
    SCOPED_TRACE(map ? "mapped" : "copied");
    // Every tensor's bytes are a multiple of 32 long: aligned data, aligned tensors.
    const std::string dir = WriteDir(map ? "hf_kept_mapped" : "hf_kept", kLlamaConfig, m, 32);
    LoadOptions options;
    options.keep_quantized = true;
    options.map_weights = map;
    absl::StatusOr<ModelFile> mf = LoadModelFile(dir, options);
    ASSERT_TRUE(mf.ok()) << mf.status();
    int kept = 0;
    for (const HfTensor& t : m.tensors) {
      const std::string name = HfToCanonicalName(t.name);
      if (name.empty()) continue;
      SCOPED_TRACE(name);
      const HostTensor& h = mf->tensors.at(name);
      const GgmlType type = t.dtype == "F16"    ? GgmlType::kF16
                            : t.dtype == "BF16" ? GgmlType::kBF16
                                                : GgmlType::kF32;
      EXPECT_EQ(mf->config.stored_types.at(name), type);
      if (t.shape.size() == 2 && type != GgmlType::kF32) {
        ++kept;
        ASSERT_TRUE(h.quantized());
        EXPECT_EQ(h.raw_type, type);
        EXPECT_EQ(!h.mapped.empty(), map);
        const absl::Span<const uint8_t> stored = h.stored();
        std::string encoded;
        for (float v : t.values) {
          Append<uint16_t>(&encoded, type == GgmlType::kF16 ? ExactHalf(v) : ExactBf16(v));
        }
        EXPECT_EQ(std::string(stored.begin(), stored.end()), encoded);
      } else {
        EXPECT_FALSE(h.quantized());
        EXPECT_EQ(h.data, t.values);
      }
    }
    EXPECT_EQ(kept, 10) << "the embedding, the lm_head, and q, k, up and down of each layer";
  }

  const std::string dir = WriteDir("hf_kept_model", kLlamaConfig, m, 32);
  const std::unique_ptr<kernels::Backend> be = kernels::MakeCpuBackend(2);
  absl::StatusOr<std::unique_ptr<Model>> kept =
      LoadWeights(dir, be.get(), nullptr, WeightsPolicy{.keep_quantized = true});
  absl::StatusOr<std::unique_ptr<Model>> dense = LoadWeights(dir, be.get());
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_EQ((*kept)->weights_bytes(),
            Model::PredictWeightsBytes((*kept)->config(), kernels::DType::kF32, true));
  EXPECT_LT((*kept)->weights_bytes(), (*dense)->weights_bytes());
  const std::vector<int32_t> prompt = {1, 3, 4, 5, 6, 2, 7};
  const std::vector<float> want = ::cohost::testing::LastLogits(**dense, be.get(), prompt, 7);
  const std::vector<float> got = ::cohost::testing::LastLogits(**kept, be.get(), prompt, 7);
  ASSERT_EQ(got.size(), want.size());
  if (kernels::HostCpuInfo().bf16_rounded()) {
    // The activations are rounded to bf16 (up to 1/256 of each value) before the
    // products with the BF16 matrices: model_test's bound for rounded
    // activations.
    float max_err = 0, max_abs = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_err = std::max(max_err, std::fabs(got[i] - want[i]));
      max_abs = std::max(max_abs, std::fabs(want[i]));
    }
    EXPECT_LT(max_err, 0.03f * max_abs) << "max |logit| " << max_abs;
    return;
  }
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-3f * (1 + std::fabs(want[i]))) << "logit " << i;
  }
}

TEST(HfModelTest, ATokenizerWhoseEndOfSequenceIsPastTheVocabIsRefused) {
  const std::string dir = WriteDir("hf_big_tokenizer", kLlamaConfig, MakeHfModel());
  const auto tokenizer_json = [](int tokens) {
    std::vector<std::string> vocab;
    for (int i = 0; i < tokens; ++i) {
      vocab.push_back(absl::StrCat("\"", std::string(1, static_cast<char>('a' + i)), "\": ", i));
    }
    return absl::StrCat(R"({"model": {"type": "BPE", "merges": [], "vocab": {)",
                        absl::StrJoin(vocab, ", "),
                        R"(}}, "pre_tokenizer": {"type": "ByteLevel"}})");
  };
  WriteFile(dir + "/tokenizer.json", tokenizer_json(9));
  WriteFile(dir + "/tokenizer_config.json", R"({"eos_token": "b"})");
  absl::StatusOr<ModelDescription> fits = DescribeModel(dir);
  ASSERT_TRUE(fits.ok()) << fits.status().message();
  WriteFile(dir + "/tokenizer_config.json", R"({"eos_token": "i"})");
  absl::StatusOr<ModelDescription> over = DescribeModel(dir);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.status().message(),
              HasSubstr("the tokenizer's end-of-sequence token is id 8, past the model's "
                        "vocab_size of 8"));
}

// A tensor the model does not use (an o_proj bias, which no supported
// architecture runs) is refused; RoPE's inv_freq of older checkpoints
// (MakeHfModel has one) is not.
TEST(HfModelTest, AnUnusedTensorIsRefused) {
  HfModel m = MakeHfModel();
  m.tensors.push_back(
      {"model.layers.0.self_attn.o_proj.bias", {64}, "F32", std::vector<float>(64, 1.f)});
  const std::string dir = WriteDir("hf_unused", kLlamaConfig, m);
  absl::StatusOr<ModelFile> mf = LoadModelFile(dir);
  EXPECT_EQ(mf.status().code(), absl::StatusCode::kUnimplemented) << mf.status();
  EXPECT_THAT(mf.status().message(),
              HasSubstr("tensor 'model.layers.0.self_attn.o_proj.bias' is not part of"));
}

TEST(HfModelTest, ShardedLoads) {
  HfModel m = MakeHfModel();
  const std::string dir = MakeTempDir("hf_sharded");
  WriteFile(dir + "/config.json", kLlamaConfig);
  std::vector<HfTensor> a(m.tensors.begin(), m.tensors.begin() + 7),
      b(m.tensors.begin() + 7, m.tensors.end());
  WriteFile(dir + "/model-00001-of-00002.safetensors", SafetensorsFileBytes(a));
  WriteFile(dir + "/model-00002-of-00002.safetensors", SafetensorsFileBytes(b));
  std::vector<std::string> map;
  for (const HfTensor& t : a)
    map.push_back(absl::StrCat("\"", t.name, "\": \"model-00001-of-00002.safetensors\""));
  for (const HfTensor& t : b)
    map.push_back(absl::StrCat("\"", t.name, "\": \"model-00002-of-00002.safetensors\""));
  WriteFile(dir + "/model.safetensors.index.json",
            absl::StrCat(R"({"metadata": {"total_size": 1}, "weight_map": {)",
                         absl::StrJoin(map, ", "), "}}"));
  uint64_t last_done = 0, last_total = 1;
  LoadOptions options;
  options.progress = [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
  };
  absl::StatusOr<ModelFile> mf = LoadModelFile(dir, options);
  ASSERT_TRUE(mf.ok()) << mf.status();
  ExpectTensors(*mf, m);
  EXPECT_EQ(last_done, last_total);
  EXPECT_GT(last_total, 0u);

  // The index must not point outside the directory, nor at a shard lacking the tensor.
  WriteFile(dir + "/model.safetensors.index.json",
            R"({"weight_map": {"model.norm.weight": "../model-00001-of-00002.safetensors"}})");
  absl::StatusOr<ModelFile> bad = LoadModelFile(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("not a file name in the directory"));
  WriteFile(dir + "/model.safetensors.index.json",
            R"({"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}})");
  bad = LoadModelFile(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(
      Msg(bad.status()),
      HasSubstr("model-00002-of-00002.safetensors: the index places tensor 'model.norm.weight'"));
  WriteFile(dir + "/model.safetensors.index.json",
            R"({"weight_map": {"model.norm.weight": "missing.safetensors"}})");
  EXPECT_EQ(LoadModelFile(dir).status().code(), absl::StatusCode::kNotFound);
  WriteFile(dir + "/model.safetensors.index.json", R"({"weights": {}})");
  bad = LoadModelFile(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("no 'weight_map' object"));
}

TEST(HfModelTest, TiedAndQwen2) {
  HfModel tied = MakeHfModel(/*tied=*/true);
  std::string config = absl::StrReplaceAll(
      kLlamaConfig, {{R"("tie_word_embeddings": false)", R"("tie_word_embeddings": true)"}});
  absl::StatusOr<ModelFile> mf = LoadModelFile(WriteDir("hf_tied", config, tied));
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_TRUE(mf->config.tie_word_embeddings);
  ExpectTensors(*mf, tied);

  const std::string qwen =
      absl::StrReplaceAll(kLlamaConfig, {{"LlamaForCausalLM", "Qwen2ForCausalLM"}});
  HfModel with_bias = MakeHfModel(false, /*bias=*/true);
  mf = LoadModelFile(WriteDir("hf_qwen", qwen, with_bias));
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.architecture, "qwen2");
  EXPECT_TRUE(mf->config.attention_bias);  // Qwen2 always has q/k/v bias
  ExpectTensors(*mf, with_bias);

  mf = LoadModelFile(WriteDir("hf_qwen_nobias", qwen, MakeHfModel()));
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("missing tensor 'blk.0.attn_q.bias'"));
}

TEST(HfModelTest, Qwen3HasPerHeadNormsAndNoBias) {
  const std::string qwen3 =
      absl::StrReplaceAll(kLlamaConfig, {{"LlamaForCausalLM", "Qwen3ForCausalLM"}});
  HfModel m = MakeHfModel(false, false, /*qk_norm=*/true);
  absl::StatusOr<ModelFile> mf = LoadModelFile(WriteDir("hf_qwen3", qwen3, m));
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->config.architecture, "qwen3");
  EXPECT_TRUE(mf->config.qk_norm());
  EXPECT_FALSE(mf->config.attention_bias);
  ExpectTensors(*mf, m);

  mf = LoadModelFile(WriteDir("hf_qwen3_nonorm", qwen3, MakeHfModel()));
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("missing tensor 'blk.0.attn_q_norm.weight'"));
  // Another architecture's file with the norms: named, not ignored.
  mf = LoadModelFile(WriteDir("hf_llama_norms", kLlamaConfig, m));
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("_norm.weight' is not part of the model"));
  // transformers' Qwen3 biases o_proj too, which cohost does not run.
  const std::string biased =
      absl::StrReplaceAll(qwen3, {{R"("tie_word_embeddings": false)",
                                   R"("tie_word_embeddings": false, "attention_bias": true)"}});
  mf = LoadModelFile(WriteDir("hf_qwen3_bias", biased, MakeHfModel(false, true, true)));
  EXPECT_EQ(mf.status().code(), absl::StatusCode::kUnimplemented);
  const std::string sliding =
      absl::StrReplaceAll(qwen3, {{R"("tie_word_embeddings": false)",
                                   R"("tie_word_embeddings": false, "use_sliding_window": true)"}});
  mf = LoadModelFile(WriteDir("hf_qwen3_sliding", sliding, m));
  EXPECT_EQ(mf.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(HfModelTest, WeightProblems) {
  HfModel m = MakeHfModel();
  m.tensors[3].shape = {64, 2};  // input_layernorm of layer 0, 128 values
  m.tensors[3].values.resize(128);
  absl::StatusOr<ModelFile> mf = LoadModelFile(WriteDir("hf_shape", kLlamaConfig, m));
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("tensor 'model.layers.0.input_layernorm.weight' "
                                          "(blk.0.attn_norm.weight) has shape [64, 2]"));

  HfModel missing = MakeHfModel();
  std::erase_if(missing.tensors,
                [](const HfTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  mf = LoadModelFile(WriteDir("hf_missing", kLlamaConfig, missing));
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("missing tensor 'blk.1.ffn_up.weight'"));

  const std::string dir = MakeTempDir("hf_noweights");
  WriteFile(dir + "/config.json", kLlamaConfig);
  mf = LoadModelFile(dir);
  EXPECT_EQ(mf.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(mf.status()), HasSubstr("neither model.safetensors nor"));

  WriteFile(dir + "/model.safetensors", "garbage!");
  mf = LoadModelFile(dir);
  ASSERT_FALSE(mf.ok());
  EXPECT_THAT(Msg(mf.status()), HasSubstr("model.safetensors: header length"));

  const std::string empty = MakeTempDir("hf_empty");
  // No config.json: the directory is there, but not a checkpoint.
  EXPECT_EQ(LoadModelFile(empty).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(LoadModelFile(empty).status()), HasSubstr("without config.json"));
}

absl::StatusOr<ModelConfig> ParseEdited(std::vector<std::pair<std::string, std::string>> edits) {
  return ParseHfConfig(absl::StrReplaceAll(kLlamaConfig, edits), "config.json");
}

TEST(HfConfigTest, RopeScalingAndMistral) {
  absl::StatusOr<ModelConfig> c = ParseEdited(
      {{R"("rope_scaling": null)",
        R"("rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 32.f);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);

  c = ParseEdited({{"LlamaForCausalLM", "MistralForCausalLM"},
                   {R"("rope_scaling": null)", R"("sliding_window": 128, "head_dim": 16)"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "mistral");
  EXPECT_EQ(c->max_position_embeddings, 128);  // served up to the window only
  EXPECT_EQ(c->head_dim, 16);
  // transformers' Mistral reads no attention_bias (it expected q/k/v biases).
  c = ParseEdited({{"LlamaForCausalLM", "MistralForCausalLM"},
                   {R"("rope_scaling": null)", R"("attention_bias": true)"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->attention_bias);

  c = ParseEdited({{R"("rope_scaling": null)", R"("rope_scaling": {"type": "default"})"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kNone);

  // transformers' newer form: the theta and the scaling in one object (a
  // top-level theta may be null then; it was read as the 10000 default).
  c = ParseEdited({{R"("rope_theta": 10000.0)", R"("rope_theta": null)"},
                   {R"("rope_scaling": null)",
                    R"("rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0})"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_theta, 1e6f);
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kNone);
  c = ParseEdited(
      {{R"("rope_scaling": null)",
        R"("rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192})"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_theta, 5e5f);
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 8.f);
}

TEST(HfConfigTest, Errors) {
  const struct {
    std::vector<std::pair<std::string, std::string>> edits;
    absl::StatusCode code;
    std::string substring;
  } cases[] = {
      {{{R"("hidden_size": 64,)", ""}},
       absl::StatusCode::kInvalidArgument,
       "'hidden_size' is missing"},
      {{{R"("vocab_size": 8,)", ""}},
       absl::StatusCode::kInvalidArgument,
       "'vocab_size' is missing"},
      {{{R"("num_hidden_layers": 2,)", ""}},
       absl::StatusCode::kInvalidArgument,
       "'num_hidden_layers' is missing"},
      {{{R"("hidden_size": 64)", R"("hidden_size": "64")"}},
       absl::StatusCode::kInvalidArgument,
       "'hidden_size' must be an integer"},
      {{{R"("hidden_size": 64)", R"("hidden_size": 64.5)"}},
       absl::StatusCode::kInvalidArgument,
       "'hidden_size' must be an integer"},
      {{{R"("hidden_size": 64)", R"("hidden_size": -64)"}},
       absl::StatusCode::kInvalidArgument,
       "out of range"},
      {{{R"("hidden_size": 64)", R"("hidden_size": 99999999999)"}},
       absl::StatusCode::kInvalidArgument,
       "out of range"},
      {{{R"("num_attention_heads": 2)", R"("num_attention_heads": 3)"}},
       absl::StatusCode::kInvalidArgument,
       "hidden_size 64 is not a multiple of num_heads 3"},
      {{{R"("rms_norm_eps": 1e-05)", R"("rms_norm_eps": 0)"}},
       absl::StatusCode::kInvalidArgument,
       "rms_norm_eps"},
      {{{R"("rope_theta": 10000.0)", R"("rope_theta": "big")"}},
       absl::StatusCode::kInvalidArgument,
       "'rope_theta' must be a number"},
      {{{R"("tie_word_embeddings": false)", R"("tie_word_embeddings": 0)"}},
       absl::StatusCode::kInvalidArgument,
       "'tie_word_embeddings' must be true or false"},
      {{{R"("vocab_size": 8,)", R"("vocab_size": 8, "vocab_size": 9,)"}},
       absl::StatusCode::kInvalidArgument,
       "duplicate key \"vocab_size\""},
      {{{"}", ""}}, absl::StatusCode::kInvalidArgument, "malformed JSON"},
      {{{"LlamaForCausalLM", "GPT2LMHeadModel"}},
       absl::StatusCode::kUnimplemented,
       "architecture \"GPT2LMHeadModel\" is not supported"},
      // A file's string in an error is escaped and cut to 64 bytes.
      {{{"LlamaForCausalLM", std::string(5000, 'A') + "\\n"}},
       absl::StatusCode::kUnimplemented,
       "architecture \"" + std::string(64, 'A') + "\"... is not supported"},
      {{{R"(["LlamaForCausalLM"])", "[]"}},
       absl::StatusCode::kInvalidArgument,
       "'architectures' is missing"},
      {{{R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"}},
       absl::StatusCode::kUnimplemented,
       "rope_scaling type 'yarn'"},
      {{{R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0})"}},
       absl::StatusCode::kInvalidArgument,
       "'rope_scaling.low_freq_factor' is missing"},
      {{{R"("rope_scaling": null)", R"("rope_scaling": 8)"}},
       absl::StatusCode::kInvalidArgument,
       "'rope_scaling' must be an object"},
      {{{"LlamaForCausalLM", "Qwen2ForCausalLM"},
        {R"("rope_scaling": null)", R"("use_sliding_window": true)"}},
       absl::StatusCode::kUnimplemented,
       "use_sliding_window"},
      // What these models compute and cohost does not: refused, not run
      // without.
      {{{R"("rope_scaling": null)",
         R"("rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0})"}},
       absl::StatusCode::kUnimplemented,
       "rope_parameters type 'yarn'"},
      {{{R"("rope_scaling": null)", R"("hidden_act": "gelu")"}},
       absl::StatusCode::kUnimplemented,
       "hidden_act \"gelu\""},
      {{{R"("rope_scaling": null)", R"("mlp_bias": true)"}},
       absl::StatusCode::kUnimplemented,
       "mlp_bias"},
      {{{R"("rope_scaling": null)", R"("attention_bias": true)"}},
       absl::StatusCode::kUnimplemented,
       "attention_bias"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ModelConfig> config = ParseEdited(c.edits);
    ASSERT_FALSE(config.ok()) << c.substring;
    EXPECT_EQ(config.status().code(), c.code) << config.status();
    EXPECT_THAT(Msg(config.status()), HasSubstr("config.json: "));
    EXPECT_THAT(Msg(config.status()), HasSubstr(c.substring));
  }
  EXPECT_FALSE(ParseHfConfig("[1]", "config.json").ok());
  EXPECT_FALSE(ParseHfConfig("", "config.json").ok());
}

TEST(HfNamesTest, CanonicalNames) {
  EXPECT_EQ(HfToCanonicalName("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(HfToCanonicalName("lm_head.weight"), "output.weight");
  EXPECT_EQ(HfToCanonicalName("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.12.mlp.down_proj.weight"), "blk.12.ffn_down.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.0.self_attn.o_proj.weight"),
            "blk.0.attn_output.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.3.self_attn.k_proj.bias"), "blk.3.attn_k.bias");
  EXPECT_EQ(HfToCanonicalName("model.layers.3.post_attention_layernorm.weight"),
            "blk.3.ffn_norm.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.01.mlp.up_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.-1.mlp.up_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.x.mlp.up_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.0.self_attn.rotary_emb.inv_freq"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers..mlp.up_proj.weight"), "");
  // Experts: Qwen3-MoE's and Mixtral's names.
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.gate.weight"), "blk.2.ffn_gate_inp.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.experts.17.gate_proj.weight"),
            "blk.2.ffn_gate.17.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.experts.0.down_proj.weight"),
            "blk.2.ffn_down.0.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.5.block_sparse_moe.gate.weight"),
            "blk.5.ffn_gate_inp.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.5.block_sparse_moe.experts.7.w1.weight"),
            "blk.5.ffn_gate.7.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.5.block_sparse_moe.experts.7.w3.weight"),
            "blk.5.ffn_up.7.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.5.block_sparse_moe.experts.7.w2.weight"),
            "blk.5.ffn_down.7.weight");
  EXPECT_EQ(HfToCanonicalName("model.layers.5.block_sparse_moe.experts.7.up_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.experts.07.gate_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.experts.gate_proj.weight"), "");
  EXPECT_EQ(HfToCanonicalName("model.layers.2.mlp.shared_expert.gate_proj.weight"), "");
}

TEST(HfConfigTest, Experts) {
  // Qwen3-MoE: its own expert width; norm_topk_prob false unless said, as
  // transformers reads it.
  const std::pair<std::string, std::string> qwen3moe = {"LlamaForCausalLM", "Qwen3MoeForCausalLM"};
  absl::StatusOr<ModelConfig> c = ParseEdited(
      {qwen3moe,
       {R"("rope_scaling": null)",
        R"("num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768)"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "qwen3moe");
  EXPECT_TRUE(c->qk_norm());
  EXPECT_EQ(c->num_experts, 128);
  EXPECT_EQ(c->num_experts_used, 8);
  EXPECT_EQ(c->expert_intermediate_size, 768);
  EXPECT_FALSE(c->norm_topk_prob);
  c = ParseEdited({qwen3moe,
                   {R"("rope_scaling": null)",
                    R"("num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                        "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [])"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->norm_topk_prob);
  // Mixtral: Mistral with experts as wide as intermediate_size, always normalized.
  c = ParseEdited(
      {{"LlamaForCausalLM", "MixtralForCausalLM"},
       {R"("rope_scaling": null)", R"("num_local_experts": 8, "num_experts_per_tok": 2)"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "mistral");
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->expert_intermediate_size, c->intermediate_size);
  EXPECT_TRUE(c->norm_topk_prob);

  const struct {
    std::vector<std::pair<std::string, std::string>> edits;
    absl::StatusCode code;
    std::string substring;
  } bad[] = {
      {{qwen3moe, {R"("rope_scaling": null)", R"("num_experts": 4, "num_experts_per_tok": 2)"}},
       absl::StatusCode::kInvalidArgument,
       "'moe_intermediate_size' is missing"},
      {{qwen3moe,
        {R"("rope_scaling": null)",
         R"("num_experts": 4, "num_experts_per_tok": 5, "moe_intermediate_size": 32)"}},
       absl::StatusCode::kInvalidArgument,
       "num_experts_used = 5 is outside [1, 4]"},
      {{qwen3moe,
        {R"("rope_scaling": null)",
         R"("num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
             "mlp_only_layers": [0])"}},
       absl::StatusCode::kUnimplemented,
       "dense layers among the sparse ones"},
      {{qwen3moe,
        {R"("rope_scaling": null)",
         R"("num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
             "decoder_sparse_step": 2)"}},
       absl::StatusCode::kUnimplemented,
       "dense layers among the sparse ones"},
      {{{"LlamaForCausalLM", "MixtralForCausalLM"},
        {R"("rope_scaling": null)", R"("num_experts_per_tok": 2)"}},
       absl::StatusCode::kInvalidArgument,
       "'num_local_experts' is missing"},
  };
  for (const auto& b : bad) {
    absl::StatusOr<ModelConfig> r = ParseEdited(b.edits);
    ASSERT_FALSE(r.ok()) << b.substring;
    EXPECT_EQ(r.status().code(), b.code) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.substring));
  }
}

}  // namespace
}  // namespace cohost::runtime
