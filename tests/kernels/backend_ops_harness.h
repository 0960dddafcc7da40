// The cross-backend harness: OpChecks runs every op of kernels::Backend on one
// candidate backend with fresh random inputs and compares it with the naive
// reference (naive_ops.h). The suite and the tests that prove a check can fail
// run these same checks. Tolerances are explained in backend_ops_test.cc.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"
#include "cohost/kernels/paged_kv.h"

namespace cohost::kernels::backend_ops {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// |got - want| <= atol + rtol * |want| elementwise, and
// ||got - want|| / ||want|| <= rel_norm over the whole output.
struct Tolerance {
  double atol;
  double rtol;
  double rel_norm;
};
// Copies of bf16-representable values: every backend must be bit exact.
inline constexpr Tolerance kExact{0, 0, 0};
// fp32 backends against the double reference: ~170 units of fp32 roundoff,
// over 30x what the CPU backend shows (backend_ops_test.cc has the numbers).
inline constexpr Tolerance kF32Tol{1e-5, 1e-5, 2e-6};
// bf16 backends: one bf16 rounding is 4e-3 relative.
inline constexpr Tolerance kBf16Tol{2e-2, 2e-2, 1e-2};
// fp32 sums of bf16 products in tensor cores (the bf16 backends' GemmToF32):
// their adders align the products and truncate rather than round (Fasi et
// al., "Numerical behavior of NVIDIA tensor cores", 2021), so the error can
// be biased, growing like k u rather than sqrt(k) u: five times kF32Tol's
// norm bound, still 400x under what one bf16 rounding of the outputs gives.
inline constexpr Tolerance kTensorCoreF32Tol{1e-5, 1e-4, 1e-5};
// Unit roundoff of fp32, 2^-24.
inline constexpr double kF32Roundoff = 5.9604644775390625e-8;

// The tolerance for a backend computing in `dtype`; fails the test for a dtype
// no tolerance was derived for.
Tolerance ToleranceFor(DType dtype);

// A GEMM of inner size k accumulates k fp32 roundings of partial sums that grow
// like sqrt(k): its absolute error grows like k * u (u the fp32 roundoff), so
// atol is at least k * u on every backend (all accumulate in fp32);
// `roundoffs` u per k where the sums are worse than rounded (tensor cores
// truncate their fp32 adds: 4).
Tolerance GemmTolerance(const Tolerance& tol, int32_t k, int roundoffs = 1);

// Compares a candidate output with the reference and reports at most one
// failure per output. nan_equal: a NaN in both is a match (page rows that must
// stay unwritten); a NaN in one alone, or an infinity anywhere, never is.
void ExpectClose(const std::vector<float>& want, const std::vector<float>& got,
                 const Tolerance& tol, const std::string& what, bool nan_equal = false);

// COHOST_TEST_SEED=<n> replays a draw; otherwise a fresh random seed.
uint32_t SeedFromEnv();

// Device memory made by one test, freed before its backend.
struct Arena {
  std::unique_ptr<Backend> be;
  std::vector<DeviceBuffer> bufs;

  void* Alloc(size_t bytes);
  // Host floats converted to the compute dtype, starting `offset` elements
  // into a fresh buffer (offset > 0 makes a misaligned view).
  void* Floats(const std::vector<float>& host, size_t offset = 0);
  void* Poisoned(size_t n, size_t offset = 0) {
    return Floats(std::vector<float>(n, kNaN), offset);
  }
  // Raw bytes: int32 metadata, and fp32 tables such as inv_freq.
  template <typename T>
  T* Raw(const std::vector<T>& host) {
    return static_cast<T*>(RawBytes(host.data(), host.size() * sizeof(T)));
  }
  void* RawBytes(const void* host, size_t bytes);
  // `elems` compute-dtype elements past p.
  void* At(void* p, size_t elems) const {
    return static_cast<char*>(p) + elems * DTypeSize(be->compute_dtype());
  }
  // Waits for the backend, then reads n compute-dtype elements back as floats
  // (all NaN, and a test failure, if the backend reports an error).
  std::vector<float> Read(const void* p, size_t n);
};

// A host batch of sequences, each with `cached` tokens already in pages and
// `fresh` new tokens, pages drawn at random from a pool with unused extras.
struct SeqSpec {
  int32_t cached;
  int32_t fresh;
};

struct HostBatch {
  std::vector<int32_t> seq_starts, context_lens, block_tables, positions, slot_mapping;
  int32_t num_seqs = 0, num_tokens = 0, max_blocks_per_seq = 0, max_query_len = 0,
          max_context_len = 0, num_blocks = 0;

