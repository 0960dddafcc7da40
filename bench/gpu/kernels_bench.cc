// Each op of the Backend interface timed against its floor, and a decode step
// built from them: what bench/gpu/check.sh runs on a lent GPU, next to
// bench/gpu/torch_baseline.py on the same shapes.
//
//   kernels_bench [--device cuda|cpu] [--shape llama3-8b|smol] [--iters N]
//                 [--bandwidth-gbs 4300] [--tflops 790] [--l2-mb 60]
//
// A floor is the op's bytes over the copy bandwidth or its FLOPs over the
// matrix rate, whichever is larger (defaults: an H200's 4.3 TB/s and 790
// dense bf16 TFLOP/s). Times are wall clock over N calls queued back to back,
// then one Synchronize: launch overhead counts, as it does in a step. An op
// whose operands would stay in the device's L2 cache between calls (one
// layer's o projection is 34 MB; an H200's L2 is 60 MB, an H100's 50) is
// timed over copies of them taken in turn, together at least twice --l2-mb,
// so that its floor (every byte from memory) is what it is measured against.
// `--device cpu --shape smol --iters 1` is the dry run CI makes (the numbers
// then mean nothing; the program and its shapes are what is checked).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "cohost/kernels/backend.h"
#include "cohost/kernels/dtype.h"

namespace cohost::kernels {
namespace {

struct Shape {
  const char* name;
  int32_t hidden, inter, heads, kv_heads, head_dim, vocab, layers;
};
constexpr Shape kLlama3_8b{"llama3-8b", 4096, 14336, 32, 8, 128, 128256, 32};
constexpr Shape kSmol{"smol", 576, 1536, 9, 3, 64, 49152, 30};

struct Options {
  std::string device = "cuda";
  Shape shape = kLlama3_8b;
  int iters = 20;
  double bandwidth_gbs = 4300;
  double tflops = 790;
  double l2_mb = 60;  // an H200's, as PyTorch reported it on the lent one (an H100's: 50)
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "kernels_bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) Fail(absl::StrFormat("%s: %s", what, s.ToString()));
}

// Device buffers of random values, freed with the bench.
class Arena {
 public:
  explicit Arena(Backend* be) : be_(be) {}
  // Values in [-scale, scale) from a multiplicative hash: the lm_head alone is
  // half a billion of them, too many for a slow generator.
  void* Random(size_t n, float scale) {
    std::vector<float> host(n);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t h = static_cast<uint32_t>((i + seed_) * 2654435761u);
      host[i] = scale * (static_cast<float>(h >> 8) * 0x1p-23f - 1.f);
    }
    ++seed_;
    void* p = Bytes(n * DTypeSize(be_->compute_dtype()));
    Check(be_->UploadF32(p, host.data(), n), "UploadF32");
    return p;
  }
  void* Bytes(size_t bytes) {
    absl::StatusOr<DeviceBuffer> b = DeviceBuffer::Create(be_, std::max<size_t>(bytes, 1));
    if (!b.ok()) Fail(absl::StrFormat("Allocate(%d bytes): %s", bytes, b.status().ToString()));
    bufs_.push_back(*std::move(b));
    return bufs_.back().data();
  }
  template <typename T>
  const T* Copy(const std::vector<T>& host) {
    void* p = Bytes(host.size() * sizeof(T));
    Check(be_->CopyToDevice(p, host.data(), host.size() * sizeof(T)), "CopyToDevice");
    return static_cast<const T*>(p);
  }

