// `cohost models`: the models a server knows, as a table or JSON.

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "tools/client/client_commands.h"
#include "tools/client/client_common.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {
namespace {

std::vector<FlagSpec> ModelsFlagSpecs() {
  return {
      {"server", "ADDR", "the server, HOST:PORT (required)"},
      {"timeout-ms", "N", "the call's deadline (default 10000)"},
      {"json", "", "print a JSON array instead of a table"},
      {"help", "", "show this help"},
  };
}

nlohmann::json ModelJson(const v1::ModelInfo& m) {
  return {{"name", m.name()},
          {"architecture", m.architecture()},
          {"context_length", m.context_length()},
          {"vocab_size", m.vocab_size()},
          {"serving", m.serving()},
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
  std::unique_ptr<v1::Inference::Stub> stub =
      v1::Inference::NewStub(MakeChannel(*args->Get("server")));
  grpc::ClientContext context;
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
  std::printf("%-20s %-12s %8s %8s %-8s %s\n", "NAME", "ARCH", "CONTEXT", "VOCAB", "SERVING",
              "PATH");
  for (const v1::ModelInfo& m : response.models()) {
    std::printf("%-20s %-12s %8u %8u %-8s %s\n", m.name().c_str(), m.architecture().c_str(),
                m.context_length(), m.vocab_size(), m.serving() ? "yes" : "no", m.path().c_str());
  }
  return 0;
}

}  // namespace cohost::tools
