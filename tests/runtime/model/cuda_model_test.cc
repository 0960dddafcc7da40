// The decoder on CUDA against the CPU's fp32 reference: random-weight models of
// the head sizes the CUDA kernels take (64 and 128, GQA), through a chunked
// prefill and decode steps, one context long enough for split-K attention;
// decode steps eagerly and from captured CUDA graphs. Then logprobs, weights
// offloaded to host memory on the device, and the KV pool's groups backed and
// unbacked in any order (on the CPU too, the same check).
// Skips visibly where no GPU is present; bench/gpu/check.sh runs it on one.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/row_logprobs.h"
#include "gtest/gtest.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "tests/support/skip_without_cuda.h"
#include "tests/support/tiny_model.h"

namespace cohost::runtime {
namespace {

struct Shape {
  std::string name;
  int32_t hidden, heads, kv_heads, head_dim;
  bool qk_norm = false;  // Qwen3's head norms (HeadRmsNorm)
  int32_t experts = 0;   // Qwen3-MoE's (MoeCombine; 2 a token)
};
void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

constexpr int32_t kBlock = 16;

// One model on one backend with its own cache, fed the same tokens.
struct Side {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> kv;

  std::vector<float> Step(const std::vector<int32_t>& tokens, int32_t first_pos) {
    Batch b;
    FillSingleSequenceBatch(tokens, first_pos, kv->num_blocks(), kBlock, true, &b);
    std::vector<float> logits;
    absl::Status s = model->Forward(b, *kv, &logits);
    EXPECT_TRUE(s.ok()) << backend->Caps().device_name << ": " << s;
    return logits;
  }
};

class CudaModelTest : public ::testing::TestWithParam<std::tuple<Shape, bool>> {};

TEST_P(CudaModelTest, LogitsFollowTheCpuReference) {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> cuda = kernels::MakeCudaBackend(0);
  if (!cuda.ok()) return cohost::testing::SkipWithoutCuda(cuda.status());
  const auto& [shape, graphs] = GetParam();
  testing::TinyModelOptions o;
  o.vocab_size = 320;
  o.max_position_embeddings = 1024;
  o.hidden_size = shape.hidden;
  o.intermediate_size = 2 * shape.hidden;
  o.num_heads = shape.heads;
  o.num_kv_heads = shape.kv_heads;
  o.head_dim = shape.head_dim;
  o.qk_norm = shape.qk_norm;
  o.experts = shape.experts;
  const ModelFile file = testing::MakeTinyModelFile(o);
  Side sides[2];
  sides[0].backend = kernels::MakeCpuBackend(0);
  sides[1].backend = *std::move(cuda);
  for (Side& side : sides) {
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(file, side.backend.get());
    ASSERT_TRUE(m.ok()) << m.status();
    side.model = *std::move(m);
    side.model->EnableDecodeGraphs(graphs);
    absl::StatusOr<std::unique_ptr<KvCache>> kv =
        KvCache::Create(side.backend.get(), file.config, 1024 / kBlock + 1, kBlock);
    ASSERT_TRUE(kv.ok()) << kv.status();
    side.kv = *std::move(kv);
  }
  // A 600-token prompt in chunks of 200 (a decode over 600 keys and one kv
  // head plans several splits), then greedy decode steps on the CPU's tokens.
  std::vector<int32_t> prompt(600);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 37 + 11) % 300);
  int32_t pos = 0;
  std::vector<float> want, got;
  for (int32_t chunk = 0; chunk < 3; ++chunk) {
    const std::vector<int32_t> part(prompt.begin() + pos, prompt.begin() + pos + 200);
    want = sides[0].Step(part, pos);
    got = sides[1].Step(part, pos);
    pos += 200;
  }
  int agreeing = 0, steps = 0;
  for (; steps < 8; ++steps) {
    ASSERT_EQ(want.size(), got.size());
    ASSERT_FALSE(want.empty());
    // bf16 weights and activations against fp32: a relative L2 error of a few
    // percent, and the same top token where the reference's lead is clear.
    double err = 0, norm = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      err += (want[i] - got[i]) * (want[i] - got[i]);
      norm += want[i] * want[i];
    }
    EXPECT_LT(std::sqrt(err / norm), 5e-2) << "step " << steps;
    const auto top = std::max_element(want.begin(), want.end()) - want.begin();
    std::vector<float> sorted = want;
    std::nth_element(sorted.begin(), sorted.begin() + 1, sorted.end(), std::greater<float>());
    const bool clear =
        sorted[0] - sorted[1] > 0.05f * (sorted[0] - *std::min_element(want.begin(), want.end()));
    const auto got_top = std::max_element(got.begin(), got.end()) - got.begin();
    if (got_top == top) ++agreeing;
    if (clear) {
      EXPECT_EQ(got_top, top) << "step " << steps;
    }
    const std::vector<int32_t> next{static_cast<int32_t>(top)};
    want = sides[0].Step(next, pos);
    got = sides[1].Step(next, pos);
    ++pos;
  }
  EXPECT_GE(agreeing, steps - 2) << "greedy tokens";
  // One shape: its first step eager, the rest from its graph (none with
  // experts: each layer's route is planned on the host).
  const bool captured = graphs && shape.experts == 0;
  const DecodeGraphStats stats = sides[1].model->decode_graph_stats();
  EXPECT_EQ(stats.captures, captured ? 1 : 0);
  EXPECT_EQ(stats.launches, captured ? steps - 1 : 0);
  EXPECT_EQ(stats.refusals, 0);
}

