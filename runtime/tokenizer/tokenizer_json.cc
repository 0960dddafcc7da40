#include "runtime/tokenizer/tokenizer_json.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/quote.h"
#include "runtime/loader/loader_json.h"
#include "runtime/tokenizer/sentencepiece_bpe.h"
#include "runtime/tokenizer/string_view_compat.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

using nlohmann::json;

// The Split regexes of HF tokenizer.json files, as written there.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::string StringOr(const json& j, const char* key, std::string fallback = "") {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return fallback;
}

// A node in an error: its type (a step's "type", or a Sequence's steps'),
// never the node itself, which a file may make megabytes.
std::string Describe(const json& j) {
  if (!j.is_object()) return absl::StrCat("a JSON ", j.type_name());
  std::string out = absl::StrCat("type ", Quote(StringOr(j, "type", "(none)")));
  for (const char* list : {"pretokenizers", "normalizers"}) {
    if (!j.contains(list) || !j[list].is_array()) continue;
    absl::StrAppend(&out, " of");
    size_t shown = 0;
    for (const json& step : j[list]) {
      if (++shown > 8) {
        absl::StrAppend(&out, " ...");
        break;
      }
      absl::StrAppend(&out, " ", Quote(StringOr(step, "type", "(none)")));
    }
  }
  return out;
}

bool BoolOr(const json& j, const char* key, bool fallback) {
  if (j.is_object() && j.contains(key) && j[key].is_boolean()) return j[key].get<bool>();
  return fallback;
}

// A pre-tokenizer / normalizer / decoder node as a flat list of steps.
std::vector<json> Steps(const json& node, const char* list_key) {
  if (!node.is_object()) return {};
  if (StringOr(node, "type") == "Sequence" && node.contains(list_key) &&
      node[list_key].is_array()) {
    return node[list_key].get<std::vector<json>>();
  }
  return {node};
}

bool HasStep(const json& node, const char* list_key, std::string_view type) {
  for (const json& step : Steps(node, list_key)) {
    if (StringOr(step, "type") == type) return true;
  }
  return false;
}

// Byte-level pre-tokenizer family from the shape of the pre_tokenizer node.
absl::StatusOr<std::string> ByteLevelFamily(const json& pre) {
  const std::vector<json> steps = Steps(pre, "pretokenizers");
  std::vector<std::string> types;
  types.reserve(steps.size());
  for (const json& s : steps) {
    types.push_back(StringOr(s, "type"));
    // Settings that change how text splits are refused, not approximated.
    if (types.back() == "ByteLevel" && BoolOr(s, "add_prefix_space", false)) {
      return absl::UnimplementedError(
          "unsupported byte-level pre-tokenizer: add_prefix_space is true");
    }
    if (types.back() == "Split" &&
        (StringOr(s, "behavior", "Isolated") != "Isolated" || BoolOr(s, "invert", false))) {
      return absl::UnimplementedError(absl::StrCat(
          "unsupported Split pre-tokenizer (only behavior Isolated, not inverted): ", Describe(s)));
    }
  }
  if (types == std::vector<std::string>{"ByteLevel"} && BoolOr(steps[0], "use_regex", true)) {
    return std::string("gpt2");
  }
  if (types == std::vector<std::string>{"Digits", "ByteLevel"} &&
      BoolOr(steps[0], "individual_digits", false) && BoolOr(steps[1], "use_regex", true)) {
    return std::string("smollm");
  }
  if (types == std::vector<std::string>{"Split", "ByteLevel"} &&
      !BoolOr(steps[1], "use_regex", true)) {
    const json& pattern = steps[0].value("pattern", json::object());
    const std::string regex = StringOr(pattern, "Regex");
    if (regex == kLlama3Regex) return std::string("llama3");
    if (regex == kQwen2Regex) return std::string("qwen2");
    return absl::UnimplementedError(
        absl::StrCat("unsupported pre-tokenizer regex: ", Quote(regex, 128)));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported byte-level pre-tokenizer: ", Describe(pre)));
}

int32_t FindToken(const TokenizerSpec& spec, std::string_view text) {
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    if (spec.tokens[id] == text) return static_cast<int32_t>(id);
  }
  return -1;
}

// bos_token etc. are a string or an AddedToken object {"content": ...}.
std::string TokenText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  return StringOr(j, "content");
}

