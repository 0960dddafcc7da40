// The CUDA backend's refusals: an op given a shape, head_dim or pointer it does
// not support records an error that the next Synchronize, and every later call
// that returns a status, report (cuda_backend.cu); the backend stays failed and
// skips later ops, while other backends on the device are unaffected. Skips
// without a GPU. The CPU backend validates nothing, so these have no CPU twin.
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "backend_ops_harness.h"
#include "cohost/kernels/backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/skip_without_cuda.h"

namespace cohost::kernels::backend_ops {
namespace {

using ::testing::HasSubstr;

// Elements in every scratch buffer: room for a small batch at head_dim 256.
constexpr size_t kScratch = 16384;

// The arguments of valid calls (4 query heads over 2 kv heads, head_dim 64, one
// sequence with 3 cached and 2 new tokens); each bad call changes one thing.
struct Args {
  void* q = nullptr;
  void* k = nullptr;
  void* v = nullptr;
  void* out = nullptr;
  void* x = nullptr;
  void* w = nullptr;
  const int32_t* ids = nullptr;  // [kScratch] zeros
  const float* inv_freq = nullptr;
  BatchLayout batch;
  PagedKv kv;
  int32_t num_heads = 4;
  int64_t q_stride = 0, kv_stride = 0;  // 0: dense
  int32_t rotary_dim = 64;
  float scale = 0.125f;
};

// p moved by `elems` bf16 elements: misaligned for 16-byte vector access.
void* Offset(void* p, int elems) { return static_cast<char*>(p) + 2 * elems; }

void Rope(Backend& be, const Args& a) {
  QkvRows qkv = QkvRows::Dense(a.q, a.k, a.v, a.num_heads, a.kv.num_kv_heads, a.kv.head_dim);
  if (a.q_stride > 0) qkv.q_stride = a.q_stride;
  if (a.kv_stride > 0) qkv.kv_stride = a.kv_stride;
  be.RopeWriteKv(qkv, a.batch, a.num_heads, RopeSpec{a.inv_freq, a.rotary_dim}, a.kv);
}
void Attention(Backend& be, const Args& a) {
  be.PagedAttention(a.q, a.q_stride > 0 ? a.q_stride : int64_t{a.num_heads} * a.kv.head_dim,
                    a.batch, a.kv, a.num_heads, a.scale, a.out);
}

struct BadCall {
  std::string name;
  absl::StatusCode code;
  std::string message;  // part of the status message
  std::function<void(Backend&, Args)> call;
};
void PrintTo(const BadCall& c, std::ostream* os) { *os << c.name; }

std::vector<BadCall> BadCalls() {
  constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  constexpr absl::StatusCode kUnimplemented = absl::StatusCode::kUnimplemented;
  return {
      // Elementwise and row ops: negative sizes.
      {"embedding_negative_n", kInvalid, "bad shape",
       [](Backend& be, Args a) { be.Embedding(a.ids, -1, a.x, 64, a.out); }},
      {"gather_rows_negative_rows", kInvalid, "GatherRows: bad shape",
       [](Backend& be, Args a) { be.GatherRows(a.x, a.ids, -1, 64, a.out); }},
      {"gather_rows_negative_width", kInvalid, "GatherRows: bad shape",
       [](Backend& be, Args a) { be.GatherRows(a.x, a.ids, 2, -64, a.out); }},
      {"moe_combine_negative_k", kInvalid, "MoeCombine: bad shape",
       [](Backend& be, Args a) { be.MoeCombine(a.x, a.ids, a.inv_freq, 2, -1, 64, a.out); }},
      {"rmsnorm_negative_n", kInvalid, "RmsNorm: bad shape",
       [](Backend& be, Args a) { be.RmsNorm(a.x, nullptr, a.w, -1, 64, 1e-5f, a.out); }},
      {"rmsnorm_zero_hidden", kInvalid, "RmsNorm: bad shape",
       [](Backend& be, Args a) { be.RmsNorm(a.x, a.k, a.w, 2, 0, 1e-5f, a.out); }},
      {"gemm_quantized_weights", kUnimplemented, "Q8_0",
       [](Backend& be, Args a) {
         be.Gemm(a.x, WeightRef(a.w, WeightFormat::kQ8_0), nullptr, 8, 8, 32, a.out);
       }},
      {"gemm_negative_m", kInvalid, "Gemm: bad shape",
       [](Backend& be, Args a) { be.Gemm(a.x, a.w, nullptr, -1, 8, 8, a.out); }},
      {"gemm_negative_n", kInvalid, "Gemm: bad shape",
       [](Backend& be, Args a) { be.Gemm(a.x, a.w, a.v, 8, -8, 8, a.out); }},
      {"gemm_negative_k", kInvalid, "Gemm: bad shape",
       [](Backend& be, Args a) { be.Gemm(a.x, a.w, nullptr, 8, 8, -8, a.out); }},
      {"add_negative_n", kInvalid, "Add: bad size",
       [](Backend& be, Args a) { be.Add(a.out, a.x, -8); }},
      {"silu_mul_negative_n", kInvalid, "SiluMul: bad shape",
       [](Backend& be, Args a) { be.SiluMul(a.x, -1, 64, a.out); }},
      {"silu_mul_negative_inter", kInvalid, "SiluMul: bad shape",
       [](Backend& be, Args a) { be.SiluMul(a.x, 2, -64, a.out); }},

      // RopeWriteKv.
      {"rope_odd_kv_stride", kInvalid, "RopeWriteKv: strides",
       [](Backend& be, Args a) {
         a.kv_stride = int64_t{a.kv.num_kv_heads} * a.kv.head_dim + 1;
         Rope(be, a);
       }},
      {"rope_q_stride_shorter_than_a_row", kInvalid, "RopeWriteKv: strides",
       [](Backend& be, Args a) {
         a.q_stride = 2;
         Rope(be, a);
       }},
      {"rope_negative_tokens", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.batch.num_tokens = -1;
         Rope(be, a);
       }},
      {"rope_zero_heads", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.num_heads = 0;
         Rope(be, a);
       }},
      {"rope_zero_kv_heads", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.kv.num_kv_heads = 0;
         Rope(be, a);
       }},
      {"rope_zero_head_dim", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.kv.head_dim = 0;
         a.rotary_dim = 0;
         Rope(be, a);
       }},
      {"rope_negative_rotary_dim", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.rotary_dim = -2;
         Rope(be, a);
       }},
      {"rope_odd_rotary_dim", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.rotary_dim = 63;
         Rope(be, a);
       }},
      {"rope_rotary_dim_past_head_dim", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.rotary_dim = 66;
         Rope(be, a);
       }},
      // Even but not a multiple of 4: the kernel turns pairs of pairs.
      {"rope_rotary_dim_not_multiple_of_4", kUnimplemented, "RopeWriteKv: rotary_dim 62",
       [](Backend& be, Args a) {
         a.rotary_dim = 62;
         Rope(be, a);
       }},
      // A bad shape is the caller's bug whatever the batch size.
      {"rope_bad_shape_empty_batch", kInvalid, "RopeWriteKv: bad shape",
       [](Backend& be, Args a) {
         a.batch.num_tokens = 0;
         a.rotary_dim = 63;
         Rope(be, a);
       }},

      // PagedAttention: shapes.
      {"attention_q_stride_not_a_multiple_of_8", kInvalid, "PagedAttention: q_stride 260",
       [](Backend& be, Args a) {
         a.q_stride = int64_t{a.num_heads} * a.kv.head_dim + 4;
         Attention(be, a);
       }},
      {"attention_q_stride_shorter_than_a_row", kInvalid, "PagedAttention: q_stride 64",
       [](Backend& be, Args a) {
         a.q_stride = a.kv.head_dim;
         Attention(be, a);
       }},
      {"attention_negative_tokens", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.batch.num_tokens = -1;
         Attention(be, a);
       }},
      {"attention_negative_seqs", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.batch.num_seqs = -1;
         Attention(be, a);
       }},
      {"attention_zero_heads", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.num_heads = 0;
         Attention(be, a);
       }},
      {"attention_zero_kv_heads", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.kv.num_kv_heads = 0;
         Attention(be, a);
       }},
      {"attention_heads_not_a_multiple_of_kv_heads", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.num_heads = 3;
         Attention(be, a);
       }},
      {"attention_zero_block_size", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.kv.block_size = 0;
         Attention(be, a);
       }},
      {"attention_negative_blocks_per_seq", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.batch.max_blocks_per_seq = -1;
         Attention(be, a);
       }},
      {"attention_bad_shape_empty_batch", kInvalid, "PagedAttention: bad shape",
       [](Backend& be, Args a) {
         a.batch.num_tokens = 0;
         a.num_heads = 0;
         Attention(be, a);
       }},
      // The grid's y and z limits (65535): kv heads, and sequences plus the
      // padding slice.
      {"attention_too_many_seqs", kUnimplemented, "PagedAttention: grid too large",
       [](Backend& be, Args a) {
         a.batch.num_seqs = 65535;
         Attention(be, a);
       }},
      {"attention_too_many_kv_heads", kUnimplemented, "PagedAttention: grid too large",
       [](Backend& be, Args a) {
         a.num_heads = a.kv.num_kv_heads = 65536;
         Attention(be, a);
       }},
      // 16-byte alignment of q, out and the pages (2 and 8 bytes off).
      {"attention_misaligned_q", kInvalid, "must be 16-byte aligned",
       [](Backend& be, Args a) {
         a.q = Offset(a.q, 1);
         Attention(be, a);
       }},
      {"attention_misaligned_out", kInvalid, "must be 16-byte aligned",
       [](Backend& be, Args a) {
         a.out = Offset(a.out, 4);
         Attention(be, a);
       }},
      {"attention_misaligned_k_pages", kInvalid, "must be 16-byte aligned",
       [](Backend& be, Args a) {
         a.kv.k = Offset(a.kv.k, 1);
         Attention(be, a);
       }},
      {"attention_misaligned_v_pages", kInvalid, "must be 16-byte aligned",
       [](Backend& be, Args a) {
         a.kv.v = Offset(a.kv.v, 4);
         Attention(be, a);
       }},
      // Pages of another element type than the kernels' bf16.
      {"rope_f16_pages", kUnimplemented, "RopeWriteKv: KV pages of f16",
       [](Backend& be, Args a) {
         a.kv.dtype = DType::kF16;
         Rope(be, a);
       }},
      {"attention_f32_pages", kUnimplemented, "PagedAttention: KV pages of f32",
       [](Backend& be, Args a) {
         a.kv.dtype = DType::kF32;
         Attention(be, a);
       }},
      // The head_dim dispatch matrix (dispatch.cuh): 64 and 128 only.
      {"attention_head_dim_32", kUnimplemented, "head_dim 32 is not supported",
       [](Backend& be, Args a) {
         a.kv.head_dim = 32;
         Attention(be, a);
       }},
      {"attention_head_dim_96", kUnimplemented, "head_dim 96 is not supported",
       [](Backend& be, Args a) {
         a.kv.head_dim = 96;
         Attention(be, a);
       }},
      {"attention_head_dim_256", kUnimplemented, "head_dim 256 is not supported",
       [](Backend& be, Args a) {
         a.kv.head_dim = 256;
         Attention(be, a);
       }},
  };
}

class CudaBackendErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Backend>> be = MakeCudaBackend(0);
    if (!be.ok()) return cohost::testing::SkipWithoutCuda(be.status());
    arena_.be = std::move(*be);
    std::mt19937 rng(7);
    batch_ = MakeBatch({{3, 2}}, /*block_size=*/16, /*extra_blocks=*/1, 0, rng);
    const std::vector<float> zeros(kScratch, 0.f);
    a_.q = arena_.Floats(zeros);
    a_.k = arena_.Floats(zeros);
    a_.v = arena_.Floats(zeros);
    a_.out = arena_.Floats(zeros);
    a_.x = arena_.Floats(zeros);
    a_.w = arena_.Floats(zeros);
    a_.ids = arena_.Raw(std::vector<int32_t>(kScratch, 0));
    a_.inv_freq = arena_.Raw(std::vector<float>(128, 0.5f));
    a_.batch = batch_.Upload(arena_);
    a_.kv = PagedKv{arena_.Floats(zeros), arena_.Floats(zeros), batch_.num_blocks, 16, 2, 64,
                    DType::kBF16};
    ASSERT_TRUE(backend().Synchronize().ok());
  }

  Backend& backend() { return *arena_.be; }

  // The recorded error: reported by Synchronize, and again by every later
  // call that returns a status.
  void ExpectRefused(absl::StatusCode code, const std::string& message) {
    const absl::Status s = backend().Synchronize();
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message));
    EXPECT_EQ(backend().Synchronize(), s);
    std::vector<float> host(8);
    EXPECT_EQ(backend().DownloadF32(host.data(), a_.out, host.size()), s);
    EXPECT_EQ(backend().CopyToHost(host.data(), a_.out, sizeof(float)), s);
    EXPECT_EQ(backend().UploadF32(a_.out, host.data(), host.size()), s);
    EXPECT_EQ(backend().CopyToDevice(a_.out, host.data(), sizeof(float)), s);
    EXPECT_EQ(backend().Allocate(64).status(), s);
  }

  Arena arena_;
  HostBatch batch_;
  Args a_;
};