// On one GPU: a step's logprobs from ForwardSample (Backend::RowLogprobs,
// through staging memory, a penalized row from its raw copy) are those of
// the same GPU's logits by the host rule; weights offloaded to page-locked
// host memory and restored give the same logits bit for bit.
TEST(CudaModelHostTest, LogprobsAndOffloadedWeightsOnTheDevice) {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> cuda = kernels::MakeCudaBackend(0);
  if (!cuda.ok()) return cohost::testing::SkipWithoutCuda(cuda.status());
  kernels::Backend& be = **cuda;
  testing::TinyModelOptions o;
  o.vocab_size = 320;
  o.max_position_embeddings = 256;
  o.hidden_size = 256;
  o.intermediate_size = 512;
  o.num_heads = 8;
  o.num_kv_heads = 2;
  o.head_dim = 64;
  const ModelFile file = testing::MakeTinyModelFile(o);
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(file, &be);
  ASSERT_TRUE(m.ok()) << m.status();
  Model& model = **m;
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 29 + 5) % 300);
  auto batch = [&](const KvCache& kv) {  // every token samples
    Batch b;
    FillSingleSequenceBatch(prompt, 0, kv.num_blocks(), kBlock, true, &b);
    b.sample_rows.clear();
    for (int32_t t = 0; t < b.num_tokens(); ++t) b.sample_rows.push_back(t);
    return b;
  };
  auto fresh_kv = [&] {
    absl::StatusOr<std::unique_ptr<KvCache>> kv = KvCache::Create(&be, file.config, 8, kBlock);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return *std::move(kv);
  };
  std::vector<float> logits;
  std::unique_ptr<KvCache> kv = fresh_kv();
  ASSERT_TRUE(model.Forward(batch(*kv), *kv, &logits).ok());
  const int32_t V = file.config.vocab_size;
  const int32_t rows = static_cast<int32_t>(logits.size() / V);
  ASSERT_EQ(rows, static_cast<int32_t>(prompt.size()));

  SampleInputs in;
  in.specs.resize(rows);  // greedy
  in.top_logprobs = 5;
  // Row 3's argmax pushed far down: drawn elsewhere, its logprobs still raw.
  const auto top3 =
      std::max_element(logits.begin() + 3 * V, logits.begin() + 4 * V) - (logits.begin() + 3 * V);
  in.penalties.starts.assign(rows + 1, 0);
  for (int32_t r = 4; r <= rows; ++r) in.penalties.starts[r] = 1;
  in.penalties.terms = {{static_cast<int32_t>(top3), 1.f, 1e6f}};
  SampledRows out;
  kv = fresh_kv();
  ASSERT_TRUE(model.ForwardSample(batch(*kv), *kv, in, &out).ok());
  ASSERT_EQ(out.ids.size(), static_cast<size_t>(rows));
  ASSERT_EQ(out.logprobs.size(), static_cast<size_t>(rows) * 6);
  EXPECT_NE(out.ids[3], top3);
  for (int32_t r = 0; r < rows; ++r) {
    std::vector<kernels::TokenLogprob> want(6);
    kernels::LogprobsOfRow(logits.data() + static_cast<size_t>(r) * V, V, out.ids[r], 5,
                           want.data());
    for (int32_t i = 0; i < 6; ++i) {
      const kernels::TokenLogprob& g = out.logprobs[static_cast<size_t>(r) * 6 + i];
      EXPECT_EQ(g.id, want[i].id) << "row " << r << " entry " << i;
      EXPECT_NEAR(g.logprob, want[i].logprob, 1e-4) << "row " << r << " entry " << i;
    }
  }

  // (What the device holds meanwhile is model_test's: the stream-ordered
  // pool's free memory does not show it reliably.)
  absl::StatusOr<size_t> offloaded = model.OffloadWeights();
  ASSERT_TRUE(offloaded.ok()) << offloaded.status();
  EXPECT_EQ(*offloaded, model.weights_bytes());
  EXPECT_EQ(model.workspace_bytes(), 0u);
  ASSERT_TRUE(model.RestoreWeights().ok());
  std::vector<float> again;
  kv = fresh_kv();
  ASSERT_TRUE(model.Forward(batch(*kv), *kv, &again).ok());
  EXPECT_EQ(again, logits);
}

