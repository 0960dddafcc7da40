#include "bench/sim/cost_model.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace cohost::sim {

SimCost H200Llama3_8B() {
  constexpr double kCopyBytesPerSecond = 4.3e12;  // shared/gpu.md, measured
  constexpr double kBf16FlopsPerSecond = 790e12;  // shared/gpu.md, measured
  constexpr double kBandwidthAchieved = 0.8;      // assumed: decode GEMVs at 80% of a copy
  constexpr double kFlopsAchieved = 0.6;          // assumed: prefill GEMMs at 60% of peak
  constexpr double kParams = 8.03e9;              // Llama-3-8B
  SimCost c;
  c.name = "h200-llama3-8b";
  c.weights_bytes = 2 * kParams;  // bf16
  // Every step reads all weights once: the decode floor of about 3.7 ms.
  c.step.fixed_seconds = c.weights_bytes / (kCopyBytesPerSecond * kBandwidthAchieved);
  c.step.seconds_per_token = 2 * kParams / (kBf16FlopsPerSecond * kFlopsAchieved);
  // 32 layers x 8 KV heads x 128 dims x (K, V) x 2 bytes.
  c.kv_bytes_per_token = 32.0 * 8 * 128 * 2 * 2;
  // Attention reads each context token's K and V once a step, at the decode
  // GEMVs' achieved bandwidth.
  c.seconds_per_context_token = c.kv_bytes_per_token / (kCopyBytesPerSecond * kBandwidthAchieved);
  c.device_bytes = 0.9 * 141e9;  // H200's 141 GB, 10% kept for activations and the runtime
  c.load_seconds = c.weights_bytes / 25e9;  // assumed: host page cache over PCIe Gen5 at 25 GB/s
  c.source = absl::StrFormat(
      "step fixed %.2f ms = 16.06 GB of bf16 weights / (4.3 TB/s measured x 0.8 assumed); "
      "per token %.1f us = 2 x 8.03 GFLOP / (790 TFLOP/s measured x 0.6 assumed); "
      "per context token %.1f ns = 128 KiB of KV read at the same bandwidth; "
      "KV 128 KiB/token; 126.9 GB per device; load %.2f s at an assumed 25 GB/s",
      c.step.fixed_seconds * 1e3, c.step.seconds_per_token * 1e6, c.seconds_per_context_token * 1e9,
      c.load_seconds);
  return c;
}

SimCost MeasuredCost(std::string name, runtime::StepCost step, double seconds_per_context_token,
                     double weights_bytes, double kv_bytes_per_token, double device_bytes,
                     double load_seconds) {
  SimCost c;
  c.name = std::move(name);
  c.step = step;
  c.seconds_per_context_token = seconds_per_context_token;
  c.weights_bytes = weights_bytes;
  c.kv_bytes_per_token = kv_bytes_per_token;
  c.device_bytes = device_bytes;
  c.load_seconds = load_seconds;
  c.source = absl::StrFormat(
      "step line fitted from the engine on this machine: %.2f ms + %.1f us/token"
      " + %.1f ns/context token (decode steps at two context lengths)",
      step.fixed_seconds * 1e3, step.seconds_per_token * 1e6, seconds_per_context_token * 1e9);
  return c;
}

double StepSeconds(const SimCost& cost, int64_t new_tokens, int64_t context_tokens) {
  return cost.step.fixed_seconds + cost.step.seconds_per_token * static_cast<double>(new_tokens) +
         cost.seconds_per_context_token * static_cast<double>(context_tokens);
}

}  // namespace cohost::sim
