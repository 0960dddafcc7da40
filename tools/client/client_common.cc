// Shared client plumbing for `cohost generate`, `models` and `bench`.

#include "tools/client/client_common.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "tools/common/sampling_flags.h"

namespace cohost::tools {

namespace {

std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                       const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  // Long generations stream many small messages; nothing large comes back, but a
  // ListModels with many models should not trip the 4 MB default either.
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, creds, args);
}

absl::StatusOr<std::string> ReadFlagFile(const ParsedArgs& args, const std::string& flag) {
  const std::string path = *args.Get(flag);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok())
    return absl::NotFoundError(absl::StrCat("--", flag, " ", path, ": cannot be read"));
  return text;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  return Channel(address, grpc::InsecureChannelCredentials());
}

std::vector<FlagSpec> TlsFlagSpecs() {
  return {
      {"tls-ca", "FILE", "connect over TLS, trusting this PEM CA"},
      {"tls-cert", "FILE", "with --tls-ca: this PEM client certificate (mutual TLS)"},
      {"tls-key", "FILE", "the PEM private key of --tls-cert"},
  };
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromArgs(const ParsedArgs& args) {
  const std::string address = *args.Get("server");
  if (!args.Has("tls-ca")) {
    if (args.Has("tls-cert") || args.Has("tls-key")) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key need --tls-ca");
    }
    return MakeChannel(address);
  }
  if (args.Has("tls-cert") != args.Has("tls-key")) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key come together");
  }
  grpc::SslCredentialsOptions tls;
  absl::StatusOr<std::string> ca = ReadFlagFile(args, "tls-ca");
  if (!ca.ok()) return ca.status();
  tls.pem_root_certs = *std::move(ca);
  if (args.Has("tls-cert")) {
    absl::StatusOr<std::string> cert = ReadFlagFile(args, "tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFlagFile(args, "tls-key");
    if (!key.ok()) return key.status();
    tls.pem_cert_chain = *std::move(cert);
    tls.pem_private_key = *std::move(key);
  }
  return Channel(address, grpc::SslCredentials(tls));
}

void FillSampling(const runtime::SamplingParams& p, std::string_view json_schema,
                  v1::GenerateRequest* request) {
  v1::SamplingParams* s = request->mutable_sampling();
  s->set_temperature(p.temperature);
  s->set_top_k(p.top_k);
  s->set_top_p(p.top_p);
  s->set_min_p(p.min_p);
  s->set_repetition_penalty(p.repetition_penalty);
  s->set_presence_penalty(p.presence_penalty);
  s->set_frequency_penalty(p.frequency_penalty);
  if (p.seed) s->set_seed(*p.seed);
  s->clear_logit_bias();
  for (const runtime::LogitBias& b : p.logit_bias) (*s->mutable_logit_bias())[b.token] = b.bias;
  request->set_max_tokens(static_cast<uint32_t>(p.max_tokens));
  request->clear_stop();
  for (const std::string& stop : p.stop_strings) request->add_stop(stop);
  request->clear_stop_token_ids();
  for (int32_t id : p.stop_token_ids) request->add_stop_token_ids(id);
  request->set_ignore_eos(p.ignore_eos);
  request->clear_json_schema();
  switch (p.response_format) {
    case runtime::ResponseFormat::kText:
      request->set_response_format(v1::RESPONSE_FORMAT_TEXT);
      break;
    case runtime::ResponseFormat::kJsonObject:
      request->set_response_format(v1::RESPONSE_FORMAT_JSON_OBJECT);
      break;
    case runtime::ResponseFormat::kJsonSchema:
      request->set_response_format(v1::RESPONSE_FORMAT_JSON_SCHEMA);
      request->set_json_schema(std::string(json_schema));
      break;
  }
}

std::string_view FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_STOP_STRING:
      return "stop_string";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

std::string StatusCodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  if (i >= 0 && i < static_cast<int>(std::size(kNames))) return kNames[i];
  return absl::StrCat("CODE_", i);
}

std::optional<std::string> PushbackMs(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kPushbackTrailerKey);
  if (it == trailers.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

std::string FormatRpcError(const grpc::Status& status, const grpc::ClientContext& context) {
  std::string out = absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message());
  if (std::optional<std::string> ms = PushbackMs(context)) {
    absl::StrAppend(&out, " (retry after ", *ms, " ms)");
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> ParseTokenList(std::string_view list) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(absl::string_view(list.data(), list.size()), ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 0 || v > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: expected comma-separated token ids, got '", part, "'"));
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

void AddCallMetadata(grpc::ClientContext* context, const std::string& tenant) {
  if (const char* key = std::getenv("COHOST_API_KEY"); key != nullptr && *key != '\0') {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", key));
  }
  if (!tenant.empty()) context->AddMetadata(kTenantMetadataKey, tenant);
}

namespace {

void SetDeadline(grpc::ClientContext* context, std::optional<int64_t> timeout_ms) {
  if (timeout_ms) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(*timeout_ms));
  }
}

}  // namespace

StreamOutcome StreamGenerate(v1::Inference::StubInterface& stub, const v1::GenerateRequest& request,
                             const CallOptions& options,
                             const std::function<void(const std::string&)>& on_text) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  StreamOutcome out;
  grpc::ClientContext context;
  AddCallMetadata(&context, options.tenant);
  SetDeadline(&context, options.timeout_ms);
  const Clock::time_point t0 = Clock::now();
  std::unique_ptr<grpc::ClientReaderInterface<v1::GenerateResponse>> reader =
      stub.Generate(&context, request);
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
    ++out.messages;
    if (out.client_ttft_ms == 0 && message.token_ids_size() > 0) out.client_ttft_ms = ms_since(t0);
    if (!message.request_id().empty()) out.request_id = message.request_id();
    out.token_ids.insert(out.token_ids.end(), message.token_ids().begin(),
                         message.token_ids().end());
    if (!message.text().empty()) {
      out.text += message.text();
      if (on_text) on_text(message.text());
    }
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED || message.has_usage()) {
      out.last = message;
    }
  }
  out.status = reader->Finish();
  out.client_total_ms = ms_since(t0);
  out.pushback_ms = PushbackMs(context);
  if (!out.status.ok()) out.error = FormatRpcError(out.status, context);
  return out;
}

absl::StatusOr<v1::ModelInfo> FindModel(v1::Inference::StubInterface& stub, const std::string& name,
                                        int64_t timeout_ms) {
  grpc::ClientContext context;
  AddCallMetadata(&context);
  SetDeadline(&context, timeout_ms);
  v1::ListModelsResponse response;
  grpc::Status status = stub.ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("ListModels failed: ", FormatRpcError(status, context)));
  }
  std::vector<std::string> names;
  for (const v1::ModelInfo& m : response.models()) {
    if (m.name() == name) return m;
    names.push_back(m.name());
  }
  return absl::NotFoundError(
      absl::StrCat("the server has no model '", name,
                   "' (it has: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

}  // namespace cohost::tools
