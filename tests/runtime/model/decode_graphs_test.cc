// Captured decode steps (DecodeGraphs) against eager ones, on the CPU: the
// same model on a backend with CUDA graphs' semantics (RecordingBackend: each
// op's arguments frozen at capture, rerun on the data of the day) gives the
// same logits, bit for bit, as it does eagerly, through contexts that grow
// past a block-table bucket, batches that change size and a buffer that moves.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "cohost/kernels/backend.h"
#include "gtest/gtest.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "tests/support/forwarding_backend.h"
#include "tests/support/recording_backend.h"
#include "tests/support/tiny_model.h"

namespace cohost::runtime {
namespace {

constexpr int32_t kBlock = 4;
constexpr int32_t kPagesPerSeq = 40;  // 160 tokens: past the 16-entry bucket at 64

// A sequence's K/V in pages first_page, first_page + 1, ...
struct Seq {
  int32_t first_page = 0;
  int32_t len = 0;
};

// Each (sequence, new tokens) pair advanced; the last new token of each samples.
Batch Advance(const std::vector<std::pair<Seq*, std::vector<int32_t>>>& parts) {
  Batch b;
  b.seq_starts = {0};
  for (const auto& [seq, tokens] : parts) {
    b.max_blocks_per_seq =
        std::max(b.max_blocks_per_seq,
                 (seq->len + static_cast<int32_t>(tokens.size()) + kBlock - 1) / kBlock);
  }
  for (const auto& [seq, tokens] : parts) {
    for (int32_t t : tokens) {
      const int32_t pos = seq->len++;
      b.token_ids.push_back(t);
      b.positions.push_back(pos);
      b.slot_mapping.push_back((seq->first_page + pos / kBlock) * kBlock + pos % kBlock);
    }
    b.sample_rows.push_back(b.num_tokens() - 1);
    b.seq_starts.push_back(b.num_tokens());
    b.context_lens.push_back(seq->len);
    for (int32_t p = 0; p < b.max_blocks_per_seq; ++p)
      b.block_tables.push_back(seq->first_page + p);
  }
  return b;
}

// One model with its own cache; `seqs` mirror the other side's.
struct Side {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> kv;
  std::vector<Seq> seqs;

  void Open(const ModelFile& file, std::unique_ptr<kernels::Backend> be, bool graphs) {
    backend = std::move(be);
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(file, backend.get());
    ASSERT_TRUE(m.ok()) << m.status();
    model = *std::move(m);
    model->EnableDecodeGraphs(graphs);
    NewCache(file, 3 * kPagesPerSeq + 1);
  }

  // A fresh cache of `num_blocks` blocks in place of the old one, and the
  // three sequences starting over in it.
  void NewCache(const ModelFile& file, int32_t num_blocks) {
    kv.reset();
    absl::StatusOr<std::unique_ptr<KvCache>> c =
        KvCache::Create(backend.get(), file.config, num_blocks, kBlock);
    ASSERT_TRUE(c.ok()) << c.status();
    kv = *std::move(c);
    seqs.clear();
    for (int32_t s = 0; s < 3; ++s) seqs.push_back({1 + s * kPagesPerSeq, 0});
  }

  // Sequences `which` advanced by their tokens; the sampled rows' logits.
  std::vector<float> Step(const std::vector<int32_t>& which,
                          const std::vector<std::vector<int32_t>>& tokens) {
    std::vector<std::pair<Seq*, std::vector<int32_t>>> parts;
    for (size_t i = 0; i < which.size(); ++i) parts.emplace_back(&seqs[which[i]], tokens[i]);
    std::vector<float> logits;
    absl::Status s = model->Forward(Advance(parts), *kv, &logits);
    EXPECT_TRUE(s.ok()) << s;
    return logits;
  }
};

class DecodeGraphsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TinyModelOptions o;
    o.max_position_embeddings = 4 * kPagesPerSeq * kBlock;
    file_ = testing::MakeTinyModelFile(o);
  }

