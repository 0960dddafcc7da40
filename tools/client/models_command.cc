// `cohost models`: the models a server knows, as a table or JSON.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "tools/client/client_commands.h"
#include "tools/client/client_common.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> ModelsFlagSpecs() {
  std::vector<FlagSpec> specs = {
      {"server", "ADDR", "the server, HOST:PORT (required)"},
      {"timeout-ms", "N", "the call's deadline (default 10000)"},
      {"json", "", "print a JSON array instead of a table"},
      {"help", "", "show this help"},
  };
  for (FlagSpec& s : TlsFlagSpecs()) specs.push_back(std::move(s));
  return specs;
}

std::string StateName(v1::ModelState s) {
  switch (s) {
    case v1::MODEL_STATE_LOADING:
      return "loading";
    case v1::MODEL_STATE_READY:
      return "ready";
    case v1::MODEL_STATE_EVICTED:
      return "evicted";
    case v1::MODEL_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

// "12s ago", "5m ago", "3h ago", "2d ago"; "now" under a second.
std::string Ago(int64_t ms) {
  const int64_t s = std::max<int64_t>(ms, 0) / 1000;
  if (s < 1) return "now";
  if (s < 120) return absl::StrCat(s, "s ago");
  if (s < int64_t{2} * 3600) return absl::StrCat(s / 60, "m ago");
  if (s < int64_t{2} * 86400) return absl::StrCat(s / 3600, "h ago");
  return absl::StrCat(s / 86400, "d ago");
}

nlohmann::json ModelJson(const v1::ModelInfo& m) {
  return {{"name", m.name()},
          {"architecture", m.architecture()},
          {"context_length", m.context_length()},
          {"vocab_size", m.vocab_size()},
          {"experts", m.experts()},
          {"experts_used", m.experts_used()},
          {"serving", m.serving()},
          {"state", StateName(m.state())},
          {"state_reason", m.state_reason()},
          {"device", m.device()},
          {"placement", m.placement()},
          {"weights_bytes", m.weights_bytes()},
          {"predicted_weights_bytes", m.predicted_weights_bytes()},
          {"workspace_bytes", m.workspace_bytes()},
          {"offloaded_bytes", m.offloaded_bytes()},
          {"kv_bytes", m.kv_bytes()},
          {"last_used_unix_ms", m.last_used_unix_ms()},
          {"lazy", m.lazy()},
          {"path", m.path()},
          {"kv_cache_tokens", m.kv_cache_tokens()}};
}

}  // namespace

int ModelsCommand(int argc, char** argv) {
  const std::vector<FlagSpec> specs = ModelsFlagSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(specs, argc, argv);
  if (!args.ok() || args->Has("help") || !args->Has("server")) {
    if (!args.ok()) std::fprintf(stderr, "cohost models: %s\n", args.status().message().data());
    std::fprintf(stderr, "usage: cohost models --server ADDR [--json]\n\n%s",
                 FlagsHelp(specs).c_str());
    return args.ok() && args->Has("help") ? 0 : 2;
  }
  absl::StatusOr<std::optional<int64_t>> timeout_ms =
      args->GetInt("timeout-ms", 1, int64_t{1} << 40);
  if (!timeout_ms.ok()) {
    std::fprintf(stderr, "cohost models: %s\n", std::string(timeout_ms.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannelFromArgs(*args);
  if (!channel.ok()) {
    std::fprintf(stderr, "cohost models: %s\n", std::string(channel.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<v1::Inference::Stub> stub = v1::Inference::NewStub(*channel);
  grpc::ClientContext context;
  AddCallMetadata(&context);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(timeout_ms->value_or(10000)));
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) {
    std::fprintf(stderr, "cohost models: %s\n", FormatRpcError(status, context).c_str());
    return 1;
  }
  if (args->Has("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::ModelInfo& m : response.models()) out.push_back(ModelJson(m));
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return 0;
  }
  std::printf("%-20s %-8s %-16s %8s %9s %9s %-10s %-24s %s\n", "NAME", "STATE", "ARCH", "CONTEXT",
              "WEIGHTS", "KV", "LAST USED", "DEVICE", "WHY");
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (const v1::ModelInfo& m : response.models()) {
    std::string why = m.state_reason().empty() ? m.placement() : m.state_reason();
    if (m.offloaded_bytes() > 0) {
      why += absl::StrFormat(" (its %.1f MB of weights wait in host memory)",
                             static_cast<double>(m.offloaded_bytes()) / (1 << 20));
    }
    // A mixture of experts: "qwen3moe 8/128", the experts a token uses of a layer's.
    const std::string arch =
        m.experts() > 0 ? absl::StrCat(m.architecture(), " ", m.experts_used(), "/", m.experts())
                        : m.architecture();
    std::printf("%-20s %-8s %-16s %8u %7.1fMB %7.1fMB %-10s %-24s %s\n", m.name().c_str(),
                StateName(m.state()).c_str(), arch.c_str(), m.context_length(),
                static_cast<double>(m.weights_bytes()) / (1 << 20),
                static_cast<double>(m.kv_bytes()) / (1 << 20),
                Ago(now_ms - m.last_used_unix_ms()).c_str(), m.device().c_str(), why.c_str());
  }
  return 0;
}

}  // namespace cohost::tools
