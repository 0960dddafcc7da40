// API keys on the gRPC front door, end to end on the tiny model: each RPC
// refuses a missing or wrong key (UNAUTHENTICATED), a user key where admin is
// needed and a tenant claimed against the key (PERMISSION_DENIED); the
// server's health stays open, a model's needs a key; user keys do not see
// server paths.

#include <chrono>
#include <memory>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"

namespace cohost::server {
namespace {

constexpr char kUserKey[] = "user-key-0123456789";
constexpr char kAdminKey[] = "admin-key-0123456789";

class GrpcAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouter();
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
    ServerOptions options;
    absl::StatusOr<auth::ApiKeys> keys = auth::ApiKeys::Parse(
        "user-key-0123456789 tenant=alice\nadmin-key-0123456789 role=admin tenant=ops\n", "test");
    ASSERT_TRUE(keys.ok()) << keys.status();
    options.api_keys = *std::move(keys);
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(tiny_->router.get(), &metrics_, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::Inference::NewStub(channel_);
  }
  void TearDown() override {
    server_.reset();
    tiny_.reset();
  }

  static v1::GenerateRequest Request() {
    v1::GenerateRequest r;
    r.set_model("tiny");
    r.set_text("Hi");
    r.set_max_tokens(3);
    return r;
  }

  grpc::Status Generate(const std::string& key, const std::string& tenant = "") {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    if (!tenant.empty()) ctx.AddMetadata("x-cohost-tenant", tenant);
    testing::CallOptions options;
    options.context = &ctx;
    return testing::Generate(*stub_, Request(), options).status;
  }

  grpc::Status ListModels(const std::string& key, v1::ListModelsResponse* out) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    return stub_->ListModels(&ctx, v1::ListModelsRequest(), out);
  }

