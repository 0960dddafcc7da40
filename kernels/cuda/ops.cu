// Elementwise and row-wise CUDA kernels: gather rows (embedding), RMSNorm with
// the fused residual add, add, bias add, SiLU-and-multiply. All are memory
// bound: each has a 16-byte-vector path (taken when the row width is a
// multiple of 8 and the pointers are 16-byte aligned) and a scalar fallback.
// Arithmetic is fp32; only stores round to bf16.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cuda_ops.cuh"

namespace cohost::kernels::cuda {
namespace {

// One block per output row. kVec: 8 elements per access (width % 8 == 0).
template <bool kVec>
__global__ void GatherRowsKernel(const bf16* __restrict__ x /*[n, width]*/,
                                 const int32_t* __restrict__ rows /*[num_rows]*/, int32_t width,
                                 bf16* __restrict__ out /*[num_rows, width]*/) {
  const int64_t r = blockIdx.x;
  const bf16* src = x + static_cast<int64_t>(rows[r]) * width;
  bf16* dst = out + r * width;
  if constexpr (kVec) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int i = threadIdx.x; i < width / 8; i += blockDim.x) d[i] = s[i];
  } else {
    for (int i = threadIdx.x; i < width; i += blockDim.x) dst[i] = src[i];
  }
}

// One block per row of `hidden` values: block b normalizes the values from
// (b / heads) * row_stride + (b % heads) * hidden (RmsNorm: heads 1,
// row_stride hidden; HeadRmsNorm: a row's heads). Pass 1 adds the residual
// (stored rounded) and sums squares in fp32; pass 2 re-reads this thread's
// own elements and scales them. out may alias x (as on the CPU), hence no
// __restrict__ on them: every element is read before this thread writes it,
// and no thread reads another's.
template <bool kVec, bool kResidual>
__global__ void RmsNormKernel(const bf16* x, bf16* residual /*or null*/,
                              const bf16* __restrict__ weight /*[hidden]*/, int32_t hidden,
                              int32_t heads, int64_t row_stride, float eps, bf16* out) {
  __shared__ float scratch[32];
  const int64_t block = blockIdx.x;
  const int64_t base = block / heads * row_stride + block % heads * hidden;
  const bf16* xr = x + base;
  bf16* rr = kResidual ? residual + base : nullptr;
  // The normalized values: residual after the add, or x itself.
  const bf16* vr = kResidual ? rr : xr;
  float sumsq = 0.f;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
      float a[8];
      Unpack8(reinterpret_cast<const uint4*>(xr)[i], a);
      if constexpr (kResidual) {
        float b[8];
        Unpack8(reinterpret_cast<const uint4*>(rr)[i], b);
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] += b[j];
        uint4 packed = Pack8(a);
        reinterpret_cast<uint4*>(rr)[i] = packed;
        Unpack8(packed, a);  // normalize what the next layer will read
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) sumsq += a[j] * a[j];
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      float a = __bfloat162float(xr[i]);
      if constexpr (kResidual) {
        bf16 sum = __float2bfloat16_rn(a + __bfloat162float(rr[i]));
        rr[i] = sum;
        a = __bfloat162float(sum);
      }
      sumsq += a * a;
    }
  }
  // RowThreads: whole warps.
  const float total = BlockReduce(sumsq, scratch, static_cast<int>(blockDim.x >> 5), SumOp{});
  const float inv_rms = rsqrtf(total / static_cast<float>(hidden) + eps);
  bf16* orow = out + base;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
      float a[8], w[8];
      Unpack8(reinterpret_cast<const uint4*>(vr)[i], a);
      Unpack8(reinterpret_cast<const uint4*>(weight)[i], w);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] = a[j] * inv_rms * w[j];
      reinterpret_cast<uint4*>(orow)[i] = Pack8(a);
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      orow[i] =
          __float2bfloat16_rn(__bfloat162float(vr[i]) * inv_rms * __bfloat162float(weight[i]));
    }
  }
}

template <bool kVec>
__global__ void AddKernel(bf16* __restrict__ x /*[n]*/, const bf16* __restrict__ y /*[n]*/,
                          int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    for (; i < n / 8; i += stride) {
      float a[8], b[8];
      Unpack8(reinterpret_cast<const uint4*>(x)[i], a);
      Unpack8(reinterpret_cast<const uint4*>(y)[i], b);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] += b[j];
      reinterpret_cast<uint4*>(x)[i] = Pack8(a);
    }
  } else {
    for (; i < n; i += stride)
      x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) + __bfloat162float(y[i]));
  }
}

template <bool kVec>
__global__ void AddBiasKernel(bf16* __restrict__ c /*[m, n]*/,
                              const bf16* __restrict__ bias /*[n]*/, int64_t total /*m * n*/,
                              int32_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    const int32_t n8 = n / 8;
    for (; i < total / 8; i += stride) {
      float a[8], b[8];
      Unpack8(reinterpret_cast<const uint4*>(c)[i], a);
      Unpack8(reinterpret_cast<const uint4*>(bias)[i % n8], b);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] += b[j];
      reinterpret_cast<uint4*>(c)[i] = Pack8(a);
    }
  } else {
    for (; i < total; i += stride) {
      c[i] = __float2bfloat16_rn(__bfloat162float(c[i]) + __bfloat162float(bias[i % n]));
    }
  }
}