// Bounded (ParseJsonBounded): a deep nesting would make every copy of a
// value recurse past the stack.
absl::StatusOr<json> ParseJson(std::string_view text, std::string_view what) {
  absl::StatusOr<json> j = ParseJsonBounded(AsAbsl(text), AsAbsl(what));
  if (!j.ok()) return j.status();
  if (!j->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is not a JSON object"));
  }
  return j;
}

// The largest tokenizer.json this reads (real ones: up to ~35 MB), and the
// largest of the small files beside it.
constexpr uint64_t kMaxTokenizerJsonBytes = uint64_t{256} << 20;
constexpr uint64_t kMaxConfigJsonBytes = uint64_t{16} << 20;

absl::StatusOr<TokenizerSpec> ParseTokenizerJsonImpl(const json& j) {
  const json& model = j.value("model", json::object());
  if (StringOr(model, "type", "BPE") != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json model type ", StringOr(model, "type"), " is not BPE"));
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("tokenizer.json has no model.vocab object");
  }
  TokenizerSpec spec;
  // id -> token, with added tokens (which may lie beyond the BPE vocab).
  std::vector<std::pair<int64_t, std::string>> entries;
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) return absl::InvalidArgumentError("vocab id is not an integer");
    entries.emplace_back(id.get<int64_t>(), token);
  }
  struct Added {
    int64_t id;
    std::string content;
    bool special;
  };
  std::vector<Added> added;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) {
        return absl::InvalidArgumentError("added_tokens entry without an integer id");
      }
      added.push_back(
          {a["id"].get<int64_t>(), StringOr(a, "content"), BoolOr(a, "special", false)});
      entries.emplace_back(added.back().id, added.back().content);
    }
  }
  int64_t max_id = -1;
  for (const auto& [id, token] : entries) {
    if (id < 0 || id >= (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " out of range"));
    }
    max_id = std::max(max_id, id);
  }
  // Ids index a table of tokens: a few entries with far-apart ids would make
  // a 50-byte file cost gigabytes. Real vocabularies are dense, or nearly.
  const auto most = 2 * static_cast<int64_t>(entries.size()) + 65536;
  if (max_id >= most) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", max_id, " in a vocabulary of ", entries.size(),
                     " tokens: ids must be nearly dense (below ", most, ")"));
  }
  spec.tokens.assign(max_id + 1, "");
  spec.token_types.assign(max_id + 1, TokenType::kUnused);
  for (const auto& [id, token] : entries) {
    spec.tokens[id] = token;
    spec.token_types[id] = TokenType::kNormal;
  }
  for (const Added& a : added) {
    spec.token_types[a.id] = a.special ? TokenType::kControl : TokenType::kUserDefined;
  }

  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        spec.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec.merges.push_back(absl::StrCat(m[0].get<std::string>(), " ", m[1].get<std::string>()));
      } else {
        return absl::InvalidArgumentError("tokenizer.json merge is neither \"a b\" nor [a, b]");
      }
    }
  }
  const json pre = j.value("pre_tokenizer", json());
  const json normalizer = j.value("normalizer", json());
  const json decoder = j.value("decoder", json());
  const bool byte_level =
      HasStep(pre, "pretokenizers", "ByteLevel") || HasStep(decoder, "decoders", "ByteLevel");
  if (byte_level) {
    spec.kind = TokenizerKind::kByteLevelBpe;
    auto family = ByteLevelFamily(pre);
    if (!family.ok()) return family.status();
    spec.pre_tokenizer = *family;
    if (!normalizer.is_null() && StringOr(normalizer, "type") != "NFC") {
      return absl::UnimplementedError(
          absl::StrCat("unsupported normalizer for byte-level BPE: ", Describe(normalizer)));
    }
    spec.normalize_nfc = !normalizer.is_null();
  } else if (BoolOr(model, "byte_fallback", false) ||
             HasStep(decoder, "decoders", "ByteFallback")) {
    spec.kind = TokenizerKind::kSentencePiece;
    spec.pre_tokenizer.clear();
    bool prepend = false, prepend_after_special = false;
    for (const json& step : Steps(normalizer, "normalizers")) {
      const std::string type = StringOr(step, "type");
      // A normalizer runs on each run of text between added tokens.
      if (type == "Prepend") prepend = prepend_after_special = true;
      // The SentencePiece conversion's two steps (a prefix, spaces as U+2581,
      // which the encoder does itself); others would change the text.
      if (type != "Prepend" && type != "Replace") {
        return absl::UnimplementedError(
            absl::StrCat("unsupported normalizer for SentencePiece BPE: ", Describe(step)));
      }
    }
    for (const json& step : Steps(pre, "pretokenizers")) {
      if (StringOr(step, "type") == "Metaspace") {
        const std::string scheme = StringOr(step, "prepend_scheme", "always");
        const bool adds = BoolOr(step, "add_prefix_space", scheme != "never");
        prepend |= adds;
        prepend_after_special |= adds && scheme != "first";
      }
    }
    spec.add_space_prefix = prepend;
    spec.space_prefix_after_special = prepend_after_special;
    spec.add_bos = true;  // the SentencePiece convention; tokenizer_config may override
    for (size_t id = 0; id < spec.tokens.size(); ++id) {
      uint8_t byte = 0;
      if (spec.token_types[id] == TokenType::kNormal && ParseBytePiece(spec.tokens[id], &byte)) {
        spec.token_types[id] = TokenType::kByte;
      }
    }
  } else {
    return absl::UnimplementedError(
        "tokenizer.json is neither byte-level BPE nor SentencePiece BPE with byte_fallback");
  }
  if (const std::string unk = StringOr(model, "unk_token"); !unk.empty()) {
    spec.unk_id = FindToken(spec, unk);
    if (spec.unk_id >= 0 && spec.kind == TokenizerKind::kSentencePiece) {
      spec.token_types[spec.unk_id] = TokenType::kUnknown;
    }
  }
  // BOS from the post-processor ("single": [SpecialToken, Sequence, ...]).
  const json post = j.value("post_processor", json());
  for (const json& step : Steps(post, "processors")) {
    if (StringOr(step, "type") != "TemplateProcessing" || !step.contains("single") ||
        !step["single"].is_array() || step["single"].empty()) {
      continue;
    }
    const json& first = step["single"][0];
    if (first.is_object() && first.contains("SpecialToken")) {
      spec.bos_id = FindToken(spec, StringOr(first["SpecialToken"], "id"));
      spec.add_bos = spec.bos_id >= 0;
    }
  }
  if (spec.kind == TokenizerKind::kSentencePiece) {
    if (spec.bos_id < 0) spec.bos_id = FindToken(spec, "<s>");
    if (spec.eos_id < 0) spec.eos_id = FindToken(spec, "</s>");
    spec.add_bos = spec.add_bos && spec.bos_id >= 0;
  }
  return spec;
}