 private:
  Backend* be_;
  size_t seed_ = 1;
  std::vector<DeviceBuffer> bufs_;
};

// A varlen batch of `seqs` sequences, each `fresh` new tokens after `cached`
// ones, its pages on device; every sequence has its own pages.
struct DeviceBatch {
  BatchLayout layout;
  PagedKv kv;
};

DeviceBatch MakeBatch(Arena& arena, Backend* be, const Shape& s, int32_t seqs, int32_t cached,
                      int32_t fresh) {
  constexpr int32_t kBlock = 16;
  const int32_t context = cached + fresh;
  const int32_t blocks_per_seq = (context + kBlock - 1) / kBlock;
  std::vector<int32_t> starts{0}, lens, table, positions, slots;
  for (int32_t q = 0; q < seqs; ++q) {
    starts.push_back(starts.back() + fresh);
    lens.push_back(context);
    for (int32_t b = 0; b < blocks_per_seq; ++b) table.push_back(1 + q * blocks_per_seq + b);
    for (int32_t t = cached; t < context; ++t) {
      positions.push_back(t);
      slots.push_back(table[q * blocks_per_seq + t / kBlock] * kBlock + t % kBlock);
    }
  }
  DeviceBatch b;
  b.layout.seq_starts = arena.Copy(starts);
  b.layout.context_lens = arena.Copy(lens);
  b.layout.block_tables = arena.Copy(table);
  b.layout.positions = arena.Copy(positions);
  b.layout.slot_mapping = arena.Copy(slots);
  b.layout.num_seqs = seqs;
  b.layout.num_tokens = seqs * fresh;
  b.layout.max_blocks_per_seq = blocks_per_seq;
  b.layout.max_query_len = fresh;
  b.layout.max_context_len = context;
  b.kv.num_blocks = 1 + seqs * blocks_per_seq;
  b.kv.block_size = kBlock;
  b.kv.num_kv_heads = s.kv_heads;
  b.kv.head_dim = s.head_dim;
  b.kv.dtype = be->kv_dtype();
  const size_t kv_elems = static_cast<size_t>(b.kv.num_blocks) * kBlock * s.kv_heads * s.head_dim;
  // The pages stay as allocated: attention's time does not depend on the
  // values it reads (and the reads never reach unallocated memory).
  b.kv.k = arena.Bytes(kv_elems * DTypeSize(b.kv.dtype));
  b.kv.v = arena.Bytes(kv_elems * DTypeSize(b.kv.dtype));
  return b;
}

class Bench {
 public:
  Bench(Options o, std::unique_ptr<Backend> be)
      : o_(std::move(o)), be_(std::move(be)), arena_(be_.get()) {}

  // Seconds per call of `op`, `iters` calls after one warm-up.
  double Time(const std::function<void()>& op) {
    return TimeRotating([&](int) { op(); }, 1);
  }
  // The same over `copies` copies of the operands, call i taking copy
  // i % copies (each warmed up once).
  double TimeRotating(const std::function<void(int)>& op, int copies) {
    for (int c = 0; c < copies; ++c) op(c);
    Check(be_->Synchronize(), "warm-up");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o_.iters; ++i) op(i % copies);
    Check(be_->Synchronize(), "timed calls");
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o_.iters;
  }
  // Copies of `bytes` of operands that together pass twice the L2 cache
  // (at most 16): each call then reads its operands from memory.
  int CopiesPastL2(double bytes) const {
    const double wanted = std::ceil(2 * o_.l2_mb * (1 << 20) / std::max(bytes, 1.0));
    return static_cast<int>(std::clamp(wanted, 1.0, 16.0));
  }

  void Row(const std::string& op, const std::string& shape, double seconds, double bytes,
           double flops) {
    const double floor = std::max(bytes / (o_.bandwidth_gbs * 1e9), flops / (o_.tflops * 1e12));
    std::printf("| %s | %s | %.1f | %.1f | %.0f%% |\n", op.c_str(), shape.c_str(), seconds * 1e6,
                floor * 1e6, 100 * floor / seconds);
    std::fflush(stdout);
  }

  // One layer's weights, the lm_head and a norm: made once (the lm_head alone
  // is half a billion values), used by the GEMM rows and every decode step.
  struct Weights {
    void *wqkv, *wo, *wgu, *wd, *lm, *norm;
  };
  const Weights& W() {
    if (!weights_) {
      const Shape& s = o_.shape;
      const size_t H = s.hidden, I = s.inter, qw = size_t{1} * s.heads * s.head_dim,
                   kvw = size_t{1} * s.kv_heads * s.head_dim;
      weights_ = Weights{arena_.Random((qw + 2 * kvw) * H, 0.05f),
                         arena_.Random(H * qw, 0.05f),
                         arena_.Random(2 * I * H, 0.05f),
                         arena_.Random(H * I, 0.05f),
                         arena_.Random(static_cast<size_t>(s.vocab) * H, 0.05f),
                         arena_.Random(H, 1.f)};
    }
    return *weights_;
  }