__device__ __forceinline__ float Silu(float g) { return g / (1.f + expf(-g)); }

template <bool kVec>
__global__ void SiluMulKernel(const bf16* __restrict__ gate_up /*[n, 2 * inter]*/,
                              int64_t total /*n * inter*/, int32_t inter,
                              bf16* __restrict__ out /*[n, inter]*/) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    const int32_t inter8 = inter / 8;
    for (; i < total / 8; i += stride) {
      const int64_t row = i / inter8, col8 = i % inter8;
      const uint4* g = reinterpret_cast<const uint4*>(gate_up + row * 2 * inter);
      float a[8], b[8];
      Unpack8(g[col8], a);
      Unpack8(g[inter8 + col8], b);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] = Silu(a[j]) * b[j];
      reinterpret_cast<uint4*>(out)[i] = Pack8(a);
    }
  } else {
    for (; i < total; i += stride) {
      const int64_t row = i / inter, col = i % inter;
      const bf16* g = gate_up + row * 2 * inter;
      out[i] =
          __float2bfloat16_rn(Silu(__bfloat162float(g[col])) * __bfloat162float(g[inter + col]));
    }
  }
}

// One block per token: its k rows of y, weighted, summed in fp32 in order.
template <bool kVec>
__global__ void MoeCombineKernel(const bf16* __restrict__ y, const int32_t* __restrict__ rows,
                                 const float* __restrict__ weights, int32_t k, int32_t width,
                                 bf16* __restrict__ out /*[n, width]*/) {
  const int64_t t = blockIdx.x;
  const int32_t* row = rows + t * k;
  const float* w = weights + t * k;
  bf16* dst = out + t * width;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < width / 8; i += blockDim.x) {
      float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int32_t j = 0; j < k; ++j) {
        float v[8];
        Unpack8(reinterpret_cast<const uint4*>(y + static_cast<int64_t>(row[j]) * width)[i], v);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] += w[j] * v[e];
      }
      reinterpret_cast<uint4*>(dst)[i] = Pack8(acc);
    }
  } else {
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
      float acc = 0.f;
      for (int32_t j = 0; j < k; ++j) {
        acc += w[j] * __bfloat162float(y[static_cast<int64_t>(row[j]) * width + i]);
      }
      dst[i] = __float2bfloat16_rn(acc);
    }
  }
}

// Grid for a grid-stride elementwise kernel over `units` work items.
constexpr int kEltThreads = 256;
unsigned EltBlocks(int64_t units) {
  return static_cast<unsigned>(
      std::clamp<int64_t>((units + kEltThreads - 1) / kEltThreads, 1, 65536));
}

// Threads for a row kernel touching `units` accesses per row: whole warps, <= 1024.
unsigned RowThreads(int64_t units) {
  return static_cast<unsigned>(std::clamp<int64_t>((units + 31) / 32 * 32, 32, 1024));
}

}  // namespace

absl::Status LaunchGatherRows(const bf16* x, const int32_t* rows, int32_t num_rows, int32_t width,
                              bf16* out, cudaStream_t stream) {
  if (num_rows < 0 || width < 0) {
    return absl::InvalidArgumentError(absl::StrCat("GatherRows: bad shape ", num_rows, "x", width));
  }
  if (num_rows == 0 || width == 0) return absl::OkStatus();
  if (width % 8 == 0 && IsAligned16(x) && IsAligned16(out)) {
    GatherRowsKernel<true><<<num_rows, RowThreads(width / 8), 0, stream>>>(x, rows, width, out);
  } else {
    GatherRowsKernel<false><<<num_rows, RowThreads(width), 0, stream>>>(x, rows, width, out);
  }
  return LaunchStatus("GatherRowsKernel");
}

absl::Status LaunchRmsNorm(const bf16* x, bf16* residual, const bf16* weight, int32_t n,
                           int32_t hidden, float eps, bf16* out, cudaStream_t stream) {
  if (n < 0 || hidden <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("RmsNorm: bad shape ", n, "x", hidden));
  }
  if (n == 0) return absl::OkStatus();
  const bool vec = hidden % 8 == 0 && IsAligned16(x) && IsAligned16(weight) && IsAligned16(out) &&
                   (residual == nullptr || IsAligned16(residual));
  const unsigned threads = RowThreads(vec ? hidden / 8 : hidden);
  if (vec && residual) {
    RmsNormKernel<true, true>
        <<<n, threads, 0, stream>>>(x, residual, weight, hidden, 1, hidden, eps, out);
  } else if (vec) {
    RmsNormKernel<true, false>
        <<<n, threads, 0, stream>>>(x, nullptr, weight, hidden, 1, hidden, eps, out);
  } else if (residual) {
    RmsNormKernel<false, true>
        <<<n, threads, 0, stream>>>(x, residual, weight, hidden, 1, hidden, eps, out);
  } else {
    RmsNormKernel<false, false>
        <<<n, threads, 0, stream>>>(x, nullptr, weight, hidden, 1, hidden, eps, out);
  }
  return LaunchStatus("RmsNormKernel");
}