  grpc::Status Unload(const std::string& key, const std::string& name) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    v1::UnloadModelRequest req;
    req.set_name(name);
    v1::UnloadModelResponse resp;
    return stub_->UnloadModel(&ctx, req, &resp);
  }

  grpc::Status Load(const std::string& key) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    v1::LoadModelRequest req;
    req.set_name("other");
    req.set_path("/etc/passwd");
    v1::LoadModelResponse resp;
    return stub_->LoadModel(&ctx, req, &resp);
  }

  ServerMetrics metrics_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(GrpcAuthTest, GenerateNeedsAValidKey) {
  EXPECT_EQ(Generate("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Generate("not-a-key-0123456789").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // An unknown caller does not learn which models exist.
  {
    grpc::ClientContext ctx;
    testing::CallOptions options;
    options.context = &ctx;
    v1::GenerateRequest r = Request();
    r.set_model("no-such-model");
    EXPECT_EQ(testing::Generate(*stub_, r, options).status.error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  const grpc::Status ok = Generate(kUserKey);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(GrpcAuthTest, TheKeyDecidesTheTenant) {
  EXPECT_TRUE(Generate(kUserKey, "alice").ok());
  const grpc::Status spoof = Generate(kUserKey, "ops");
  EXPECT_EQ(spoof.error_code(), grpc::StatusCode::PERMISSION_DENIED) << spoof.error_message();
}

TEST_F(GrpcAuthTest, ModelManagementNeedsAnAdminKey) {
  EXPECT_EQ(Unload("", "tiny").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Unload(kUserKey, "tiny").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Load(kUserKey).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Load("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The admin gets past the key check to the model rules.
  EXPECT_EQ(Unload(kAdminKey, "missing").error_code(), grpc::StatusCode::NOT_FOUND);
  // The model is still there after all those refusals.
  EXPECT_TRUE(Generate(kUserKey).ok());
}

TEST_F(GrpcAuthTest, ListModelsShowsPathsToAdminsOnly) {
  v1::ListModelsResponse resp;
  EXPECT_EQ(ListModels("", &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(ListModels(kUserKey, &resp).ok());
  ASSERT_EQ(resp.models_size(), 1);
  EXPECT_EQ(resp.models(0).path(), "");
  resp.Clear();
  ASSERT_TRUE(ListModels(kAdminKey, &resp).ok());
  EXPECT_EQ(resp.models(0).path(), "tiny");
}

// The whole server's health ("", what probes ask) needs no key; a model's
// name answers only with one, so that which models exist is not told to
// anyone who asks. A wrong name with a key is NOT_FOUND.
TEST_F(GrpcAuthTest, HealthNeedsAKeyOnlyForModelNames) {
  absl::StatusOr<int> health = testing::HealthCheck(channel_, "");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, 1);  // SERVING
  const auto check = [&](const std::string& key, const std::string& name,
                         grpc::health::v1::HealthCheckResponse* out) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    return grpc::health::v1::Health::NewStub(channel_)->Check(&ctx, req, out);
  };
  grpc::health::v1::HealthCheckResponse out;
  for (const std::string& name : {std::string("tiny"), std::string("no-such-model")}) {
    const grpc::Status s = check("", name, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << name;
    EXPECT_EQ(s.error_message().find(name), std::string::npos) << s.error_message();
  }
  EXPECT_EQ(check("wrong-key-0123456789", "tiny", &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(check(kUserKey, "tiny", &out).ok());
  EXPECT_EQ(out.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check(kUserKey, "no-such-model", &out).error_code(), grpc::StatusCode::NOT_FOUND);

  // Watch the same way: refused at once without a key.
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("tiny");
  auto stream = grpc::health::v1::Health::NewStub(channel_)->Watch(&ctx, req);
  EXPECT_FALSE(stream->Read(&out));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Refused Watches whose calls are cancelled as they are refused (at once,
  // or by deadlines of a few microseconds): each is finished once, and the
  // server serves on. A refused stream that a cancel finished a second time
  // aborted the process in most runs of this loop.
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext brief;
    brief.set_deadline(std::chrono::system_clock::now() + std::chrono::microseconds(i % 50));
    auto refused = grpc::health::v1::Health::NewStub(channel_)->Watch(&brief, req);
    if (i % 2 == 0) brief.TryCancel();
    while (refused->Read(&out)) {
    }
    const grpc::StatusCode code = refused->Finish().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::UNAUTHENTICATED ||
                code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::CANCELLED)
        << code;
  }
  health = testing::HealthCheck(channel_, "");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, 1);
}

// `bytes` as the request of `method` (every cohost method, unary or
// streaming, takes one message), with `key` when not empty: the call's status.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes, const std::string& key) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto wait = [&] { return cq.Next(&tag, &ok) && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  if (wait()) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
    if (wait()) {
      grpc::ByteBuffer response;
      call->Read(&response, reinterpret_cast<void*>(3));
      wait();  // a message, or the end of the stream
    }
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  return status;
}

// Bytes that are not the method's request message (here a field 1 of
// wire type 7, which does not exist) are INVALID_ARGUMENT on every method,
// once the caller may call it: never UNIMPLEMENTED, as gRPC's typed
// handlers would answer.
TEST_F(GrpcAuthTest, AnUnparsableRequestIsInvalidArgumentOnEveryMethod) {
  const std::string garbage = "\x0f\xff\xff";
  for (const char* method : {"/cohost.v1.Inference/Generate", "/cohost.v1.Inference/ListModels",
                             "/cohost.v1.Inference/LoadModel", "/cohost.v1.Inference/UnloadModel",
                             "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}) {
    SCOPED_TRACE(method);
    const grpc::Status status = RawCall(channel_, method, garbage, kAdminKey);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("is not a valid"), std::string::npos);
  }
  // The key is checked first where the request is not needed for it.
  EXPECT_EQ(RawCall(channel_, "/cohost.v1.Inference/LoadModel", garbage, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(RawCall(channel_, "/cohost.v1.Inference/LoadModel", garbage, kUserKey).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A well-formed request still works through the same path.
  v1::UnloadModelRequest unload;
  unload.set_name("no-such-model");
  EXPECT_EQ(
      RawCall(channel_, "/cohost.v1.Inference/UnloadModel", unload.SerializeAsString(), kAdminKey)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace cohost::server
