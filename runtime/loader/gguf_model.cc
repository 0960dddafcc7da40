// GGUF -> ModelFile: the config from `<arch>.*` metadata, the tensors checked
// against it, dequantized (or, for linear layers with LoadOptions::keep_quantized,
// kept in their blocks), and (Llama) put back into rotate-half RoPE order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "runtime/loader/dequant.h"
#include "runtime/loader/gguf_reader.h"
#include "runtime/loader/model_loading.h"

namespace cohost::runtime {
namespace {

absl::Status MetaError(const GgufFile& f, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(f.path(), ": metadata '", key, "' ", what));
}

// A required or optional int32 metadata value.
absl::Status GetInt32(const GgufFile& f, const std::string& key, bool required, int32_t* out) {
  ASSIGN_OR_RETURN(auto v, f.GetInt(key));
  if (!v.has_value()) return required ? MetaError(f, key, "is missing") : absl::OkStatus();
  if (*v < 0 || *v > std::numeric_limits<int32_t>::max()) {
    return MetaError(f, key, absl::StrCat("= ", *v, " is out of range"));
  }
  *out = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

// The factors llama.cpp's converter stores in rope_freqs.weight for Llama-3
// scaling: each rotary frequency is divided by its factor.
std::vector<double> Llama3RopeFactors(const RopeScaling& r, double theta, int32_t head_dim) {
  std::vector<double> out;
  const double low_wavelen = r.original_max_position_embeddings / r.low_freq_factor;
  const double high_wavelen = r.original_max_position_embeddings / r.high_freq_factor;
  for (int32_t i = 0; i < head_dim / 2; ++i) {
    const double freq = 1.0 / std::pow(theta, 2.0 * i / head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_wavelen) {
      out.push_back(r.factor);
    } else {
      const double smooth = (r.original_max_position_embeddings / wavelen - r.low_freq_factor) /
                            (r.high_freq_factor - r.low_freq_factor);
      out.push_back(1.0 / ((1 - smooth) / r.factor + smooth));
    }
  }
  return out;
}

// GGUF files of Llama 3.1+ carry their RoPE scaling only as a rope_freqs.weight
// tensor. We recover the Llama-3 parameters: factor = the largest entry, the
// low/high frequency factors 1 and 4 and the original context 8192 (or the
// file's rope.scaling.original_context_length) that every Llama 3.x release
// uses, and accept them only if they reproduce the tensor exactly (to 1e-4).
absl::Status DeriveLlama3Scaling(const GgufFile& f, const GgufTensorInfo& info, ModelConfig* c) {
  const std::string prefix = absl::StrCat(f.path(), ": tensor 'rope_freqs.weight'");
  if (info.numel != c->head_dim / 2 || info.dims.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("%s has %d values; expected head_dim/2 = %d",
                                                      prefix, info.numel, c->head_dim / 2));
  }
  std::vector<float> v(static_cast<size_t>(info.numel));
  absl::Status s = DequantizeToF32(info.type, f.TensorData(info), info.numel, absl::MakeSpan(v));
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(prefix, ": ", s.message()));
  RopeScaling r;
  r.kind = RopeScaling::Kind::kLlama3;
  r.factor = 0.f;
  for (float x : v) r.factor = std::isfinite(x) ? std::max(r.factor, x) : r.factor;
  r.low_freq_factor = 1.f;
  r.high_freq_factor = 4.f;
  r.original_max_position_embeddings = 8192;
  if (absl::Status st =
          GetInt32(f, absl::StrCat(c->architecture, ".rope.scaling.original_context_length"), false,
                   &r.original_max_position_embeddings);
      !st.ok()) {
    return st;
  }
  // All ones: no scaling. (A largest entry of 1 alone is not: the others
  // would divide their frequencies.)
  if (std::all_of(v.begin(), v.end(), [](float x) { return x == 1.f; })) return absl::OkStatus();
  // The scaling read is checked as a config.json's is (a factor below 1, an
  // original context of 0) before its factors are computed from it.
  if (absl::Status bad = r.Validate(); !bad.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ": ", bad.message()));
  }
  std::vector<double> want = Llama3RopeFactors(r, c->rope_theta, c->head_dim);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!(std::abs(v[i] - want[i]) <= 1e-4 * want[i])) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: entry %d = %g does not match Llama-3 RoPE scaling (factor %g, low_freq_factor 1, "
          "high_freq_factor 4, original context %d predict %g); other rope_freqs are not supported",
          prefix, i, v[i], r.factor, r.original_max_position_embeddings, want[i]));
    }
  }
  c->rope_scaling = r;
  return absl::OkStatus();
}