TEST_F(CudaBackendErrorsTest, ValidArgumentsAreAccepted) {
  // The baseline each bad call departs from runs cleanly.
  Rope(backend(), a_);
  Attention(backend(), a_);
  EXPECT_TRUE(backend().Synchronize().ok());
}

class CudaRefusalTest : public CudaBackendErrorsTest,
                        public ::testing::WithParamInterface<BadCall> {};

TEST_P(CudaRefusalTest, ReportsAndStaysFailed) {
  GetParam().call(backend(), a_);
  ExpectRefused(GetParam().code, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(BadCalls, CudaRefusalTest, ::testing::ValuesIn(BadCalls()),
                         [](const ::testing::TestParamInfo<BadCall>& info) {
                           return info.param.name;
                         });

TEST_F(CudaBackendErrorsTest, FirstErrorIsKeptAndLaterOpsDoNotRun) {
  const std::vector<float> ones(64, 1.f);
  ASSERT_TRUE(backend().UploadF32(a_.x, ones.data(), ones.size()).ok());
  ASSERT_TRUE(backend().UploadF32(a_.w, ones.data(), ones.size()).ok());
  backend().Gemm(a_.x, a_.w, nullptr, -1, 8, 8, a_.out);
  backend().Add(a_.x, a_.w, -8);  // a second bad call: the first error is the one reported
  backend().Add(a_.x, a_.w, 64);  // valid, but skipped: x must stay 1
  ExpectRefused(absl::StatusCode::kInvalidArgument, "Gemm: bad shape");

  // Another backend on the device is unaffected, and reads x (same device,
  // the failed backend's stream is drained) as the skipped Add left it.
  absl::StatusOr<std::unique_ptr<Backend>> other = MakeCudaBackend(0);
  ASSERT_TRUE(other.ok()) << other.status();
  std::vector<float> x(ones.size());
  ASSERT_TRUE((*other)->DownloadF32(x.data(), a_.x, x.size()).ok());
  EXPECT_EQ(x, ones);
  (*other)->Add(a_.x, a_.w, 64);
  ASSERT_TRUE((*other)->DownloadF32(x.data(), a_.x, x.size()).ok());
  EXPECT_EQ(x, std::vector<float>(64, 2.f));
}

// What each model on a shared device gets (Backend::NewContext): its own
// stream and first error. One model's refused op leaves the device's backend
// and a sibling context working, and memory made through a context is freed
// through it.
TEST_F(CudaBackendErrorsTest, EachContextKeepsItsOwnError) {
  absl::StatusOr<std::unique_ptr<Backend>> first = backend().NewContext();
  absl::StatusOr<std::unique_ptr<Backend>> second = backend().NewContext();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_NE(*first, nullptr) << "CUDA separates models";
  Backend& bad = **first;
  Backend& good = **second;
  EXPECT_EQ(bad.Caps().device_name, backend().Caps().device_name);

  absl::StatusOr<void*> mine = bad.Allocate(64 * sizeof(uint16_t));
  ASSERT_TRUE(mine.ok()) << mine.status();
  bad.Gemm(a_.x, a_.w, nullptr, -1, 8, 8, a_.out);
  const absl::Status failed = bad.Synchronize();
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(failed.message()), HasSubstr("Gemm: bad shape"));
  bad.Free(*mine);

  const std::vector<float> ones(64, 1.f);
  std::vector<float> x(ones.size());
  EXPECT_TRUE(backend().Synchronize().ok()) << "the device's own handle is unaffected";
  ASSERT_TRUE(good.UploadF32(a_.x, ones.data(), ones.size()).ok());
  ASSERT_TRUE(good.UploadF32(a_.w, ones.data(), ones.size()).ok());
  good.Add(a_.x, a_.w, 64);
  ASSERT_TRUE(good.DownloadF32(x.data(), a_.x, x.size()).ok());
  EXPECT_EQ(x, std::vector<float>(64, 2.f)) << "a sibling context still computes";
}

// A context that recorded an error still gives its KV memory back: the range
// returns to the device (it stayed mapped, while the pool counted it free).
TEST_F(CudaBackendErrorsTest, AFailedContextStillUnbacksItsKvMemory) {
  absl::StatusOr<std::unique_ptr<Backend>> context = backend().NewContext();
  ASSERT_TRUE(context.ok()) << context.status();
  Backend& b = **context;
  if (b.vm_granularity() == 0) GTEST_SKIP() << "no virtual memory management on this device";
  const size_t bytes = ((size_t{256} << 20) / b.vm_granularity()) * b.vm_granularity();
  absl::StatusOr<void*> base = b.ReserveAddressSpace(bytes);
  ASSERT_TRUE(base.ok()) << base.status();
  ASSERT_TRUE(b.BackRange(*base, bytes).ok());
  const uint64_t free_while_backed = backend().Caps().free_memory;
  b.Gemm(a_.x, a_.w, nullptr, -1, 8, 8, a_.out);  // an error the context keeps
  EXPECT_FALSE(b.Synchronize().ok());
  EXPECT_TRUE(b.UnbackRange(*base, bytes).ok());
  b.ReleaseAddressSpace(*base, bytes);
  EXPECT_GE(backend().Caps().free_memory, free_while_backed + bytes / 2)
      << "the range went back to the device";
}

TEST(CpuContextTest, TheCpuHasNothingPerModelToSeparate) {
  std::unique_ptr<Backend> cpu = MakeCpuBackend(1);
  absl::StatusOr<std::unique_ptr<Backend>> context = cpu->NewContext();
  ASSERT_TRUE(context.ok());
  EXPECT_EQ(*context, nullptr) << "models use the device's backend directly";
}

}  // namespace
}  // namespace cohost::kernels::backend_ops
