// An OpenAI request body (POST /v1/chat/completions and /v1/completions),
// parsed and built into an engine request against the default model's
// tokenizer as the HTTP front door does (ParseCompletionRequest, then
// BuildGenerateRequest). Each input is tried as both endpoints. An answer
// is OK or a client's error (never INTERNAL or UNKNOWN) that says nothing
// of the server's files.

#include <string>
#include <string_view>

#include "server/http/openai_request.h"
#include "server/request_builder.h"
#include "tests/fuzz/fuzz_model.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/request_status.h"

namespace cohost::fuzz {
namespace {

void Run(std::string_view body, server::http::Endpoint endpoint) {
  absl::StatusOr<server::http::CompletionRequest> parsed =
      server::http::ParseCompletionRequest(body, endpoint);
  if (!parsed.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(parsed.status()), "%s", parsed.status().ToString().c_str());
    return;
  }
  const FuzzModel& model = TheModel();
  server::ToolOutput tools;
  absl::StatusOr<runtime::GenerateRequest> built =
      server::BuildGenerateRequest(parsed->request, *model.tokenizer, model.limits, &tools);
  CheckClientError(built.status(), model.path);
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)cohost::fuzz::TheModel();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  cohost::fuzz::Run(body, cohost::server::http::Endpoint::kChatCompletions);
  cohost::fuzz::Run(body, cohost::server::http::Endpoint::kCompletions);
  return 0;
}