// llama.cpp converts Mistral models with its Llama code path (which permutes Q/K
// rows); a file that says "mistral" came from that path too. Qwen2 and Qwen3
// are not permuted.
bool PermutedArchitecture(const std::string& arch) { return arch == "llama" || arch == "mistral"; }

// The experts of `<arch>.expert_count` metadata: Mixtral's (a Llama or
// Mistral file, each expert feed_forward_length wide) and Qwen3-MoE's (its
// own expert_feed_forward_length). Routing is llama.cpp's for both: softmax
// over every expert, then the picked probabilities divided by their sum.
absl::Status ReadExperts(const GgufFile& f, ModelConfig* c) {
  const std::string p = c->architecture + ".";
  RETURN_IF_ERROR(GetInt32(f, p + "expert_count", false, &c->num_experts));
  const bool moe_arch = c->architecture == "qwen3moe";
  if (c->num_experts == 0) {
    if (moe_arch) return MetaError(f, p + "expert_count", "is missing");
    return absl::OkStatus();
  }
  if (!moe_arch && !PermutedArchitecture(c->architecture)) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: experts in a %s model are not supported (Mixtral's and Qwen3-MoE's are)", f.path(),
        c->architecture));
  }
  RETURN_IF_ERROR(GetInt32(f, p + "expert_used_count", true, &c->num_experts_used));
  c->expert_intermediate_size = c->intermediate_size;
  RETURN_IF_ERROR(
      GetInt32(f, p + "expert_feed_forward_length", moe_arch, &c->expert_intermediate_size));
  // llama.cpp: 1 softmax, 2 sigmoid (DeepSeek-V3's); it routes these two
  // architectures by softmax whatever a file says, and so does cohost, but a
  // file that says otherwise was not made for them.
  int32_t gating = 1;
  RETURN_IF_ERROR(GetInt32(f, p + "expert_gating_func", false, &gating));
  if (gating != 1) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: expert_gating_func %d is not supported (1, softmax, is)", f.path(), gating));
  }
  c->norm_topk_prob = true;
  return absl::OkStatus();
}

// Where the values of the canonical tensor `name` lie in `f`: a tensor of
// that name, or (MergedExpertSource) its expert's part of a layer's merged
// one; null `info` where neither is there.
struct TensorSource {
  const GgufTensorInfo* info = nullptr;
  absl::Span<const uint8_t> data;
  int64_t numel = 0;
  std::vector<int64_t> shape;  // the file's tensor's own: [experts, ...] where merged
};

TensorSource FindSource(const GgufFile& f, const std::string& name, int32_t num_experts) {
  TensorSource src;
  src.info = f.FindTensor(name);
  if (src.info != nullptr) {
    src.data = f.TensorData(*src.info);
    src.numel = src.info->numel;
    src.shape = src.info->Shape();
    return src;
  }
  const std::optional<ExpertSlice> slice = MergedExpertSource(name);
  if (!slice || num_experts <= 0) return src;
  src.info = f.FindTensor(slice->merged);
  if (src.info == nullptr) return src;
  src.shape = src.info->Shape();
  // A tensor of another expert count is named by the shape check
  // (WantedShape), its data left empty: never read.
  if (src.shape.empty() || src.shape[0] != num_experts || slice->expert >= num_experts) return src;
  // Whole rows per expert (the reader checked the size against the shape).
  const absl::Span<const uint8_t> all = f.TensorData(*src.info);
  const size_t per_expert = all.size() / static_cast<size_t>(num_experts);
  src.data = all.subspan(static_cast<size_t>(slice->expert) * per_expert, per_expert);
  src.numel = src.info->numel / num_experts;
  return src;
}