// The KV pool's groups on a backend's virtual memory (CUDA: granules mapped
// with cuMemMap into a reserved range), backed and unbacked in any order as
// the allocator drains the emptiest: each group's bytes stay put while other
// groups, below and above it, come and go.
void CheckGroupsInAnyOrder(kernels::Backend& be) {
  testing::TinyModelOptions o;
  o.hidden_size = 256;
  o.num_heads = 8;
  o.num_kv_heads = 2;
  o.head_dim = 64;
  const ModelConfig c = testing::MakeTinyModelFile(o).config;
  const kernels::DType dtype = be.kv_dtype();
  const int32_t group = KvCache::GroupBlocks(c, dtype, kBlock, be.vm_granularity(), 0);
  absl::StatusOr<std::unique_ptr<KvCache>> made =
      KvCache::Create(&be, c, 4 * group, kBlock, group, /*initial_groups=*/0);
  ASSERT_TRUE(made.ok()) << made.status();
  KvCache& kv = **made;
  // One block's share of one layer's K or V array.
  const size_t bytes = KvCache::BytesPerBlock(c, dtype, kBlock) / (2 * c.num_layers);
  auto each_array = [&](int32_t g, const std::function<void(void*)>& fn) {
    for (int32_t l = 0; l < c.num_layers; ++l) {
      for (void* base : {kv.Layer(l).k, kv.Layer(l).v}) {
        // The group's last block: its granules' far end.
        fn(static_cast<char*>(base) + (static_cast<size_t>(g + 1) * group - 1) * bytes);
      }
    }
  };
  auto fill = [&](int32_t g, uint8_t byte) {
    const std::vector<uint8_t> pattern(bytes, byte);
    each_array(g, [&](void* at) { EXPECT_TRUE(be.CopyToDevice(at, pattern.data(), bytes).ok()); });
  };
  auto holds = [&](int32_t g, uint8_t byte) {
    bool all = true;
    each_array(g, [&](void* at) {
      std::vector<uint8_t> got(bytes);
      EXPECT_TRUE(be.CopyToHost(got.data(), at, bytes).ok());
      EXPECT_TRUE(be.Synchronize().ok());
      all = all && std::all_of(got.begin(), got.end(), [byte](uint8_t b) { return b == byte; });
    });
    return all;
  };
  ASSERT_TRUE(kv.BackGroup(2).ok());
  ASSERT_TRUE(kv.BackGroup(0).ok());
  fill(2, 0x2a);
  fill(0, 0x0a);
  ASSERT_TRUE(kv.UnbackGroup(0).ok());
  EXPECT_TRUE(holds(2, 0x2a)) << "group 2 kept its bytes while group 0 went";
  ASSERT_TRUE(kv.BackGroup(1).ok());
  fill(1, 0x1a);
  EXPECT_TRUE(holds(2, 0x2a));
  EXPECT_TRUE(holds(1, 0x1a));
  ASSERT_TRUE(kv.UnbackGroup(2).ok());
  EXPECT_TRUE(holds(1, 0x1a)) << "group 1 kept its bytes while group 2 went";
  for (int32_t g : {3, 0, 2}) ASSERT_TRUE(kv.BackGroup(g).ok()) << g;
  fill(3, 0x3a);
  EXPECT_TRUE(holds(3, 0x3a));
  EXPECT_TRUE(holds(1, 0x1a));
  EXPECT_EQ(kv.num_groups_backed(), 4);
  EXPECT_EQ(kv.BackGroup(1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvCacheGroupsOnBackendsTest, Cpu) {
  std::unique_ptr<kernels::Backend> cpu = kernels::MakeCpuBackend(1);
  CheckGroupsInAnyOrder(*cpu);
}

TEST(KvCacheGroupsOnBackendsTest, Cuda) {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> cuda = kernels::MakeCudaBackend(0);
  if (!cuda.ok()) return cohost::testing::SkipWithoutCuda(cuda.status());
  CheckGroupsInAnyOrder(**cuda);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaModelTest,
    ::testing::Combine(::testing::Values(Shape{"hd64_gqa4", 256, 8, 2, 64},
                                         Shape{"hd128_mqa", 512, 4, 1, 128},
                                         Shape{"hd128_qwen3", 512, 4, 2, 128, true},
                                         Shape{"hd128_qwen3moe", 512, 4, 2, 128, true, 4}),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<Shape, bool>>& info) {
      return std::get<0>(info.param).name + (std::get<1>(info.param) ? "_graphs" : "_eager");
    });

}  // namespace
}  // namespace cohost::runtime
