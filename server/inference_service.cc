// cohost.v1.Inference: thin mapping between the API and the Router.

#include "server/inference_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"

namespace cohost::server {
namespace {

void FillModelInfo(const scheduler::ModelSummary& m, v1::ModelInfo* out) {
  out->set_name(m.name);
  out->set_path(m.path);
  out->set_architecture(m.architecture);
  out->set_context_length(static_cast<uint32_t>(m.context_length));
  out->set_vocab_size(static_cast<uint32_t>(m.vocab_size));
  out->set_serving(m.serving);
  out->set_kv_cache_tokens(static_cast<uint64_t>(m.kv_cache_tokens));
}

}  // namespace

InferenceService::InferenceService(StreamDeps deps, std::function<void()> on_models_changed)
    : deps_(deps), on_models_changed_(std::move(on_models_changed)) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new GenerateReactor(context, *request, deps_);  // deletes itself in OnDone
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  for (const scheduler::ModelSummary& m : deps_.router->ListModels()) {
    FillModelInfo(m, response->add_models());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::LoadModel(grpc::CallbackServerContext* context,
                                                      const v1::LoadModelRequest* request,
                                                      v1::LoadModelResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status;
  if (deps_.router->draining()) {
    status = absl::UnavailableError("the server is shutting down");
  } else if (request->path().empty()) {
    status = absl::InvalidArgumentError("path is empty");
  } else {
    status = deps_.router->LoadModel(request->name(), request->path());
  }
  if (status.ok()) {
    if (on_models_changed_) on_models_changed_();
    for (const scheduler::ModelSummary& m : deps_.router->ListModels()) {
      if (m.name == request->name()) FillModelInfo(m, response->mutable_model());
    }
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::UnloadModel(grpc::CallbackServerContext* context,
                                                        const v1::UnloadModelRequest* request,
                                                        v1::UnloadModelResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = deps_.router->UnloadModel(request->name());
  if (status.ok() && on_models_changed_) on_models_changed_();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace cohost::server