// The shape a source must have for a canonical tensor of `shape`: that, or
// [num_experts, ...] for a merged one.
std::vector<int64_t> WantedShape(const TensorSource& src, const std::string& name,
                                 const std::vector<int64_t>& shape, int32_t num_experts) {
  if (src.info == nullptr || src.info->name == name) return shape;
  std::vector<int64_t> merged = {num_experts};
  merged.insert(merged.end(), shape.begin(), shape.end());
  return merged;
}

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& f) {
  ModelConfig c;
  ASSIGN_OR_RETURN(auto arch, f.GetString("general.architecture"));
  if (!arch.has_value()) return MetaError(f, "general.architecture", "is missing");
  if (!SupportedArchitecture(*arch)) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: architecture %s is not supported (supported: %s)", f.path(),
                        Quote(*arch), SupportedArchitectures()));
  }
  c.architecture = *arch;
  ASSIGN_OR_RETURN(auto name, f.GetString("general.name"));
  c.name = name.value_or("");
  const std::string p = *arch + ".";
  const struct {
    const char* key;
    bool required;
    int32_t* out;
  } ints[] = {
      {"block_count", true, &c.num_layers},
      {"context_length", true, &c.max_position_embeddings},
      {"embedding_length", true, &c.hidden_size},
      {"feed_forward_length", true, &c.intermediate_size},
      {"attention.head_count", true, &c.num_heads},
      {"attention.head_count_kv", false, &c.num_kv_heads},
      {"attention.key_length", false, &c.head_dim},
      {"vocab_size", false, &c.vocab_size},
  };
  for (const auto& e : ints) {
    RETURN_IF_ERROR(GetInt32(f, p + e.key, e.required, e.out));
  }
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (c.head_dim == 0 && c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  int32_t value_length = c.head_dim, rope_dims = c.head_dim;
  if (absl::Status s = GetInt32(f, p + "attention.value_length", false, &value_length); !s.ok())
    return s;
  if (absl::Status s = GetInt32(f, p + "rope.dimension_count", false, &rope_dims); !s.ok())
    return s;
  if (value_length != c.head_dim || rope_dims != c.head_dim) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: head_dim %d with value length %d and %d rotary dims is not supported (all must match)",
        f.path(), c.head_dim, value_length, rope_dims));
  }
  if (c.vocab_size == 0) {
    ASSIGN_OR_RETURN(auto tokens,
                     f.GetArray("tokenizer.ggml.tokens", GgufFile::ArrayKind::kString));
    if (tokens != nullptr && tokens->size() <= std::numeric_limits<int32_t>::max()) {
      c.vocab_size = static_cast<int32_t>(tokens->size());
    }
  }
  ASSIGN_OR_RETURN(auto eps, f.GetFloat(p + "attention.layer_norm_rms_epsilon"));
  if (!eps.has_value()) return MetaError(f, p + "attention.layer_norm_rms_epsilon", "is missing");
  c.rms_norm_eps = static_cast<float>(*eps);
  ASSIGN_OR_RETURN(auto theta, f.GetFloat(p + "rope.freq_base"));
  c.rope_theta = static_cast<float>(theta.value_or(10000.0));
  ASSIGN_OR_RETURN(auto scaling, f.GetString(p + "rope.scaling.type"));
  ASSIGN_OR_RETURN(auto factor, f.GetFloat(p + "rope.scaling.factor"));
  // The older key, which llama.cpp still reads: linear scaling by it.
  ASSIGN_OR_RETURN(auto scale_linear, f.GetFloat(p + "rope.scale_linear"));
  // A factor without a type is linear to llama.cpp; "none" ignores it.
  const std::string type = scaling.value_or("linear");
  if (type != "none" && (factor.value_or(1.0) != 1.0 || type != "linear")) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: rope scaling '%s' (factor %g) is not supported (Llama-3 scaling comes from "
        "rope_freqs.weight)",
        f.path(), type, factor.value_or(1.0)));
  }
  if (scale_linear.value_or(1.0) != 1.0) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: rope.scale_linear %g is not supported", f.path(), *scale_linear));
  }
  RETURN_IF_ERROR(ReadExperts(f, &c));
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  c.attention_bias = f.FindTensor("blk.0.attn_q.bias") != nullptr;
  // Biases llama.cpp adds where a file has them and cohost has no place for:
  // refused, not left out of the sums.
  for (const char* name : {"blk.0.attn_output.bias", "blk.0.ffn_gate.bias", "blk.0.ffn_up.bias",
                           "blk.0.ffn_down.bias"}) {
    if (f.FindTensor(name) != nullptr) {
      return absl::UnimplementedError(
          absl::StrFormat("%s: tensor '%s': this bias is not supported", f.path(), name));
    }
  }
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", s.message()));
  }
  if (const GgufTensorInfo* rf = f.FindTensor("rope_freqs.weight"); rf != nullptr) {
    RETURN_IF_ERROR(DeriveLlama3Scaling(f, *rf, &c));
  }
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    const TensorSource src = FindSource(f, name, c.num_experts);
    if (src.info != nullptr) c.stored_types[name] = src.info->type;
  }
  return c;
}

