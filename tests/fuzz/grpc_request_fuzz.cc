// A gRPC GenerateRequest as the wire carries it (protobuf bytes), built into
// an engine request against the default model's tokenizer as the gRPC
// front door does (BuildGenerateRequest). An answer is OK or a client's
// error (never INTERNAL or UNKNOWN) that says nothing of the server's files.

#include "cohost/v1/inference.pb.h"
#include "server/request_builder.h"
#include "tests/fuzz/fuzz_model.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/request_status.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)cohost::fuzz::TheModel();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const cohost::fuzz::FuzzModel& model = cohost::fuzz::TheModel();
  cohost::server::ToolOutput tools;
  absl::StatusOr<cohost::runtime::GenerateRequest> built =
      cohost::server::BuildGenerateRequest(request, *model.tokenizer, model.limits, &tools);
  cohost::fuzz::CheckClientError(built.status(), model.path);
  return 0;
}