  // Prefills the three sequences (5, 9 and 2 tokens), then decodes greedily:
  // all three, then the first two, then all three again, until the longest
  // passes `decode_to` tokens. Every step's logits must be the same on both.
  void RunBoth(Side& eager, Side& graphs, int32_t decode_to) {
    const int32_t V = file_.config.vocab_size;
    const std::vector<std::vector<int32_t>> prompts = {
        {3, 1, 4, 1, 5}, {9, 2, 6, 5, 3, 5, 8, 9, 7}, {2, 7}};
    std::vector<float> want = eager.Step({0, 1, 2}, prompts);
    ASSERT_EQ(graphs.Step({0, 1, 2}, prompts), want);
    std::vector<int32_t> next(3);
    for (int32_t step = 0; eager.seqs[1].len < decode_to; ++step) {
      const std::vector<int32_t> which =
          step >= 20 && step < 30 ? std::vector<int32_t>{0, 1} : std::vector<int32_t>{0, 1, 2};
      std::vector<std::vector<int32_t>> tokens;
      for (size_t i = 0; i < which.size(); ++i) {
        if (static_cast<size_t>(want.size()) >= (i + 1) * V) {
          const auto row = want.begin() + static_cast<ptrdiff_t>(i * V);
          next[which[i]] = static_cast<int32_t>(std::max_element(row, row + V) - row);
        }
        tokens.push_back({next[which[i]]});
      }
      want = eager.Step(which, tokens);
      const std::vector<float> got = graphs.Step(which, tokens);
      ASSERT_EQ(got, want) << "decode step " << step;
    }
  }

  ModelFile file_;
};

TEST_F(DecodeGraphsTest, CapturedDecodeStepsGiveTheEagerLogits) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  auto recording = std::make_unique<cohost::testing::RecordingBackend>(kernels::MakeCpuBackend(1));
  const cohost::testing::RecordingBackend* rec = recording.get();
  graphs.Open(file_, std::move(recording), true);
  RunBoth(eager, graphs, 100);
  const DecodeGraphStats s = graphs.model->decode_graph_stats();
  // Shapes: 3 sequences in a 16-entry table, 2 in one, 3 in a 32-entry one.
  EXPECT_EQ(s.captures, 3);
  EXPECT_EQ(rec->captures(), 3);
  EXPECT_EQ(s.refusals, 0);
  // Each shape runs eagerly once, then from its graph.
  EXPECT_GE(s.launches, 80);
  EXPECT_EQ(eager.model->decode_graph_stats().captures, 0);
}

// Graphs are keyed by the cache they were captured against (KvCache::id),
// not by its address: a new cache, mapped where the old one was, is never run
// through the old cache's graphs (which a cache of another block size there
// would have made wrong), so its shapes are captured again.
TEST_F(DecodeGraphsTest, ANewCacheIsNeverRunThroughAnOldCachesGraphs) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  graphs.Open(
      file_, std::make_unique<cohost::testing::RecordingBackend>(kernels::MakeCpuBackend(1)), true);
  RunBoth(eager, graphs, 40);
  const int64_t first = graphs.model->decode_graph_stats().captures;
  ASSERT_GT(first, 0);
  const uint64_t old_id = graphs.kv->id();
  const void* old_k = graphs.kv->Layer(0).k;
  for (Side* side : {&eager, &graphs}) side->NewCache(file_, 3 * kPagesPerSeq + 1);
  EXPECT_NE(graphs.kv->id(), old_id);
  if (graphs.kv->Layer(0).k != old_k) std::printf("note: the new cache was mapped elsewhere\n");
  RunBoth(eager, graphs, 40);
  EXPECT_EQ(graphs.model->decode_graph_stats().captures, 2 * first) << "captured again for it";
}

// On a backend with a stream's semantics too (ops and copies queued, a copy
// from staging memory reading it when it runs), the step's uploads through
// staging and the graphs' launches give the eager logits.
TEST_F(DecodeGraphsTest, OnAStreamStagedUploadsAndCapturedStepsGiveTheEagerLogits) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  auto stream = std::make_unique<cohost::testing::RecordingBackend>(kernels::MakeCpuBackend(1));
  cohost::testing::RecordingBackend* rec = stream.get();
  graphs.Open(file_, std::move(stream), true);
  rec->set_async(true);
  RunBoth(eager, graphs, 60);
  EXPECT_GT(graphs.model->decode_graph_stats().launches, 30);
}