namespace {

// Whether a tensor may stay in its blocks: a matrix of a block type, or of
// F16 / BF16 with rows a multiple of 32 long (the embedding too: its rows are
// dequantized as they are looked up, and a tied lm_head multiplies its
// blocks). Whether the backend computes on those blocks is the model's choice
// (runtime/model/model.cc); it dequantizes the others.
bool KeepsBlocks(const std::vector<int64_t>& shape, const GgufTensorInfo& info) {
  return shape.size() == 2 && KeepsRowsAsStored(info.type, shape[1]);
}

// `s` with the file and the tensor named in front of its message.
absl::Status InTensor(const GgufFile& f, const GgufTensorInfo& info, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(),
                      absl::StrCat(f.path(), ": tensor '", info.name, "': ", s.message()));
}

}  // namespace

absl::StatusOr<ModelFile> LoadGgufModel(const std::string& path, const LoadOptions& options) {
  absl::StatusOr<GgufFile> file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  // Shared: a matrix left in the mapping (options.map_weights) keeps it alive.
  const auto shared = std::make_shared<const GgufFile>(*std::move(file));
  const GgufFile& f = *shared;
  ModelFile mf;
  mf.path = path;
  absl::StatusOr<ModelConfig> config = ConfigFromGguf(f);
  if (!config.ok()) return config.status();
  mf.config = *std::move(config);
  absl::StatusOr<TokenizerSpec> tokenizer = TokenizerFromGguf(f, mf.config.vocab_size);
  if (!tokenizer.ok()) return tokenizer.status();
  mf.tokenizer = *std::move(tokenizer);

  // A Llama GGUF's q and k rows as llama.cpp's converter permuted them stay
  // in that order where the weights stay in the file's mapping, and RoPE
  // turns adjacent pairs; elsewhere the permutation is undone.
  const bool permuted = PermutedArchitecture(mf.config.architecture);
  mf.config.rope_adjacent_pairs = permuted && options.map_weights;
  const bool undo_permutation = permuted && !options.map_weights;
  const ModelConfig& c = mf.config;
  std::vector<std::string> names;
  for (const GgufTensorInfo& info : f.tensors()) names.push_back(info.name);
  RETURN_IF_ERROR(CheckNoUnusedTensors(c, names, path));
  std::vector<TensorJob> jobs;
  for (auto& [name, shape] : ExpectedTensors(c)) {
    const TensorSource src = FindSource(f, name, c.num_experts);
    const GgufTensorInfo* info = src.info;
    if (info == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": missing tensor '", name, "'"));
    }
    if (const std::vector<int64_t> want = WantedShape(src, name, shape, c.num_experts);
        src.shape != want) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tensor '%s' has shape [%s]; the config needs [%s]", path, info->name,
                          absl::StrJoin(src.shape, ", "), absl::StrJoin(want, ", ")));
    }
    const absl::Span<const uint8_t> stored = src.data;
    const int64_t numel = src.numel;
    const GgmlTypeTraits* traits = FindGgmlType(static_cast<uint32_t>(info->type));
    if (!traits->dequantizable) {
      return absl::UnimplementedError(absl::StrFormat("%s: tensor '%s' has type %s (supported: %s)",
                                                      path, name, traits->name,
                                                      DequantizableTypeNames()));
    }
    int32_t permute_heads = 0;
    if (undo_permutation) {
      if (name.ends_with(".attn_q.weight") || name.ends_with(".attn_q.bias"))
        permute_heads = c.num_heads;
      if (name.ends_with(".attn_k.weight") || name.ends_with(".attn_k.bias"))
        permute_heads = c.num_kv_heads;
    }
    TensorJob job;
    job.name = name;
    job.shape = shape;
    job.source_bytes = stored.size();
    if (options.keep_quantized && KeepsBlocks(shape, *info)) {
      // Rows of blocks as they lie in the file (the reader checked the
      // tensor's byte size against its shape and type).
      job.raw_type = info->type;
      if (options.map_weights &&
          reinterpret_cast<uintptr_t>(stored.data()) % kMappedAlignment == 0) {
        // Needs no change: it stays where it lies, checked in place.
        job.mapped = stored;
        job.mapping = shared;
        job.check_mapped = [&f, info, stored] {
          return InTensor(f, *info, CheckBlockScales(info->type, stored, 0));
        };
        jobs.push_back(std::move(job));
        continue;
      }
      job.raw_bytes = stored.size();
      job.copy_raw = [&f, info, stored, rows = shape[0], permute_heads](absl::Span<uint8_t> dst) {
        // A piece at a time, each checked before it is copied (a 30 MB
        // embedding was resident twice, mapped and copied, at the load's
        // peak before pieces).
        const auto block =
            static_cast<size_t>(FindGgmlType(static_cast<uint32_t>(info->type))->block_bytes);
        RETURN_IF_ERROR(
            CopyDroppingPages(stored, dst, block, [&](absl::Span<const uint8_t> part, size_t at) {
              return InTensor(f, *info,
                              CheckBlockScales(info->type, part, static_cast<int64_t>(at / block)));
            }));
        if (permute_heads == 0) return absl::OkStatus();
        return InTensor(f, *info,
                        UndoLlamaRopePermutationRows(
                            dst, rows, static_cast<int64_t>(dst.size()) / rows, permute_heads));
      };
      jobs.push_back(std::move(job));
      continue;
    }
    job.convert = [&f, info, stored, numel, shape = job.shape,
                   permute_heads](absl::Span<float> dst) -> absl::Status {
      absl::Status s = DequantizeToF32(info->type, stored, numel, dst);
      f.DropPages(stored);
      if (s.ok() && permute_heads > 0) {
        s = UndoLlamaRopePermutation(dst, shape[0], shape.size() == 2 ? shape[1] : 1,
                                     permute_heads);
      }
      return InTensor(f, *info, s);
    };
    jobs.push_back(std::move(job));
  }
  if (options.load_tensors) {
    // The header and metadata (the vocabulary: megabytes) are parsed: their
    // pages need not stay resident beside the weights' (the mapping may
    // outlive the load).
    f.DropMetadataPages();
    RETURN_IF_ERROR(RunTensorJobs(std::move(jobs), options, &mf.tensors));
  }
  return mf;
}

}  // namespace cohost::runtime
