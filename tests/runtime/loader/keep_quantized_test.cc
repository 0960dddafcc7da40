// LoadOptions::keep_quantized: the matrices stored in a block type or in
// F16 / BF16 with rows a multiple of 32 (the embedding too) arrive as stored,
// rows in rotate-half RoPE order for Llama's q and k (in the file's order,
// for adjacent-pair RoPE, where they stay mapped), and dequantize to
// exactly the values a plain load gives; everything else (norms, fp32
// matrices) is fp32 as before.

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/model_file.h"
#include "runtime/loader/model_loading.h"
#include "tests/runtime/loader/loader_test_util.h"
#include "tests/runtime/loader/tiny_gguf_model.h"

namespace cohost::runtime {
namespace {

using testing::MakeTinyModel;
using testing::TempPath;
using testing::TinyOptions;
using testing::WriteFile;

TEST(KeepQuantizedTest, LinearLayersKeepTheirBlocksAndDequantizeToThePlainValues) {
  // The third: 3 experts merged as llama.cpp writes them (Mixtral's, a
  // Llama file), each expert's rows a view of its part of the tensor.
  for (const auto& [quantized_attention, experts] : {std::pair{false, 0}, {true, 0}, {false, 3}}) {
    SCOPED_TRACE(quantized_attention ? "q, k, v in Q8_0" : "q f32, k f16, v Q4_1");
    SCOPED_TRACE(experts);
    TinyOptions o;
    o.quantized_attention = quantized_attention;
    o.experts = experts;
    testing::TinyModel m = MakeTinyModel(o);
    const std::string path = TempPath("keep_quantized.gguf");
    WriteFile(path, m.writer.Build());
    LoadOptions keep;
    keep.keep_quantized = true;
    absl::StatusOr<ModelFile> kept = LoadModelFile(path, keep);
    absl::StatusOr<ModelFile> plain = LoadModelFile(path);
    keep.map_weights = true;
    absl::StatusOr<ModelFile> mapped = LoadModelFile(path, keep);
    std::filesystem::remove(path);  // the mapping stays valid: it holds the file
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    ASSERT_TRUE(kept.ok()) << kept.status();
    // Mapped, Llama's q and k keep the file's row order (RoPE then turns
    // adjacent pairs); copied, the converter's permutation is undone.
    EXPECT_TRUE(mapped->config.rope_adjacent_pairs);
    EXPECT_FALSE(kept->config.rope_adjacent_pairs);
    int views = 0;
    for (const auto& [name, t] : mapped->tensors) {
      SCOPED_TRACE(name);
      const HostTensor& copied = kept->tensors.at(name);
      ASSERT_EQ(t.quantized(), copied.quantized());
      const bool permuted = name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight");
      const int32_t heads =
          name.ends_with("attn_q.weight") ? mapped->config.num_heads : mapped->config.num_kv_heads;
      // The rows in the copy's order: the converter's permutation undone.
      const int64_t num_rows = t.shape[0];
      auto in_copy_order = [permuted, num_rows, heads](absl::Span<uint8_t> rows) {
        if (!permuted) return absl::OkStatus();
        return UndoLlamaRopePermutationRows(rows, num_rows,
                                            static_cast<int64_t>(rows.size()) / num_rows, heads);
      };
      if (!t.quantized()) {
        std::vector<float> values = t.data;
        ASSERT_TRUE(in_copy_order(absl::MakeSpan(reinterpret_cast<uint8_t*>(values.data()),
                                                 values.size() * sizeof(float)))
                        .ok());
        EXPECT_EQ(values, copied.data) << "fp32, in the file's order where permuted";
        continue;
      }
      EXPECT_EQ(t.raw_type, copied.raw_type);
      std::vector<uint8_t> bytes(t.stored().begin(), t.stored().end());
      ASSERT_TRUE(in_copy_order(absl::MakeSpan(bytes)).ok());
      EXPECT_EQ(bytes, copied.raw) << "the same bytes, in the file or copied";
      EXPECT_FALSE(t.mapped.empty()) << "every kept matrix stays in the mapping";
      ++views;
      EXPECT_TRUE(t.raw.empty());
      EXPECT_NE(t.mapping, nullptr);
    }
    EXPECT_GT(views, 0);
    ASSERT_TRUE(plain.ok()) << plain.status();

    int raw = 0;
    for (const auto& [name, t] : kept->tensors) {
      SCOPED_TRACE(name);
      const std::vector<float>& want = plain->tensors.at(name).data;
      EXPECT_EQ(want, m.expected.at(name)) << "the plain load, as written";
      if (!t.quantized()) {
        EXPECT_EQ(t.data, want);
        continue;
      }
      ++raw;
      EXPECT_TRUE(t.data.empty());
      std::vector<float> values(want.size());
      ASSERT_TRUE(DequantizeToF32(t.raw_type, t.raw, t.numel(), absl::MakeSpan(values)).ok());
      EXPECT_EQ(values, want) << "the same values, rows in the same order";
    }
    // token_embd (Q8_0), ffn_gate (Q8_0), ffn_up (Q4_0), ffn_down (Q4_1),
    // output (Q4_0), attn_output (F16); then k (F16) and v (Q4_1), or q, k,
    // v (Q8_0). The fp32 q and the norms arrive as values; with experts, each
    // one's three in place of the FFN's, and the router (F32) as values.
    EXPECT_EQ(raw, (quantized_attention ? 9 : 8) + (experts > 0 ? 3 * experts - 3 : 0));
    if (experts > 0) {
      EXPECT_EQ(kept->tensors.at("blk.0.ffn_up.2.weight").raw_type, GgmlType::kQ4_0);
      EXPECT_FALSE(kept->tensors.at("blk.0.ffn_gate_inp.weight").quantized());
    }
    EXPECT_TRUE(kept->tensors.at("token_embd.weight").quantized());
    EXPECT_TRUE(kept->tensors.at("blk.0.attn_k.weight").quantized());
    EXPECT_EQ(kept->tensors.at("blk.0.attn_output.weight").raw_type, GgmlType::kF16);
    EXPECT_EQ(kept->tensors.at("blk.0.attn_q.weight").quantized(), quantized_attention);
  }
}

// The one rule the loader keeps by and the weights prediction follows.
TEST(KeepQuantizedTest, RowsAreKeptAsStoredForBlockTypesAnd16BitRowsOf32) {
  EXPECT_TRUE(KeepsRowsAsStored(GgmlType::kQ8_0, 32));
  EXPECT_TRUE(KeepsRowsAsStored(GgmlType::kQ4_K, 256));
  EXPECT_TRUE(KeepsRowsAsStored(GgmlType::kF16, 64));
  EXPECT_TRUE(KeepsRowsAsStored(GgmlType::kBF16, 576));
  EXPECT_FALSE(KeepsRowsAsStored(GgmlType::kF16, 48)) << "widened: rows not whole 32s";
  EXPECT_FALSE(KeepsRowsAsStored(GgmlType::kF32, 64)) << "fp32 is the dense format";
  EXPECT_FALSE(KeepsRowsAsStored(GgmlType::kQ8_K, 256)) << "not dequantizable";
}

}  // namespace
}  // namespace cohost::runtime