// A model with experts on a stream: each layer's route comes back to the
// host and goes out again through staging memory mid-step (the step's
// staging started over after the router's logits came back), and its
// decode steps stay eager though graphs are asked for: the logits are the
// eager CPU's, bit for bit.
TEST_F(DecodeGraphsTest, ExpertsOnAStreamRouteMidStepAndStayEager) {
  testing::TinyModelOptions o;
  o.max_position_embeddings = 4 * kPagesPerSeq * kBlock;
  o.experts = 4;
  file_ = testing::MakeTinyModelFile(o);
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  auto stream = std::make_unique<cohost::testing::RecordingBackend>(kernels::MakeCpuBackend(1));
  const cohost::testing::RecordingBackend* rec = stream.get();
  stream->set_async(true);
  graphs.Open(file_, std::move(stream), true);
  RunBoth(eager, graphs, 60);
  EXPECT_EQ(graphs.model->decode_graph_stats().captures, 0);
  EXPECT_EQ(rec->captures(), 0);
}

// The stream double itself: a copy reads staging memory when it runs (at the
// next Synchronize here), other host memory when it is queued.
TEST(RecordingBackendTest, AsyncCopiesReadStagingLateAndPageableMemoryAtOnce) {
  cohost::testing::RecordingBackend be(kernels::MakeCpuBackend(1));
  be.set_async(true);
  absl::StatusOr<kernels::DeviceBuffer> dev = kernels::DeviceBuffer::Create(&be, 8);
  absl::StatusOr<kernels::DeviceBuffer> staging = kernels::DeviceBuffer::CreateStaging(&be, 4);
  ASSERT_TRUE(dev.ok() && staging.ok());
  int32_t* staged = staging->as<int32_t>();
  int32_t pageable = 1;
  *staged = 1;
  ASSERT_TRUE(be.CopyToDevice(dev->as<int32_t>(), staged, 4).ok());
  ASSERT_TRUE(be.CopyToDevice(dev->as<int32_t>() + 1, &pageable, 4).ok());
  *staged = pageable = 2;  // too early for staging: its copy has not run
  int32_t got[2] = {0, 0};
  ASSERT_TRUE(be.CopyToHost(got, dev->data(), sizeof(got)).ok());
  EXPECT_EQ(got[0], 2);
  EXPECT_EQ(got[1], 1);
}

// A backend that says it captures but refuses: each shape is tried once.
class RefusingBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  bool can_capture() const override { return true; }
};

TEST_F(DecodeGraphsTest, ABackendThatRefusesACaptureRunsEveryStepEagerly) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  graphs.Open(file_, std::make_unique<RefusingBackend>(kernels::MakeCpuBackend(1)), true);
  RunBoth(eager, graphs, 40);
  const DecodeGraphStats s = graphs.model->decode_graph_stats();
  EXPECT_EQ(s.captures, 0);
  EXPECT_EQ(s.launches, 0);
  EXPECT_EQ(s.refusals, 2);  // three sequences, and two; each refused once
}

// A capture refused because something had to grow in it (a scratch the
// step before could not grow, under memory pressure) is tried again once the
// eager run after it grew it (the backend's capture epoch moves): the shape
// was eager for good before.
class RefusesOnceBackend final : public cohost::testing::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  bool can_capture() const override { return true; }
  uint64_t capture_epoch() const override { return inner().capture_epoch() + grown_; }
  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> Capture(
      const std::function<void()>& issue) override {
    if (grown_ == 0) {
      ++grown_;  // the eager run after this refusal grows what it needed
      return absl::FailedPreconditionError("an allocation while recording");
    }
    return inner().Capture(issue);
  }

 private:
  uint64_t grown_ = 0;
};

TEST_F(DecodeGraphsTest, ARefusalIsTriedAgainOnceWhatItNeededHasGrown) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  graphs.Open(file_,
              std::make_unique<RefusesOnceBackend>(
                  std::make_unique<cohost::testing::RecordingBackend>(kernels::MakeCpuBackend(1))),
              true);
  RunBoth(eager, graphs, 100);
  const DecodeGraphStats s = graphs.model->decode_graph_stats();
  EXPECT_EQ(s.refusals, 1);
  EXPECT_EQ(s.captures, 3) << "every shape, the refused one too";
  EXPECT_GE(s.launches, 70);
}

// The CPU never captures: graphs asked for are not even tried.
TEST_F(DecodeGraphsTest, OnTheCpuGraphsAreNeverTried) {
  Side eager, graphs;
  eager.Open(file_, kernels::MakeCpuBackend(1), false);
  graphs.Open(file_, kernels::MakeCpuBackend(1), true);
  RunBoth(eager, graphs, 40);
  const DecodeGraphStats s = graphs.model->decode_graph_stats();
  EXPECT_EQ(s.captures + s.launches + s.refusals, 0);
}

}  // namespace
}  // namespace cohost::runtime
