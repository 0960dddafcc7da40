// cohost.v1.Inference over the callback API, every method registered raw so
// that an unparsable request is INVALID_ARGUMENT (server/raw_message.h):
// Generate streams through a GenerateReactor; model management calls go to
// the Router.
#pragma once

#include <functional>
#include <vector>

#include "cohost/v1/inference.grpc.pb.h"
#include "server/generate_reactor.h"

namespace cohost::server {

// Inference::CallbackService on serialized bytes.
using InferenceCallbackBase = v1::Inference::WithRawCallbackMethod_Generate<
    v1::Inference::WithRawCallbackMethod_ListModels<v1::Inference::WithRawCallbackMethod_LoadModel<
        v1::Inference::WithRawCallbackMethod_UnloadModel<v1::Inference::Service>>>>;

class InferenceService final : public InferenceCallbackBase {
 public:
  // on_models_changed runs after a successful LoadModel or UnloadModel (the
  // health watchdog re-reads the model list).
  // LoadModel resolves client paths under `model_root`; without one it only
  // (re)loads `configured` models by name.
  InferenceService(StreamDeps deps, std::string model_root,
                   std::vector<scheduler::ModelSpec> configured,
                   std::function<void()> on_models_changed);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  // Registers the model (its metadata read on the calling gRPC thread) and
  // answers at once with state LOADING; the weights load on the Router's
  // loader thread.
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

 private:
  // The calls, once authenticated and parsed.
  v1::ListModelsResponse ListModels(const auth::Principal& caller) const;
  absl::StatusOr<v1::LoadModelResponse> LoadModel(const v1::LoadModelRequest& request);

  StreamDeps deps_;
  const std::string model_root_;
  const std::vector<scheduler::ModelSpec> configured_;
  // The spec LoadModel loads for `request`, or PERMISSION_DENIED.
  absl::StatusOr<scheduler::ModelSpec> SpecToLoad(const v1::LoadModelRequest& request) const;
  std::function<void()> on_models_changed_;
};

}  // namespace cohost::server
