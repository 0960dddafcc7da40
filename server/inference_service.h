// cohost.v1.Inference over the callback API: Generate streams through a
// GenerateReactor (registered raw, so that it can answer unparsable requests
// with INVALID_ARGUMENT); model management calls go to the Router.
#pragma once

#include <functional>

#include "cohost/v1/inference.grpc.pb.h"
#include "server/generate_reactor.h"

namespace cohost::server {

// Inference::CallbackService with Generate on serialized bytes.
using InferenceCallbackBase = v1::Inference::WithRawCallbackMethod_Generate<
    v1::Inference::WithCallbackMethod_ListModels<v1::Inference::WithCallbackMethod_LoadModel<
        v1::Inference::WithCallbackMethod_UnloadModel<v1::Inference::Service>>>>;

class InferenceService final : public InferenceCallbackBase {
 public:
  // on_models_changed runs after a successful LoadModel or UnloadModel (the
  // health watchdog re-reads the model list).
  InferenceService(StreamDeps deps, std::function<void()> on_models_changed);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  // Loads on the calling gRPC thread (engines keep serving meanwhile).
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;

 private:
  StreamDeps deps_;
  std::function<void()> on_models_changed_;
};

}  // namespace cohost::server
