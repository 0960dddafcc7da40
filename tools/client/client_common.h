// What the client subcommands (`generate`, `models`, `bench`) share: the channel,
// mapping `cohost run`'s sampling flags onto the proto, status and finish-reason
// names, the pushback trailer, and one blocking streamed generation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cohost/v1/inference.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "runtime/sampling/sampling_params.h"
#include "tools/common/arg_parser.h"

namespace cohost::tools {

// The metadata key the server reads the tenant from, and the trailer with the
// suggested retry delay on RESOURCE_EXHAUSTED.
inline constexpr char kTenantMetadataKey[] = "x-cohost-tenant";
inline constexpr char kPushbackTrailerKey[] = "grpc-retry-pushback-ms";

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// A whole file (traces, prompt lists, PEM files); NOT_FOUND naming it when it
// cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// --tls-ca, --tls-cert, --tls-key: what every client subcommand takes beside --server.
std::vector<FlagSpec> TlsFlagSpecs();
// The channel to --server: plain text, or TLS when --tls-ca is given (with
// --tls-cert and --tls-key for mutual TLS). INVALID_ARGUMENT for a cert
// without its key; NOT_FOUND naming the flag for a file it cannot read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromArgs(const ParsedArgs& args);

// Adds the caller's identity to a call: `authorization: Bearer $COHOST_API_KEY`
// when that is set, and the tenant metadata when `tenant` is not empty.
void AddCallMetadata(grpc::ClientContext* context, const std::string& tenant = "");

// Sets every sampling field explicitly (so the server uses `cohost run`'s
// defaults, not its own), max_tokens, stop strings and ids, ignore_eos, and
// the response format: a JSON schema's as `json_schema`, its text (the server
// compiles it, as any client's).
void FillSampling(const runtime::SamplingParams& params, std::string_view json_schema,
                  v1::GenerateRequest* request);

// "stop", "length", "stop_string", "cancelled" (cohost run's names); "unspecified".
std::string_view FinishReasonName(v1::FinishReason reason);
// "OK", "INVALID_ARGUMENT", ...
std::string StatusCodeName(grpc::StatusCode code);

// The pushback trailer's value, if the server sent one.
std::optional<std::string> PushbackMs(const grpc::ClientContext& context);
// "CODE: message", with " (retry after N ms)" when a pushback trailer came.
std::string FormatRpcError(const grpc::Status& status, const grpc::ClientContext& context);

// "1,2,3" -> {1, 2, 3}; INVALID_ARGUMENT naming the bad element.
absl::StatusOr<std::vector<int32_t>> ParseTokenList(std::string_view list);

// One blocking streamed Generate. `on_text` sees each text delta as it arrives.
struct StreamOutcome {
  grpc::Status status;
  std::string error;  // FormatRpcError(status); empty when OK
  std::optional<std::string> pushback_ms;
  std::string request_id;
  std::string text;
  std::vector<int32_t> token_ids;
  size_t messages = 0;         // messages received
  double client_ttft_ms = 0;   // call start -> first message carrying tokens
  double client_total_ms = 0;  // call start -> final status
  v1::GenerateResponse last;   // the final message (finish_reason, usage, timings)
};
struct CallOptions {
  std::string tenant;                 // empty: no tenant metadata
  std::optional<int64_t> timeout_ms;  // the call's deadline
};
StreamOutcome StreamGenerate(v1::Inference::StubInterface& stub, const v1::GenerateRequest& request,
                             const CallOptions& options,
                             const std::function<void(const std::string&)>& on_text);

// ListModels, then the named model; NOT_FOUND listing what the server has.
absl::StatusOr<v1::ModelInfo> FindModel(v1::Inference::StubInterface& stub, const std::string& name,
                                        int64_t timeout_ms);

}  // namespace cohost::tools
