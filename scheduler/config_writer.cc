#include "scheduler/config_writer.h"

#include <yaml-cpp/yaml.h>

#include <limits>

namespace cohost::scheduler {
namespace {

// The fields of `limits` that differ from `plain`, what the reader starts
// the entry from (a listed tenant starts from tenant_defaults).
void EmitLimits(YAML::Emitter& out, const TenantLimits& limits, const TenantLimits& plain) {
  if (limits.weight != plain.weight) out << YAML::Key << "weight" << YAML::Value << limits.weight;
  if (limits.tokens_per_minute != plain.tokens_per_minute) {
    out << YAML::Key << "tokens_per_minute" << YAML::Value << limits.tokens_per_minute;
  }
  if (limits.max_streams != plain.max_streams) {
    out << YAML::Key << "max_streams" << YAML::Value << limits.max_streams;
  }
  if (limits.max_queued_prompt_tokens != plain.max_queued_prompt_tokens) {
    out << YAML::Key << "max_queued_prompt_tokens" << YAML::Value
        << limits.max_queued_prompt_tokens;
  }
  if (limits.max_priority != plain.max_priority) {
    out << YAML::Key << "max_priority" << YAML::Value << limits.max_priority;
  }
}

// The fields of `spec` that differ from a bare --model NAME=PATH's (no
// `defaults:` section is written), name and path always.
void EmitModel(YAML::Emitter& out, const ModelSpec& spec) {
  const ModelSpec plain;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << spec.name;
  out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << spec.path;
  if (spec.load != plain.load) {
    out << YAML::Key << "load" << YAML::Value
        << (spec.load == LoadPolicy::kLazy ? "lazy" : "startup");
  }
  if (spec.keep_alive != plain.keep_alive) {
    out << YAML::Key << "keep_alive_s" << YAML::Value;
    if (spec.keep_alive) {
      out << static_cast<int64_t>(spec.keep_alive->count());
    } else {
      out << "forever";
    }
  }
  // The parser stores whole MiB as bytes.
  if (spec.kv_floor_bytes != plain.kv_floor_bytes) {
    out << YAML::Key << "kv_floor_mb" << YAML::Value << (spec.kv_floor_bytes >> 20);
  }
  if (spec.kv_cap_bytes != plain.kv_cap_bytes) {
    out << YAML::Key << "kv_cap_mb" << YAML::Value << (spec.kv_cap_bytes >> 20);
  }
  if (spec.ttft_target != plain.ttft_target) {
    out << YAML::Key << "ttft_target_ms" << YAML::Value
        << static_cast<int64_t>(spec.ttft_target.count());
  }
  if (spec.tpot_target != plain.tpot_target) {
    out << YAML::Key << "tpot_target_ms" << YAML::Value
        << static_cast<int64_t>(spec.tpot_target.count());
  }
  if (spec.ttft_admit_margin_pct) {
    out << YAML::Key << "ttft_admit_margin_pct" << YAML::Value << *spec.ttft_admit_margin_pct;
  }
  if (spec.priority != plain.priority) {
    out << YAML::Key << "priority" << YAML::Value << spec.priority;
  }
  if (spec.device) out << YAML::Key << "device" << YAML::Value << *spec.device;
  if (!spec.chat_template.empty()) {
    out << YAML::Key << "chat_template" << YAML::Value << spec.chat_template;
  }
  out << YAML::EndMap;
}

}  // namespace

std::string FormatServeConfig(const ServeConfig& config) {
  YAML::Emitter out;
  // Weights read back to the same double.
  out.SetDoublePrecision(std::numeric_limits<double>::max_digits10);
  out << YAML::BeginMap;
  out << YAML::Key << "models" << YAML::Value << YAML::BeginSeq;
  for (const ModelSpec& spec : config.models) EmitModel(out, spec);
  out << YAML::EndSeq;
  if (config.tenants.defaults != TenantLimits{}) {
    out << YAML::Key << "tenant_defaults" << YAML::Value << YAML::BeginMap;
    EmitLimits(out, config.tenants.defaults, TenantLimits{});
    out << YAML::EndMap;
  }
  if (!config.tenants.named.empty()) {
    out << YAML::Key << "tenants" << YAML::Value << YAML::BeginSeq;
    for (const auto& [name, limits] : config.tenants.named) {
      out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << name;
      EmitLimits(out, limits, config.tenants.defaults);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace cohost::scheduler