  // The layout over these host vectors, as the naive reference reads it.
  BatchLayout Host() const;
  // The layout over copies in the arena's memory.
  BatchLayout Upload(Arena& arena) const;
};

// padding_tokens tokens outside every run (slot -1) follow the sequences.
HostBatch MakeBatch(const std::vector<SeqSpec>& seqs, int32_t block_size, int32_t extra_blocks,
                    int32_t padding_tokens, std::mt19937& rng);

struct AttnCase {
  std::string name;
  int32_t num_heads, num_kv_heads, head_dim;
  std::vector<SeqSpec> seqs;
  int32_t padding_tokens = 0;
  int32_t block_size = 16;
  // max_query_len and max_context_len left 0 ("unknown"): hints, not inputs.
  bool zero_hints = false;
};
void PrintTo(const AttnCase& c, std::ostream* os);

// The PagedAttention cases every backend runs.
std::vector<AttnCase> AttentionCases();

// One candidate backend and a check per op. Each check draws fresh inputs,
// runs the op on the candidate with NaN-poisoned outputs, runs the naive
// reference on the same inputs, and reports mismatches as non-fatal failures.
class OpChecks {
 public:
  OpChecks(std::unique_ptr<Backend> candidate, uint32_t seed);

  Backend& backend() { return *arena_.be; }
  const Tolerance& tol() const { return tol_; }

  void CapsAndCopies();
  void AllocationFailureIsRecoverable();
  void Embedding();
  void GatherRows();
  // SampleRows at temperature 0: ties, NaN, infinities, rows with nothing
  // above -inf.
  void SampleRowsGreedy();
  // SampleRows against naive::SampleRow: filters, ties, NaN, infinities.
  void SampleRows();
  // RowLogprobs against naive::RowLogprobs: ties (the lower id first), NaN,
  // infinities, top_n from 0 to kMaxTopLogprobs and up to the width.
  void RowLogprobs();
  // ApplyPenalties bit for bit against PenaltyTerm's words: signs, zeros,
  // NaN and infinities, tokens out of range, rows without terms; the logits
  // it saves, and RestoreLogits putting them back.
  void ApplyPenalties();
  // MaskRows bit for bit: masked rows -inf exactly where their mask's bit is
  // clear (widths around a word's edge), unmasked rows untouched, two rows
  // sharing one mask.
  void MaskRows();
  void RmsNorm();
  // HeadRmsNorm on rows of [q heads | k heads | v] (Qwen3's norms): each
  // head against naive::RmsNorm, the values past the heads untouched.
  void HeadRmsNorm();
  void Gemm();
  // GemmToF32: fp32 logits, held to fp32 roundoff on every backend.
  void GemmToF32();
  void Add();
  void SiluMul();
  // MoeCombine: rows picked twice and never, a weight of 0, k of 1 and 8.
  void MoeCombine();
  void RopeWriteKv();
  void PagedAttention(const AttnCase& c);
  // Zero-size calls write nothing; Gemm with k = 0 is an empty sum.
  void EmptyShapes();
  // Views one element past an aligned allocation (the CUDA elementwise kernels
  // fall back from their 16-byte vector path).
  void UnalignedViews();

 private:
  // Uniform in [lo, hi), rounded to bf16 so every backend holds the same values.
  std::vector<float> Random(size_t n, float lo = -1.f, float hi = 1.f);
  // ExpectClose, plus: a strict check needs a finite reference.
  void Check(const std::string& what, const std::vector<float>& want, const std::vector<float>& got,
             const Tolerance& tol, bool nan_equal = false);

  uint32_t seed_;
  std::mt19937 rng_;
  Arena arena_;
  Tolerance tol_;
};

}  // namespace cohost::kernels::backend_ops