// tokenizer.json's added tokens, onto the tokenizer.model's pieces: HF's fast
// tokenizer uses them, and a model fine-tuned with new turn markers (ChatML's
// <|im_start|>, <|im_end|> on a Llama 2 or Mistral base) has them only
// there. An added token at an id the model has replaces that piece's
// spelling and type; ones past its pieces extend it, any other id up to the
// last of them unused (a vocabulary entry the .model lacks is no piece the
// encoder may make: with a score it would win merges it never won).
void AdoptAddedTokens(const TokenizerSpec& json, TokenizerSpec* model) {
  const size_t pieces = model->tokens.size();
  const bool scored = !model->scores.empty();
  const float lowest =
      scored ? *std::min_element(model->scores.begin(), model->scores.end()) : 0.0F;
  model->token_types.resize(pieces, TokenType::kNormal);
  const auto added = [&](size_t id) {
    const TokenType type = id < json.token_types.size() ? json.token_types[id] : TokenType::kNormal;
    return type == TokenType::kControl || type == TokenType::kUserDefined;
  };
  size_t end = pieces;  // one past the last added token past the pieces
  for (size_t id = pieces; id < json.tokens.size(); ++id) {
    if (added(id)) end = id + 1;
  }
  for (size_t id = 0; id < end; ++id) {
    const bool is_added = id < json.tokens.size() && added(id);
    if (id < pieces) {
      if (!is_added) continue;
      model->tokens[id] = json.tokens[id];
      model->token_types[id] = json.token_types[id];
      continue;
    }
    model->tokens.push_back(is_added ? json.tokens[id] : std::string());
    model->token_types.push_back(is_added ? json.token_types[id] : TokenType::kUnused);
    if (scored) model->scores.push_back(is_added ? 0.0F : lowest);
  }
}

}  // namespace

absl::StatusOr<TokenizerSpec> ParseTokenizerJson(std::string_view json_text) {
  auto j = ParseJson(json_text, "tokenizer.json");
  if (!j.ok()) return j.status();
  try {
    return ParseTokenizerJsonImpl(*j);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer.json: ", e.what()));
  }
}

