// Hugging Face directory -> ModelFile: config.json plus model.safetensors or
// the shards listed by model.safetensors.index.json. The tokenizer of a
// directory (tokenizer.json) is read by the tokenizer library's
// tokenizer_json loader, which depends on this one; ModelFile::tokenizer is
// left default here.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "runtime/loader/loader_json.h"
#include "runtime/loader/model_loading.h"
#include "runtime/loader/safetensors_reader.h"

namespace cohost::runtime {
namespace {

constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint64_t kMaxIndexBytes = 100ull << 20;

struct Source {
  std::shared_ptr<const SafetensorsFile> file;  // kept alive by tensors left in its mapping
  const SafetensorsTensor* tensor;
};

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A shard name from an index must stay inside the directory.
bool SafeShardName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." && !absl::StrContains(name, '/') &&
         !absl::StrContains(name, '\0');
}

// A decimal index as the checkpoints write one: digits, no leading zero.
bool CanonicalIndex(absl::string_view index, int32_t* out) {
  return !index.empty() && !(index.size() > 1 && index[0] == '0') &&
         std::all_of(index.begin(), index.end(), absl::ascii_isdigit) &&
         absl::SimpleAtoi(index, out) && *out >= 0;
}

// A layer's router and experts, Qwen3-MoE's (mlp.gate, mlp.experts.E.
// gate_proj / up_proj / down_proj) and Mixtral's (block_sparse_moe.gate,
// block_sparse_moe.experts.E.w1 / w3 / w2: gate, up, down); `rest` follows
// "model.layers.N.".
std::string HfExpertName(int32_t layer, absl::string_view rest) {
  static constexpr std::pair<absl::string_view, absl::string_view> kBlocks[] = {
      {"mlp.", "proj"}, {"block_sparse_moe.", "w"}};
  for (const auto& [block, style] : kBlocks) {
    absl::string_view r = rest;
    if (!absl::ConsumePrefix(&r, block)) continue;
    if (r == "gate.weight") return absl::StrCat("blk.", layer, ".ffn_gate_inp.weight");
    if (!absl::ConsumePrefix(&r, "experts.") || !absl::ConsumeSuffix(&r, ".weight")) return "";
    const size_t dot = r.find('.');
    int32_t expert;
    if (dot == absl::string_view::npos || !CanonicalIndex(r.substr(0, dot), &expert)) return "";
    static constexpr std::array<std::pair<absl::string_view, absl::string_view>, 6> kParts = {{
        {"gate_proj", "ffn_gate"},
        {"up_proj", "ffn_up"},
        {"down_proj", "ffn_down"},
        {"w1", "ffn_gate"},
        {"w3", "ffn_up"},
        {"w2", "ffn_down"},
    }};
    const absl::string_view part = r.substr(dot + 1);
    for (size_t i = style == "proj" ? 0 : 3, end = i + 3; i < end; ++i) {
      if (part == kParts[i].first) {
        return ExpertTensorName(layer, kParts[i].second, expert);
      }
    }
    return "";
  }
  return "";
}

}  // namespace

std::string HfToCanonicalName(absl::string_view n) {
  if (n == "model.embed_tokens.weight") return "token_embd.weight";
  if (n == "model.norm.weight") return "output_norm.weight";
  if (n == "lm_head.weight") return "output.weight";
  if (!absl::ConsumePrefix(&n, "model.layers.")) return "";
  const size_t dot = n.find('.');
  if (dot == absl::string_view::npos || dot == 0) return "";
  absl::string_view index = n.substr(0, dot), rest = n.substr(dot + 1);
  int32_t layer;
  if (!CanonicalIndex(index, &layer)) return "";
  static constexpr std::pair<absl::string_view, absl::string_view> kLayer[] = {
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
  };
  for (const auto& [hf, ours] : kLayer) {
    if (rest == hf) return absl::StrCat("blk.", layer, ".", ours);
  }
  return HfExpertName(layer, rest);
}