absl::Status LaunchHeadRmsNorm(bf16* x, int32_t rows, int64_t row_stride, int32_t heads,
                               int32_t head_dim, const bf16* weight, float eps,
                               cudaStream_t stream) {
  const int64_t blocks = int64_t{rows} * heads;
  if (rows < 0 || heads <= 0 || head_dim <= 0 || row_stride < int64_t{heads} * head_dim ||
      blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("HeadRmsNorm: bad shape ", rows, "x", heads, "x",
                                                   head_dim, " stride ", row_stride));
  }
  if (rows == 0) return absl::OkStatus();
  const bool vec =
      head_dim % 8 == 0 && row_stride % 8 == 0 && IsAligned16(x) && IsAligned16(weight);
  const unsigned threads = RowThreads(vec ? head_dim / 8 : head_dim);
  const auto grid = static_cast<unsigned>(blocks);
  if (vec) {
    RmsNormKernel<true, false>
        <<<grid, threads, 0, stream>>>(x, nullptr, weight, head_dim, heads, row_stride, eps, x);
  } else {
    RmsNormKernel<false, false>
        <<<grid, threads, 0, stream>>>(x, nullptr, weight, head_dim, heads, row_stride, eps, x);
  }
  return LaunchStatus("RmsNormKernel");
}

absl::Status LaunchAdd(bf16* x, const bf16* y, int64_t n, cudaStream_t stream) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat("Add: bad size ", n));
  if (n == 0) return absl::OkStatus();
  if (n % 8 == 0 && IsAligned16(x) && IsAligned16(y)) {
    AddKernel<true><<<EltBlocks(n / 8), kEltThreads, 0, stream>>>(x, y, n);
  } else {
    AddKernel<false><<<EltBlocks(n), kEltThreads, 0, stream>>>(x, y, n);
  }
  return LaunchStatus("AddKernel");
}

absl::Status LaunchAddBias(bf16* c, const bf16* bias, int32_t m, int32_t n, cudaStream_t stream) {
  if (m < 0 || n < 0)
    return absl::InvalidArgumentError(absl::StrCat("AddBias: bad shape ", m, "x", n));
  const int64_t total = static_cast<int64_t>(m) * n;
  if (total == 0) return absl::OkStatus();
  if (n % 8 == 0 && IsAligned16(c) && IsAligned16(bias)) {
    AddBiasKernel<true><<<EltBlocks(total / 8), kEltThreads, 0, stream>>>(c, bias, total, n);
  } else {
    AddBiasKernel<false><<<EltBlocks(total), kEltThreads, 0, stream>>>(c, bias, total, n);
  }
  return LaunchStatus("AddBiasKernel");
}

absl::Status LaunchMoeCombine(const bf16* y, const int32_t* rows, const float* weights, int32_t n,
                              int32_t k, int32_t width, bf16* out, cudaStream_t stream) {
  if (n < 0 || k < 0 || width < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeCombine: bad shape ", n, "x", k, "x", width));
  }
  if (n == 0 || width == 0) return absl::OkStatus();
  // Row r of y starts 16-byte aligned when y does and width % 8 == 0.
  if (width % 8 == 0 && IsAligned16(y) && IsAligned16(out)) {
    MoeCombineKernel<true>
        <<<n, RowThreads(width / 8), 0, stream>>>(y, rows, weights, k, width, out);
  } else {
    MoeCombineKernel<false><<<n, RowThreads(width), 0, stream>>>(y, rows, weights, k, width, out);
  }
  return LaunchStatus("MoeCombineKernel");
}

absl::Status LaunchSiluMul(const bf16* gate_up, int32_t n, int32_t inter, bf16* out,
                           cudaStream_t stream) {
  if (n < 0 || inter < 0) {
    return absl::InvalidArgumentError(absl::StrCat("SiluMul: bad shape ", n, "x", inter));
  }
  const int64_t total = static_cast<int64_t>(n) * inter;
  if (total == 0) return absl::OkStatus();
  if (inter % 8 == 0 && IsAligned16(gate_up) && IsAligned16(out)) {
    SiluMulKernel<true>
        <<<EltBlocks(total / 8), kEltThreads, 0, stream>>>(gate_up, total, inter, out);
  } else {
    SiluMulKernel<false><<<EltBlocks(total), kEltThreads, 0, stream>>>(gate_up, total, inter, out);
  }
  return LaunchStatus("SiluMulKernel");
}

}  // namespace cohost::kernels::cuda
