// Batch::Validate: a well-formed two-sequence batch passes, and each kind of
// out-of-range or inconsistent metadata is rejected with INVALID_ARGUMENT.
#include "runtime/model/batch.h"

#include <functional>
#include <ostream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::runtime {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kNumBlocks = 10, kBlockSize = 4, kVocab = 100;

// Sequence 0: 5 cached tokens + 2 new (positions 5, 6) in pages {7, 3};
// sequence 1: a fresh 3-token prompt in page {2}, padded with the null block.
Batch ValidBatch() {
  Batch b;
  b.token_ids = {10, 11, 20, 21, 22};
  b.positions = {5, 6, 0, 1, 2};
  b.seq_starts = {0, 2, 5};
  b.max_blocks_per_seq = 2;
  b.block_tables = {7, 3, 2, 0};
  b.context_lens = {7, 3};
  b.slot_mapping = {3 * 4 + 1, 3 * 4 + 2, 2 * 4 + 0, 2 * 4 + 1, 2 * 4 + 2};
  b.sample_rows = {1, 4};
  return b;
}

TEST(BatchTest, ValidBatchPasses) {
  EXPECT_TRUE(ValidBatch().Validate(kNumBlocks, kBlockSize, kVocab).ok());
  Batch padded = ValidBatch();
  padded.slot_mapping[0] = -1;  // padding is not written anywhere
  EXPECT_TRUE(padded.Validate(kNumBlocks, kBlockSize, kVocab).ok());
  Batch empty;
  empty.seq_starts = {0};
  EXPECT_TRUE(empty.Validate(kNumBlocks, kBlockSize, kVocab).ok());
}

struct BadCase {
  std::string name;
  std::function<void(Batch&)> mutate;
  std::string message;  // a substring the error must contain
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BatchRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BatchRejectTest, Rejects) {
  Batch b = ValidBatch();
  GetParam().mutate(b);
  absl::Status s = b.Validate(kNumBlocks, kBlockSize, kVocab);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BatchRejectTest,
    ::testing::Values(
        BadCase{"SlotPastCache", [](Batch& b) { b.slot_mapping[2] = kNumBlocks * kBlockSize; },
                "slot 40"},
        BadCase{"SlotNegative", [](Batch& b) { b.slot_mapping[0] = -2; }, "slot -2"},
        BadCase{"SlotNotInBlockTable", [](Batch& b) { b.slot_mapping[0] = 7 * 4 + 1; },
                "block table says 13"},
        BadCase{"BlockIdTooLarge", [](Batch& b) { b.block_tables[3] = kNumBlocks; },
                "block_tables[3] = 10"},
        BadCase{"BlockIdNegative", [](Batch& b) { b.block_tables[1] = -1; },
                "block_tables[1] = -1"},
        BadCase{"TokenPastVocab", [](Batch& b) { b.token_ids[4] = kVocab; }, "token_ids[4] = 100"},
        BadCase{"TokenNegative", [](Batch& b) { b.token_ids[0] = -5; }, "token_ids[0] = -5"},
        BadCase{"SampleRowOutOfRange", [](Batch& b) { b.sample_rows[1] = 5; },
                "sample_rows[1] = 5"},
        BadCase{"PositionPastContext", [](Batch& b) { b.positions[4] = 3; }, "position 3"},
        BadCase{"PositionNegative", [](Batch& b) { b.positions[2] = -1; }, "position -1"},
        BadCase{"ContextShorterThanNewTokens", [](Batch& b) { b.context_lens[1] = 2; },
                "context_len 2 with 3 new tokens"},
        BadCase{"ContextPastBlockTable", [](Batch& b) { b.context_lens[0] = 9; }, "room for 8"},
        BadCase{"SeqStartsDecrease",
                [](Batch& b) {
                  b.seq_starts = {0, 4, 2, 5};
                  b.context_lens = {7, 3, 3};
                  b.block_tables = {7, 3, 2, 0, 2, 0};
                },
                "decrease"},
        BadCase{"SeqStartsDoNotCoverTokens", [](Batch& b) { b.seq_starts[2] = 4; },
                "seq_starts must run from 0 to 5"},
        BadCase{"WrongSeqStartsCount", [](Batch& b) { b.seq_starts.push_back(5); },
                "need 3 seq_starts"},
        BadCase{"PositionsSizeMismatch", [](Batch& b) { b.positions.pop_back(); }, "4 positions"},
        BadCase{"BlockTablesSizeMismatch", [](Batch& b) { b.block_tables.pop_back(); },
                "block_tables has 3 entries"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(BatchTest, RejectsBadCacheGeometry) {
  EXPECT_FALSE(ValidBatch().Validate(0, kBlockSize, kVocab).ok());
  EXPECT_FALSE(ValidBatch().Validate(kNumBlocks, 0, kVocab).ok());
}

}  // namespace
}  // namespace cohost::runtime
