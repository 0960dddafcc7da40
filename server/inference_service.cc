// cohost.v1.Inference: thin mapping between the API and the Router.

#include "server/inference_service.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "scheduler/model_path.h"
#include "server/grpc_auth.h"
#include "server/grpc_status.h"
#include "server/raw_message.h"

namespace cohost::server {
namespace {

void FillModelInfo(const scheduler::ModelSummary& m, v1::ModelInfo* out) {
  out->set_name(m.name);
  out->set_path(m.path);
  out->set_architecture(m.architecture);
  out->set_context_length(static_cast<uint32_t>(m.context_length));
  out->set_vocab_size(static_cast<uint32_t>(m.vocab_size));
  out->set_experts(static_cast<uint32_t>(m.experts));
  out->set_experts_used(static_cast<uint32_t>(m.experts_used));
  out->set_serving(m.serving);
  out->set_kv_cache_tokens(static_cast<uint64_t>(m.kv_cache_tokens));
  switch (m.state) {
    case scheduler::ModelState::kLoading:
      out->set_state(v1::MODEL_STATE_LOADING);
      break;
    case scheduler::ModelState::kReady:
      out->set_state(v1::MODEL_STATE_READY);
      break;
    case scheduler::ModelState::kEvicted:
      out->set_state(v1::MODEL_STATE_EVICTED);
      break;
    case scheduler::ModelState::kFailed:
      out->set_state(v1::MODEL_STATE_FAILED);
      break;
  }
  out->set_state_reason(m.state_reason);
  out->set_device(m.device);
  out->set_placement(m.placement);
  out->set_weights_bytes(static_cast<uint64_t>(m.weights_bytes));
  out->set_predicted_weights_bytes(static_cast<uint64_t>(m.predicted_weights_bytes));
  out->set_workspace_bytes(static_cast<uint64_t>(m.workspace_bytes));
  out->set_offloaded_bytes(static_cast<uint64_t>(m.offloaded_bytes));
  out->set_kv_bytes(static_cast<uint64_t>(m.kv_bytes_held));
  // The steady clock's last use, on the wall clock.
  const auto ago = runtime::Clock::now() - m.last_used;
  out->set_last_used_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 (std::chrono::system_clock::now() - ago).time_since_epoch())
                                 .count());
  out->set_lazy(m.load == scheduler::LoadPolicy::kLazy);
}

}  // namespace

InferenceService::InferenceService(StreamDeps deps, std::string model_root,
                                   std::vector<scheduler::ModelSpec> configured,
                                   std::function<void()> on_models_changed)
    : deps_(deps),
      model_root_(std::move(model_root)),
      configured_(std::move(configured)),
      on_models_changed_(std::move(on_models_changed)) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new GenerateReactor(context, *request, deps_);  // deletes itself in OnDone
}

v1::ListModelsResponse InferenceService::ListModels(const auth::Principal& caller) const {
  v1::ListModelsResponse response;
  for (const scheduler::ModelSummary& m : deps_.router->ListModels()) {
    v1::ModelInfo* info = response.add_models();
    FillModelInfo(m, info);
    // Where the server keeps its files is for operators only.
    if (caller.role != auth::Role::kAdmin) {
      info->clear_path();
      info->set_state_reason(scheduler::WithoutModelPath(m.state_reason, m.path));
    }
  }
  return response;
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  absl::StatusOr<auth::Principal> caller =
      AuthenticateCall(*context, *deps_.keys, auth::Role::kUser);
  absl::Status status = caller.status();
  if (status.ok()) status = ParseMessage<v1::ListModelsRequest>(*request).status();
  return FinishUnary(context, status, status.ok() ? ListModels(*caller) : v1::ListModelsResponse(),
                     response);
}

absl::StatusOr<scheduler::ModelSpec> InferenceService::SpecToLoad(
    const v1::LoadModelRequest& request) const {
  // A configured model loads as configured (its device, KV floor and cap,
  // targets, keep-alive), root or not.
  for (const scheduler::ModelSpec& spec : configured_) {
    if (spec.name == request.name() && (request.path().empty() || request.path() == spec.path)) {
      return spec;
    }
  }
  // Without a root: the same refusal as for any path.
  absl::StatusOr<std::string> path = scheduler::ResolveClientModelPath(model_root_, request.path());
  if (!path.ok()) return path.status();
  scheduler::ModelSpec spec;
  spec.name = request.name();
  spec.path = *path;
  return spec;
}

absl::StatusOr<v1::LoadModelResponse> InferenceService::LoadModel(
    const v1::LoadModelRequest& request) {
  if (deps_.router->draining()) return absl::UnavailableError("the server is shutting down");
  ASSIGN_OR_RETURN(scheduler::ModelSpec spec, SpecToLoad(request));
  // Registers (reading the file's metadata) and queues the load; the
  // weights are read on the Router's loader thread, not this one.
  if (absl::Status s = deps_.router->AddModelAndLoadInBackground(spec); !s.ok()) {
    // The loader's errors name the file: not where the server keeps it.
    return absl::Status(s.code(), scheduler::WithoutRoot(model_root_, std::string(s.message())));
  }
  if (on_models_changed_) on_models_changed_();
  v1::LoadModelResponse response;
  for (const scheduler::ModelSummary& m : deps_.router->ListModels()) {
    if (m.name == request.name()) FillModelInfo(m, response.mutable_model());
  }
  return response;
}

grpc::ServerUnaryReactor* InferenceService::LoadModel(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  // The role is checked before the request is looked at, so that a user key
  // learns nothing about the model root.
  absl::Status status = AuthenticateCall(*context, *deps_.keys, auth::Role::kAdmin).status();
  absl::StatusOr<v1::LoadModelRequest> parsed = ParseMessage<v1::LoadModelRequest>(*request);
  if (status.ok()) status = parsed.status();
  if (!status.ok()) return FinishUnary(context, status, v1::LoadModelResponse(), response);
  const absl::StatusOr<v1::LoadModelResponse> loaded = LoadModel(*parsed);
  return FinishUnary(context, loaded.status(), loaded.value_or(v1::LoadModelResponse()), response);
}

grpc::ServerUnaryReactor* InferenceService::UnloadModel(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  absl::Status status = AuthenticateCall(*context, *deps_.keys, auth::Role::kAdmin).status();
  if (status.ok()) {
    absl::StatusOr<v1::UnloadModelRequest> parsed = ParseMessage<v1::UnloadModelRequest>(*request);
    status = parsed.ok() ? deps_.router->UnloadModel(parsed->name()) : parsed.status();
  }
  if (status.ok() && on_models_changed_) on_models_changed_();
  return FinishUnary(context, status, v1::UnloadModelResponse(), response);
}

}  // namespace cohost::server