  void Gemms() {
    const Shape& s = o_.shape;
    const size_t elem = DTypeSize(be_->compute_dtype());
    const int32_t qkv = (s.heads + 2 * s.kv_heads) * s.head_dim;
    struct G {
      const char* name;
      void* w;
      int32_t n, k;
    };
    for (const G& g :
         {G{"qkv", W().wqkv, qkv, s.hidden}, G{"o", W().wo, s.hidden, s.heads * s.head_dim},
          G{"gate_up", W().wgu, 2 * s.inter, s.hidden}, G{"down", W().wd, s.hidden, s.inter}}) {
      // The weights are what an m=1 product reads; copies of them keep it
      // from reading the cache.
      std::vector<void*> w{g.w};
      const int copies = CopiesPastL2(static_cast<double>(g.n) * g.k * elem);
      while (static_cast<int>(w.size()) < copies) {
        w.push_back(arena_.Random(static_cast<size_t>(g.n) * g.k, 0.05f));
      }
      for (int32_t m : {1, 32, 2048}) {
        void* a = arena_.Random(static_cast<size_t>(m) * g.k, 1.f);
        void* c = arena_.Bytes(static_cast<size_t>(m) * g.n * elem);
        const double t = TimeRotating(
            [&](int i) { be_->Gemm(a, w[static_cast<size_t>(i)], nullptr, m, g.n, g.k, c); },
            copies);
        const double bytes =
            (static_cast<double>(g.n) * g.k + static_cast<double>(m) * (g.k + g.n)) * elem;
        Row(absl::StrFormat("gemm %s", g.name), absl::StrFormat("m=%d n=%d k=%d", m, g.n, g.k), t,
            bytes, 2.0 * m * g.n * g.k);
      }
    }
    void* w = W().lm;
    for (int32_t m : {1, 32}) {
      void* a = arena_.Random(static_cast<size_t>(m) * s.hidden, 1.f);
      float* c = static_cast<float*>(arena_.Bytes(static_cast<size_t>(m) * s.vocab * 4));
      const double t = Time([&] { be_->GemmToF32(a, w, m, s.vocab, s.hidden, c); });
      const double bytes =
          static_cast<double>(s.vocab) * s.hidden * elem + static_cast<double>(m) * s.vocab * 4;
      Row("lm_head (fp32 out)", absl::StrFormat("m=%d n=%d k=%d", m, s.vocab, s.hidden), t, bytes,
          2.0 * m * s.vocab * s.hidden);
    }
  }

  void Attention() {
    const Shape& s = o_.shape;
    const size_t elem = DTypeSize(be_->compute_dtype());
    const size_t kv_elem = DTypeSize(be_->kv_dtype());
    const float scale = 1.f / std::sqrt(static_cast<float>(s.head_dim));
    struct A {
      int32_t seqs, cached, fresh;
    };
    for (const A& a : {A{1, 4095, 1}, A{1, 32767, 1}, A{32, 4095, 1}, A{128, 1023, 1},
                       A{1, 0, 2048}, A{4, 2048, 512}}) {
      const double context = a.cached + a.fresh;
      // Each copy its own pages: a short context's K and V fit the cache.
      const int copies = CopiesPastL2(a.seqs * context * s.kv_heads * s.head_dim * 2.0 * kv_elem);
      std::vector<DeviceBatch> b;
      b.reserve(static_cast<size_t>(copies));
      for (int c = 0; c < copies; ++c) {
        b.push_back(MakeBatch(arena_, be_.get(), s, a.seqs, a.cached, a.fresh));
      }
      const int32_t tokens = b[0].layout.num_tokens;
      void* q = arena_.Random(static_cast<size_t>(tokens) * s.heads * s.head_dim, 1.f);
      void* out = arena_.Bytes(static_cast<size_t>(tokens) * s.heads * s.head_dim * elem);
      const double t = TimeRotating(
          [&](int i) {
            const DeviceBatch& c = b[static_cast<size_t>(i)];
            be_->PagedAttention(q, int64_t{s.heads} * s.head_dim, c.layout, c.kv, s.heads, scale,
                                out);
          },
          copies);
      // K and V read once per kv head; q read and out written once.
      const double bytes = a.seqs * context * s.kv_heads * s.head_dim * 2.0 * kv_elem +
                           2.0 * tokens * s.heads * s.head_dim * elem;
      // QK^T and PV over the causal triangle of each sequence's new tokens.
      double pairs = 0;
      for (int32_t i = 0; i < a.fresh; ++i) pairs += a.cached + i + 1;
      const double flops = 4.0 * a.seqs * pairs * s.heads * s.head_dim;
      Row(a.fresh == 1 ? "attention decode" : "attention prefill",
          absl::StrFormat("%d seq x %d new over %d cached", a.seqs, a.fresh, a.cached), t, bytes,
          flops);
    }
  }

