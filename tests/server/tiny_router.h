// A Router serving the tiny random model (byte tokenizer) as "tiny" on a
// one-thread CPU backend: the front-door tests' server, fast to build and
// faster than any client.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "scheduler/router.h"
#include "tests/support/tiny_model.h"

namespace cohost::testing {

struct TinyRouter {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<scheduler::Router> router;  // destroyed before the backend

  ~TinyRouter() { router.reset(); }
};

// The tiny model on `backend`, with `tokenizer` (the byte tokenizer, with or
// without a chat template). `spec`: the model's settings (its name and path
// are always "tiny"); `model`: its shape.
inline absl::StatusOr<std::unique_ptr<TinyRouter>> MakeTinyRouterOn(
    std::unique_ptr<kernels::Backend> backend, const runtime::TokenizerSpec& tokenizer_spec,
    const scheduler::RouterOptions& options, const runtime::EngineConfig& engine = {},
    scheduler::ModelSpec spec = {}, const runtime::testing::TinyModelOptions& model_options = {}) {
  auto t = std::make_unique<TinyRouter>();
  t->backend = std::move(backend);
  t->router = std::make_unique<scheduler::Router>(t->backend.get(), engine, options);
  runtime::LoadedModel loaded;
  absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> tokenizer =
      runtime::Tokenizer::Create(tokenizer_spec);
  if (!tokenizer.ok()) return tokenizer.status();
  loaded.tokenizer = *std::move(tokenizer);
  absl::StatusOr<std::unique_ptr<runtime::Model>> model =
      runtime::Model::Create(runtime::testing::MakeTinyModelFile(model_options), t->backend.get());
  if (!model.ok()) return model.status();
  loaded.model = *std::move(model);
  spec.name = "tiny";
  spec.path = "tiny";
  if (absl::Status s = t->router->AddLoadedModel(spec, std::move(loaded)); !s.ok()) return s;
  return t;
}

// On a one-thread CPU backend, with the byte tokenizer.
inline absl::StatusOr<std::unique_ptr<TinyRouter>> MakeTinyRouterWith(
    const scheduler::RouterOptions& options, const runtime::EngineConfig& engine = {},
    scheduler::ModelSpec spec = {}) {
  return MakeTinyRouterOn(kernels::MakeCpuBackend(1), runtime::testing::MakeByteTokenizerSpec(),
                          options, engine, std::move(spec));
}

inline absl::StatusOr<std::unique_ptr<TinyRouter>> MakeTinyRouter(
    const scheduler::AdmissionLimits& limits = {}, const runtime::EngineConfig& engine = {},
    scheduler::ModelSpec spec = {}) {
  scheduler::RouterOptions options;
  options.admission = limits;
  return MakeTinyRouterWith(options, engine, std::move(spec));
}

}  // namespace cohost::testing