absl::StatusOr<ModelFile> LoadHfModel(const std::string& dir, const LoadOptions& options) {
  ModelFile mf;
  mf.path = dir;
  const std::string config_path = absl::StrCat(dir, "/config.json");
  absl::StatusOr<std::string> config_text = ReadSmallFile(config_path, kMaxConfigBytes);
  if (absl::IsNotFound(config_text.status())) {
    // The directory exists: it is the wrong kind of thing, not a missing one.
    return absl::InvalidArgumentError(absl::StrCat(
        dir,
        " is a directory without config.json: not a Hugging Face checkpoint (or name a "
        ".gguf file)"));
  }
  if (!config_text.ok()) return config_text.status();
  absl::StatusOr<ModelConfig> config = ParseHfConfig(*config_text, config_path);
  if (!config.ok()) return config.status();
  mf.config = *std::move(config);
  const ModelConfig& c = mf.config;

  // Open the weight files and find every canonical tensor's source.
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  absl::flat_hash_map<std::string, Source> sources;
  // Every tensor's canonical name, or its own where it has none (checked
  // against what the model uses once all are known).
  std::vector<std::string> names;
  auto add_source = [&](const std::string& hf_name,
                        const std::shared_ptr<const SafetensorsFile>& file,
                        const SafetensorsTensor& t) {
    std::string canonical = HfToCanonicalName(hf_name);
    // Older checkpoints keep RoPE's frequencies, which the config gives too.
    if (canonical.empty() && absl::EndsWith(hf_name, ".rotary_emb.inv_freq")) return;
    names.push_back(canonical.empty() ? hf_name : canonical);
    if (!canonical.empty()) sources[canonical] = Source{file, &t};
  };
  const std::string index_path = absl::StrCat(dir, "/model.safetensors.index.json");
  if (FileExists(index_path)) {
    absl::StatusOr<std::string> text = ReadSmallFile(index_path, kMaxIndexBytes);
    if (!text.ok()) return text.status();
    absl::StatusOr<nlohmann::json> index = ParseJsonStrict(*text, index_path);
    if (!index.ok()) return index.status();
    auto map = index->is_object() ? index->find("weight_map") : index->end();
    if (map == index->end() || !map->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": no 'weight_map' object"));
    }
    absl::flat_hash_map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
    for (const auto& [name, shard] : map->items()) {
      if (!shard.is_string() || !SafeShardName(shard.get_ref<const std::string&>())) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map entry '", name,
                                                       "' is not a file name in the directory"));
      }
      const std::string& shard_name = shard.get_ref<const std::string&>();
      auto [it, inserted] = shards.try_emplace(shard_name, nullptr);
      if (inserted) {
        absl::StatusOr<SafetensorsFile> f =
            SafetensorsFile::Open(absl::StrCat(dir, "/", shard_name));
        if (!f.ok()) return f.status();
        files.push_back(std::make_shared<const SafetensorsFile>(*std::move(f)));
        it->second = files.back();
      }
      const SafetensorsTensor* t = it->second->FindTensor(name);
      if (t == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: the index places tensor '%s' in this file, which lacks it",
                            it->second->path(), name));
      }
      add_source(name, it->second, *t);
    }
  } else {
    absl::StatusOr<SafetensorsFile> f =
        SafetensorsFile::Open(absl::StrCat(dir, "/model.safetensors"));
    if (!f.ok()) {
      if (f.status().code() != absl::StatusCode::kNotFound) return f.status();
      return absl::NotFoundError(
          absl::StrCat(dir, ": has neither model.safetensors nor model.safetensors.index.json"));
    }
    files.push_back(std::make_shared<const SafetensorsFile>(*std::move(f)));
    for (const SafetensorsTensor& t : files.back()->tensors()) add_source(t.name, files.back(), t);
  }

  RETURN_IF_ERROR(CheckNoUnusedTensors(c, names, dir));
  std::vector<TensorJob> jobs;
  for (auto& [name, shape] : ExpectedTensors(c)) {
    auto it = sources.find(name);
    if (it == sources.end()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": missing tensor '", name, "'"));
    }
    const Source src = it->second;
    if (src.tensor->shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tensor '%s' (%s) has shape [%s]; the config needs [%s]",
                          src.file->path(), src.tensor->name, name,
                          absl::StrJoin(src.tensor->shape, ", "), absl::StrJoin(shape, ", ")));
    }
    const GgmlType type = SafetensorsFile::StoredType(*src.tensor);
    mf.config.stored_types[name] = type;
    TensorJob job;
    job.name = name;
    job.shape = shape;
    job.source_bytes = src.tensor->end - src.tensor->begin;
    if (options.keep_quantized && shape.size() == 2 && KeepsRowsAsStored(type, shape[1])) {
      // A 16-bit matrix stays 16-bit, as a GGUF's F16 / BF16 ones (a
      // checkpoint's rows are in rotate-half order already).
      job.raw_type = type;
      const absl::Span<const uint8_t> stored = src.file->TensorData(*src.tensor);
      if (options.map_weights &&
          reinterpret_cast<uintptr_t>(stored.data()) % kMappedAlignment == 0) {
        job.mapped = stored;
        job.mapping = src.file;
        job.check_mapped = [] { return absl::OkStatus(); };  // 16-bit values have no scales
      } else {
        job.raw_bytes = stored.size();
        job.copy_raw = [src](absl::Span<uint8_t> dst) {
          return CopyDroppingPages(src.file->TensorData(*src.tensor), dst, /*unit=*/2);
        };
      }
    } else {
      job.convert = [src](absl::Span<float> dst) {
        absl::Status s = src.file->ToF32(*src.tensor, dst);
        src.file->DropTensorPages(*src.tensor);
        return s;
      };
    }
    jobs.push_back(std::move(job));
  }
  if (options.load_tensors) {
    RETURN_IF_ERROR(RunTensorJobs(std::move(jobs), options, &mf.tensors));
  }
  return mf;
}

}  // namespace cohost::runtime