  // One decode step of `batch` sequences at `context` tokens, every layer
  // running on the same weights and pages (the bytes read are the real
  // model's; the device's cache is far smaller than one layer's weights).
  void DecodeStep(int32_t batch, int32_t context) {
    const Shape& s = o_.shape;
    const size_t elem = DTypeSize(be_->compute_dtype());
    const int32_t qw = s.heads * s.head_dim, kvw = s.kv_heads * s.head_dim;
    const int32_t H = s.hidden, I = s.inter;
    const Weights& w = W();
    void *wqkv = w.wqkv, *wo = w.wo, *wgu = w.wgu, *wd = w.wd, *lm = w.lm, *norm = w.norm;
    std::vector<float> inv_freq(s.head_dim / 2);
    for (int32_t i = 0; i < s.head_dim / 2; ++i) {
      inv_freq[i] = static_cast<float>(std::pow(500000.0, -2.0 * i / s.head_dim));
    }
    const float* freq = arena_.Copy(inv_freq);
    DeviceBatch b = MakeBatch(arena_, be_.get(), s, batch, context - 1, 1);
    void* x = arena_.Random(static_cast<size_t>(batch) * H, 1.f);
    void* delta = arena_.Random(static_cast<size_t>(batch) * H, 1.f);
    void* normed = arena_.Bytes(static_cast<size_t>(batch) * H * elem);
    void* qkv = arena_.Bytes(static_cast<size_t>(batch) * (qw + 2 * kvw) * elem);
    void* attn = arena_.Bytes(static_cast<size_t>(batch) * qw * elem);
    void* gu = arena_.Bytes(static_cast<size_t>(batch) * 2 * I * elem);
    void* act = arena_.Bytes(static_cast<size_t>(batch) * I * elem);
    float* logits = static_cast<float*>(arena_.Bytes(static_cast<size_t>(batch) * s.vocab * 4));
    char* q = static_cast<char*>(qkv);
    const float scale = 1.f / std::sqrt(static_cast<float>(s.head_dim));
    const RopeSpec rope{freq, s.head_dim, RopePairs::kHalves};
    auto step = [&] {
      for (int32_t l = 0; l < s.layers; ++l) {
        be_->RmsNorm(delta, x, norm, batch, H, 1e-5f, normed);
        // As the model runs it: one QKV product, rows [q | k | v].
        const int32_t width = qw + 2 * kvw;
        be_->Gemm(normed, WeightRef(wqkv), nullptr, batch, width, H, q);
        be_->RopeWriteKv(QkvRows{q, q + static_cast<size_t>(qw) * elem,
                                 q + static_cast<size_t>(qw + kvw) * elem, width, width},
                         b.layout, s.heads, rope, b.kv);
        be_->PagedAttention(q, width, b.layout, b.kv, s.heads, scale, attn);
        be_->Gemm(attn, wo, nullptr, batch, H, qw, delta);
        be_->RmsNorm(delta, x, norm, batch, H, 1e-5f, normed);
        be_->Gemm(normed, wgu, nullptr, batch, 2 * I, H, gu);
        be_->SiluMul(gu, batch, I, act);
        be_->Gemm(act, wd, nullptr, batch, H, I, delta);
      }
      be_->RmsNorm(delta, x, norm, batch, H, 1e-5f, normed);
      be_->GemmToF32(normed, lm, batch, s.vocab, H, logits);
    };
    const double t = Time(step);
    const double layer_weights =
        (static_cast<double>(qw + 2 * kvw) * H + static_cast<double>(H) * qw + 2.0 * I * H +
         static_cast<double>(H) * I) *
        elem;
    const double weights = s.layers * layer_weights + static_cast<double>(s.vocab) * H * elem;
    const double kv =
        static_cast<double>(batch) * context * kvw * 2.0 * DTypeSize(be_->kv_dtype()) * s.layers;
    const double flops = 2.0 * batch * (weights / elem);
    const std::string what =
        absl::StrFormat("batch %d at %d tokens, %d layers", batch, context, s.layers);
    Row("decode step", what, t, weights + kv, flops);
    // The same step as one captured graph (what --cuda-graphs runs): the
    // difference is the launches' cost. The eager runs above grew the scratch.
    absl::StatusOr<std::unique_ptr<OpGraph>> graph = be_->Capture(step);
    if (!graph.ok()) {
      std::printf("| decode step (graph) | %s | not captured: %s | | |\n", what.c_str(),
                  std::string(graph.status().message()).c_str());
      return;
    }
    const double tg = Time([&] { Check((*graph)->Launch(), "graph launch"); });
    Row("decode step (graph)", what, tg, weights + kv, flops);
  }

