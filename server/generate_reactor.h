// One Generate call: the server-streaming reactor that parses, validates and
// submits the request, then streams the engine's deltas with one write in
// flight, coalescing what piles up behind a slow reader (bounded, never
// dropped), and aborts the request when the client cancels or goes away.
//
// It reads and writes serialized bytes (the method is registered raw): a
// request that does not parse, e.g. a string field holding invalid UTF-8,
// then gets INVALID_ARGUMENT instead of gRPC's bare UNIMPLEMENTED.
#pragma once

#include <memory>

#include "cohost/v1/inference.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "scheduler/router.h"
#include "server/stream_deps.h"

namespace cohost::server {

// Writes serialized v1::GenerateResponse messages.
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Does all pre-stream work on the calling gRPC thread (parse, find the
  // model, validate, tokenize, admit); any failure finishes the call at once
  // with its status (RESOURCE_EXHAUSTED carries `grpc-retry-pushback-ms`).
  // `request` holds a serialized v1::GenerateRequest.
  GenerateReactor(grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
                  const StreamDeps& deps);
  ~GenerateReactor() override;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // State shared with the engine-side sink (generate_reactor.cc). The sink
  // outlives the reactor; OnDone detaches the reactor from it.
  struct Shared;

 private:
  absl::Status Start(const grpc::ByteBuffer& request_bytes);
  void FinishEarly(const absl::Status& status);
  void AbortRequest();

  grpc::CallbackServerContext* context_;
  StreamDeps deps_;
  // Weak: a call whose client stopped reading must not keep an unloaded
  // model's memory (the engine ends its request when the model goes).
  std::weak_ptr<scheduler::ServedModel> model_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace cohost::server
