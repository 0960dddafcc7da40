// Parsing of the device and engine flags.

#include "tools/serving/engine_flags.h"

#include <algorithm>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "scheduler/device_name.h"

namespace cohost::tools {

std::vector<FlagSpec> EngineFlagSpecs() {
  return {
      {"device", "cpu|cuda|cuda:N[,cuda:M...]",
       "where to run (default cpu); cuda: cohost run uses device 0, cohost serve every visible "
       "GPU"},
      {"threads", "N",
       "CPU threads (default: the CPUs this process may use: its affinity mask, capped by a "
       "cgroup CPU quota)"},
      {"cpu-pin", "",
       "bind each of the CPU pool's worker threads to one CPU of the affinity mask (off by "
       "default: a bound worker cannot move off a core another process takes)"},
      {"kv-cache-mb", "MB",
       "KV cache memory: cohost run's pool, or for cohost serve each device's pool, shared by "
       "its models (default 256 on the CPU; on a GPU, what its memory budget leaves once the "
       "models' weights and activations are in)"},
      {"max-batch-tokens", "N", "tokens per engine step, all sequences (default 512)"},
      {"max-prefill-chunk", "N", "prompt tokens of one sequence per step (default: the above)"},
      {"max-seqs", "N", "sequences per engine step, at most --max-batch-tokens (default 64)"},
      {"no-chunked-prefill", "", "admit a prompt only whole, in one step"},
      {"no-prefix-cache", "", "disable automatic prefix caching"},
      {"cuda-graphs", "",
       "run decode steps as captured CUDA graphs, one launch a step instead of one per op "
       "(off by default until measured on a GPU; no effect on the CPU)"},
      {"cpu-precision", "MODE",
       "CPU weights: int8 (default: a GGUF's quantized matrices stay in their blocks, "
       "activations in int8, as llama.cpp computes; about the file's size in memory) or "
       "reference (every weight dequantized to fp32, fp32 activations: the exact path)"},
      {"keep-quantized", "", "the default, --cpu-precision int8 (accepted for older scripts)"},
      {"no-mmap", "",
       "copy the CPU's weights out of the model file instead of reading them in place from its "
       "mapping (which shares their pages with every process serving the file): for file "
       "systems where mapped reads are slow, or a file that may be rewritten while served"},
      {"kv-dtype", "f32|f16|bf16",
       "what the CPU's KV cache stores (default f16 with --cpu-precision int8, as llama.cpp: "
       "half the memory of f32; f32 with reference); CUDA keeps bf16"},
  };
}

namespace {

absl::Status BadDevice(absl::string_view what, absl::string_view got) {
  return absl::InvalidArgumentError(absl::StrCat(
      "--device: ", what, " (expected cpu, cuda, or cuda:N[,cuda:M...]), got '", got, "'"));
}

}  // namespace

absl::StatusOr<kernels::DType> KvDTypeFromArgs(const ParsedArgs& args) {
  const std::string device = args.Get("device").value_or("cpu");
  const std::optional<std::string> name = args.Get("kv-dtype");
  if (device != "cpu") {
    if (name && *name != "bf16") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--kv-dtype: the CUDA backend keeps its KV cache in bf16, got '", *name, "'"));
    }
    return kernels::DType::kBF16;
  }
  if (!name) {
    absl::StatusOr<runtime::WeightsPolicy> weights = WeightsPolicyFromArgs(args);
    if (!weights.ok()) return weights.status();
    return weights->keep_quantized ? kernels::DType::kF16 : kernels::DType::kF32;
  }
  for (kernels::DType t : {kernels::DType::kF32, kernels::DType::kF16, kernels::DType::kBF16}) {
    if (*name == kernels::DTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--kv-dtype: expected f32, f16 or bf16, got '", *name, "'"));
}

absl::StatusOr<std::unique_ptr<kernels::Backend>> BackendFromArgs(const ParsedArgs& args) {
  const std::string device = args.Get("device").value_or("cpu");
  absl::StatusOr<std::optional<int64_t>> threads = args.GetInt("threads", 1, 1024);
  if (!threads.ok()) return threads.status();
  absl::StatusOr<kernels::DType> kv_dtype = KvDTypeFromArgs(args);
  if (!kv_dtype.ok()) return kv_dtype.status();
  if (device == "cpu") {
    return kernels::MakeCpuBackend(static_cast<int>(threads->value_or(0)), *kv_dtype,
                                   args.Has("cpu-pin"));
  }
  if (device == "cuda") return kernels::MakeCudaBackend(0);
  const std::optional<int32_t> index = scheduler::ParseCudaDevice(device);
  if (!index) return BadDevice("one device", device);
  return kernels::MakeCudaBackend(*index);
}

absl::StatusOr<std::vector<DeviceBackend>> BackendsFromArgs(const ParsedArgs& args) {
  const std::string device = args.Get("device").value_or("cpu");
  std::vector<DeviceBackend> out;
  if (device == "cpu") {
    absl::StatusOr<std::unique_ptr<kernels::Backend>> cpu = BackendFromArgs(args);
    if (!cpu.ok()) return cpu.status();
    out.push_back({"cpu", *std::move(cpu)});
    return out;
  }
  std::vector<int> indices;
  if (device == "cuda") {
    const int count = kernels::CudaDeviceCount();
    if (count == 0) return kernels::MakeCudaBackend(0).status();  // says why there is none
    for (int i = 0; i < std::min(count, scheduler::kMaxCudaDevice + 1); ++i) indices.push_back(i);
  } else {
    for (absl::string_view name : absl::StrSplit(device, ',')) {
      const std::optional<int32_t> index =
          scheduler::ParseCudaDevice(std::string_view(name.data(), name.size()));
      if (!index) return BadDevice("not a device name", name);
      if (std::find(indices.begin(), indices.end(), *index) != indices.end()) {
        return BadDevice("a device named twice", name);
      }
      indices.push_back(*index);
    }
  }
  if (absl::Status s = KvDTypeFromArgs(args).status(); !s.ok()) return s;
  for (int i : indices) {
    absl::StatusOr<std::unique_ptr<kernels::Backend>> cuda = kernels::MakeCudaBackend(i);
    if (!cuda.ok()) return cuda.status();
    out.push_back({absl::StrCat("cuda:", i), *std::move(cuda)});
  }
  return out;
}

absl::StatusOr<runtime::WeightsPolicy> WeightsPolicyFromArgs(const ParsedArgs& args) {
  const std::string mode = args.Get("cpu-precision").value_or("int8");
  if (mode != "int8" && mode != "reference") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu-precision: expected int8 or reference, got '", mode, "'"));
  }
  if (mode == "reference" && args.Has("keep-quantized")) {
    return absl::InvalidArgumentError(
        "--keep-quantized and --cpu-precision reference contradict each other");
  }
  return runtime::WeightsPolicy{.keep_quantized = mode == "int8", .map_file = !args.Has("no-mmap")};
}

absl::StatusOr<runtime::EngineConfig> EngineConfigFromArgs(const ParsedArgs& args) {
  runtime::EngineConfig c;
  absl::StatusOr<std::optional<int64_t>> mb = args.GetInt("kv-cache-mb", 1, int64_t{1} << 20);
  if (!mb.ok()) return mb.status();
  if (mb->has_value()) c.kv_cache_bytes = **mb << 20;
  c.decode_graphs = args.Has("cuda-graphs");
  absl::StatusOr<std::optional<int64_t>> tokens = args.GetInt("max-batch-tokens", 1, 1 << 20);
  if (!tokens.ok()) return tokens.status();
  c.step_scheduler.max_tokens_per_step = static_cast<int32_t>(tokens->value_or(512));
  absl::StatusOr<std::optional<int64_t>> chunk = args.GetInt("max-prefill-chunk", 1, 1 << 20);
  if (!chunk.ok()) return chunk.status();
  c.step_scheduler.max_prefill_chunk =
      static_cast<int32_t>(chunk->value_or(c.step_scheduler.max_tokens_per_step));
  absl::StatusOr<std::optional<int64_t>> seqs = args.GetInt("max-seqs", 1, 4096);
  if (!seqs.ok()) return seqs.status();
  // Every running sequence must be able to decode in each step: a number
  // asked for past that is refused, the default is cut to it.
  if (seqs->has_value() && **seqs > c.step_scheduler.max_tokens_per_step) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-seqs %d is more than --max-batch-tokens %d: every running sequence decodes a "
        "token in each step",
        **seqs, c.step_scheduler.max_tokens_per_step));
  }
  c.step_scheduler.max_num_seqs = static_cast<int32_t>(
      std::min<int64_t>(seqs->value_or(64), c.step_scheduler.max_tokens_per_step));
  c.step_scheduler.chunked_prefill = !args.Has("no-chunked-prefill");
  c.enable_prefix_caching = !args.Has("no-prefix-cache");
  return c;
}

}  // namespace cohost::tools