  void Run() {
    const BackendCaps caps = be_->Caps();
    std::printf(
        "kernels_bench: %s (%s), shape %s, %d iterations, floors %.0f GB/s and %.0f TFLOP/s; "
        "operands rotated past %.0f MB of L2\n\n",
        o_.device.c_str(), caps.device_name.c_str(), o_.shape.name, o_.iters, o_.bandwidth_gbs,
        o_.tflops, o_.l2_mb);
    std::printf("| op | shape | us | floor us | of floor |\n|---|---|---|---|---|\n");
    Gemms();
    Attention();
    for (int32_t batch : {1, 32, 128}) DecodeStep(batch, 1024);
  }

 private:
  Options o_;
  std::optional<Weights> weights_;  // W()'s
  std::unique_ptr<Backend> be_;
  Arena arena_;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Fail(absl::StrFormat("%s needs a value", arg));
      return argv[++i];
    };
    if (arg == "--device") {
      o.device = value();
    } else if (arg == "--shape") {
      const std::string v = value();
      if (v == kLlama3_8b.name) {
        o.shape = kLlama3_8b;
      } else if (v == kSmol.name) {
        o.shape = kSmol;
      } else {
        Fail(absl::StrFormat("--shape %s: llama3-8b or smol", v));
      }
    } else if (arg == "--iters") {
      o.iters = std::atoi(value().c_str());
    } else if (arg == "--bandwidth-gbs") {
      o.bandwidth_gbs = std::atof(value().c_str());
    } else if (arg == "--tflops") {
      o.tflops = std::atof(value().c_str());
    } else if (arg == "--l2-mb") {
      o.l2_mb = std::atof(value().c_str());
    } else {
      Fail(absl::StrFormat("unknown flag %s (see the top of bench/gpu/kernels_bench.cc)", arg));
    }
  }
  if (o.iters < 1 || o.bandwidth_gbs <= 0 || o.tflops <= 0 || o.l2_mb <= 0) {
    Fail("--iters, --bandwidth-gbs, --tflops and --l2-mb must be positive");
  }
  if (o.device != "cuda" && o.device != "cpu") Fail("--device: cuda or cpu");
  return o;
}

}  // namespace
}  // namespace cohost::kernels

int main(int argc, char** argv) {
  using namespace cohost::kernels;
  Options o = Parse(argc, argv);
  std::unique_ptr<Backend> be;
  if (o.device == "cpu") {
    be = MakeCpuBackend();
  } else {
    absl::StatusOr<std::unique_ptr<Backend>> cuda = MakeCudaBackend(0);
    if (!cuda.ok()) Fail(absl::StrFormat("no CUDA backend: %s", cuda.status().ToString()));
    be = *std::move(cuda);
  }
  Bench(std::move(o), std::move(be)).Run();
  return 0;
}