absl::Status ApplyTokenizerConfig(std::string_view json_text, TokenizerSpec* spec) {
  auto parsed = ParseJson(json_text, "tokenizer_config.json");
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  try {
    if (j.contains("chat_template")) {
      const json& ct = j["chat_template"];
      if (ct.is_string()) {
        spec->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // named templates: take "default", else the first
        for (const json& named : ct) {
          if (spec->chat_template.empty() || StringOr(named, "name") == "default") {
            spec->chat_template = StringOr(named, "template");
          }
        }
      }
    }
    spec->add_bos = BoolOr(j, "add_bos_token", spec->add_bos);
    spec->add_eos = BoolOr(j, "add_eos_token", spec->add_eos);
    for (auto [key, id] : {std::pair<const char*, int32_t*>{"bos_token", &spec->bos_id},
                           {"eos_token", &spec->eos_id},
                           {"unk_token", &spec->unk_id},
                           {"pad_token", &spec->pad_id}}) {
      if (!j.contains(key)) continue;
      const std::string text = TokenText(j[key]);
      if (text.empty()) continue;
      const int32_t found = FindToken(*spec, text);
      if (found < 0) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json ", key, " \"", text,
                                                       "\" is not in the vocabulary"));
      }
      *id = found;
    }
    if (spec->add_bos && spec->bos_id < 0) {
      return absl::InvalidArgumentError("tokenizer_config.json adds BOS but names no bos_token");
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer_config.json: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status ApplyGenerationConfig(std::string_view json_text, TokenizerSpec* spec) {
  auto parsed = ParseJson(json_text, "generation_config.json");
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  if (!j.contains("eos_token_id")) return absl::OkStatus();
  std::vector<json> ids = j["eos_token_id"].is_array() ? j["eos_token_id"].get<std::vector<json>>()
                                                       : std::vector<json>{j["eos_token_id"]};
  for (const json& id : ids) {
    if (!id.is_number_integer()) continue;
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v >= static_cast<int64_t>(spec->tokens.size()) || v == spec->eos_id) continue;
    spec->extra_eos_ids.push_back(static_cast<int32_t>(v));
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenizerSpec> LoadTokenizerSpecFromDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  std::error_code ec;
  const bool has_json = fs::is_regular_file(root / "tokenizer.json", ec);
  const bool has_model = fs::is_regular_file(root / "tokenizer.model", ec);
  if (!has_json && !has_model) {
    return absl::NotFoundError(
        absl::StrCat(dir, " holds neither tokenizer.json nor tokenizer.model"));
  }
  absl::StatusOr<TokenizerSpec> spec = absl::NotFoundError("no tokenizer");
  if (has_json) {
    auto text = ReadSmallFile((root / "tokenizer.json").string(), kMaxTokenizerJsonBytes);
    if (!text.ok()) return text.status();
    spec = ParseTokenizerJson(*text);
    if (!spec.ok()) {
      spec = absl::Status(spec.status().code(), absl::StrCat((root / "tokenizer.json").string(),
                                                             ": ", spec.status().message()));
    }
  }
  // SentencePiece models: the original tokenizer.model (scores) is what the
  // HF conversion approximates, so it wins when both are there.
  if (has_model && (!spec.ok() || spec->kind == TokenizerKind::kSentencePiece)) {
    auto from_model = ReadSentencePieceModel((root / "tokenizer.model").string());
    // Where tokenizer.json says where the space prefix goes, transformers
    // follows it (its fast tokenizer), not the model's legacy default.
    if (from_model.ok() && spec.ok()) {
      from_model->space_prefix_after_special = spec->space_prefix_after_special;
      AdoptAddedTokens(*spec, &*from_model);
    }
    if (from_model.ok() || !has_json) spec = std::move(from_model);
  }
  if (!spec.ok()) return spec.status();
  for (const auto& [name, apply] :
       {std::pair<const char*, absl::Status (*)(std::string_view, TokenizerSpec*)>{
            "tokenizer_config.json", &ApplyTokenizerConfig},
        {"generation_config.json", &ApplyGenerationConfig}}) {
    const fs::path path = root / name;
    if (!fs::is_regular_file(path, ec)) continue;
    auto text = ReadSmallFile(path.string(), kMaxConfigJsonBytes);
    if (!text.ok()) return text.status();
    if (absl::Status s = apply(*text, &*spec); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path.string(), ": ", s.message()));
    }
  }
  return spec;
}

}  // namespace cohost::runtime
