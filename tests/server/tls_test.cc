// TLS on both front doors, with certificates this test makes with the openssl
// program (a CA, a server certificate for 127.0.0.1, a client certificate):
// a TLS client streams; a plain-text client is refused; with mutual TLS a
// client without a certificate is refused and one with it streams. Also the
// start-up checks of the PEM files.

#include "server/auth/tls.h"

#include <httplib.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/http_front_door.h"
#include "server/server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/tiny_router.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ca.pem/ca.key, server.pem/server.key (127.0.0.1, localhost), client.pem/client.key.
class Certificates {
 public:
  Certificates() : dir_(::testing::TempDir() + "cohost_tls_" + std::to_string(::getpid())) {
    const std::string d = dir_;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; mkdir -p " + d + "; cd " + d + ";" + "openssl req -x509 " + ec +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=cohost-test-ca;" +
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext;" + "openssl req " +
        ec + " -keyout server.key -out server.csr -subj /CN=localhost;" +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
        "-out server.pem -days 2 -extfile server.ext;" + "openssl req " + ec +
        " -keyout client.key -out client.csr -subj /CN=client;" +
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
        "-out client.pem -days 2";
    ok_ = std::system(("bash -c \"" + script + "\" >/dev/null 2>&1").c_str()) == 0;
  }
  ~Certificates() { std::system(("rm -rf " + dir_).c_str()); }

  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string pem(const std::string& name) const { return ReadFile(path(name)); }

 private:
  std::string dir_;
  bool ok_ = false;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new Certificates(); }
  static void TearDownTestSuite() { delete certs_; }

  void SetUp() override {
    ASSERT_TRUE(certs_->ok()) << "the openssl program could not make the test certificates";
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny = testing::MakeTinyRouter();
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    tiny_ = *std::move(tiny);
  }
  void TearDown() override {
    door_.reset();
    server_.reset();
    tiny_.reset();
  }

  auth::TlsConfig Config(bool mutual) {
    absl::StatusOr<auth::TlsConfig> c = auth::LoadTlsConfig(
        certs_->path("server.pem"), certs_->path("server.key"),
        mutual ? std::optional<std::string>(certs_->path("ca.pem")) : std::nullopt);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : auth::TlsConfig{};
  }

  void StartBoth(bool mutual) {
    ServerOptions options;
    options.tls = Config(mutual);
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(tiny_->router.get(), &metrics_, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    http::HttpOptions http_options;
    http_options.tls = options.tls;
    const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
    absl::StatusOr<std::unique_ptr<http::HttpFrontDoor>> door =
        http::HttpFrontDoor::Start(deps, http_options);
    ASSERT_TRUE(door.ok()) << door.status();
    door_ = *std::move(door);
  }

  grpc::Status GrpcGenerate(const std::shared_ptr<grpc::ChannelCredentials>& creds,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto stub = v1::Inference::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), creds));
    v1::GenerateRequest r;
    r.set_model("tiny");
    r.set_text("Hi");
    r.set_max_tokens(3);
    testing::CallOptions call;
    call.timeout = timeout;
    return testing::Generate(*stub, r, call).status;
  }

  std::shared_ptr<grpc::ChannelCredentials> TlsCreds(bool with_client_cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = certs_->pem("ca.pem");
    if (with_client_cert) {
      o.pem_private_key = certs_->pem("client.key");
      o.pem_cert_chain = certs_->pem("client.pem");
    }
    return grpc::SslCredentials(o);
  }

  static constexpr char kBody[] =
      R"({"model": "tiny", "prompt": [72, 105], "max_tokens": 3, "stream": true})";

  static Certificates* certs_;
  ServerMetrics metrics_;
  auth::ApiKeys keys_;
  std::unique_ptr<testing::TinyRouter> tiny_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<http::HttpFrontDoor> door_;
};

Certificates* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, TlsClientsStreamAndPlainTextOnesAreRefused) {
  StartBoth(/*mutual=*/false);
  const grpc::Status tls = GrpcGenerate(TlsCreds(false));
  EXPECT_TRUE(tls.ok()) << tls.error_message();
  EXPECT_FALSE(GrpcGenerate(grpc::InsecureChannelCredentials()).ok());

  httplib::SSLClient https("127.0.0.1", door_->port());
  https.set_ca_cert_path(certs_->path("ca.pem").c_str());
  https.enable_server_certificate_verification(true);
  httplib::Result r = https.Post("/v1/completions", kBody, "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr("data: [DONE]"));

  httplib::Client plain("127.0.0.1", door_->port());
  plain.set_read_timeout(5, 0);
  httplib::Result refused = plain.Post("/v1/completions", kBody, "application/json");
  EXPECT_TRUE(!refused || refused->status != 200);
}

// With TLS, gRPC's own listener takes connections, and in gRPC 1.51 one
// accept failed for want of descriptors stops it for good. Whatever the
// gRPC version does, health tells the truth: once the process has been out
// of descriptors, the server counts as accepting exactly when a new TLS call
// gets through, on gRPC's health and HTTP's /health alike.
TEST_F(TlsTest, AfterRunningOutOfDescriptorsHealthSaysWhetherThePortAccepts) {
  ServerOptions options;
  options.tls = Config(/*mutual=*/false);
  options.health_interval = std::chrono::milliseconds(50);
  options.accept_stall_timeout = std::chrono::milliseconds(300);
  absl::StatusOr<std::unique_ptr<Server>> s =
      Server::Start(tiny_->router.get(), &metrics_, options);
  ASSERT_TRUE(s.ok()) << s.status();
  server_ = *std::move(s);
  http::HttpOptions http_options;
  http_options.grpc_accepting = [this] { return server_->accepting(); };
  const StreamDeps deps{tiny_->router.get(), &metrics_, &keys_, StreamLimits{}};
  absl::StatusOr<std::unique_ptr<http::HttpFrontDoor>> door =
      http::HttpFrontDoor::Start(deps, http_options);
  ASSERT_TRUE(door.ok()) << door.status();
  door_ = *std::move(door);
  ASSERT_TRUE(GrpcGenerate(TlsCreds(false)).ok());

  bool starved = false;
  const int client = testing::ConnectWhileOutOfDescriptors(
      server_->port(),
      [] {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // gRPC's accept fails
        return true;
      },
      &starved);
  ASSERT_GE(client, 0);
  const bool serves = GrpcGenerate(TlsCreds(false), std::chrono::seconds(3)).ok();
  EXPECT_TRUE(
      testing::WaitFor([&] { return server_->accepting() == serves; }, std::chrono::seconds(10)))
      << "a TLS call " << (serves ? "got through" : "did not");
  httplib::Client http("127.0.0.1", door_->port());
  httplib::Result health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, serves ? 200 : 503) << health->body;
  ::close(client);
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificate) {
  StartBoth(/*mutual=*/true);
  EXPECT_FALSE(GrpcGenerate(TlsCreds(false)).ok());
  const grpc::Status with_cert = GrpcGenerate(TlsCreds(true));
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();

  httplib::SSLClient anonymous("127.0.0.1", door_->port());
  anonymous.set_ca_cert_path(certs_->path("ca.pem").c_str());
  anonymous.set_read_timeout(5, 0);
  httplib::Result refused = anonymous.Post("/v1/completions", kBody, "application/json");
  EXPECT_TRUE(!refused || refused->status != 200);

  httplib::SSLClient client("127.0.0.1", door_->port(), certs_->path("client.pem"),
                            certs_->path("client.key"));
  client.set_ca_cert_path(certs_->path("ca.pem").c_str());
  client.enable_server_certificate_verification(true);
  httplib::Result r = client.Post("/v1/completions", kBody, "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
}

TEST_F(TlsTest, BadFilesAreRefusedAtStartUp) {
  using auth::LoadTlsConfig;
  EXPECT_TRUE(LoadTlsConfig(std::nullopt, std::nullopt, std::nullopt)->cert_chain_pem.empty());
  EXPECT_THAT(
      LoadTlsConfig(certs_->path("server.pem"), std::nullopt, std::nullopt).status().message(),
      HasSubstr("come together"));
  EXPECT_THAT(LoadTlsConfig(std::nullopt, std::nullopt, certs_->path("ca.pem")).status().message(),
              HasSubstr("needs --tls-cert"));
  EXPECT_EQ(
      LoadTlsConfig("/nonexistent.pem", certs_->path("server.key"), std::nullopt).status().code(),
      absl::StatusCode::kNotFound);
  // The client's key with the server's certificate.
  absl::StatusOr<auth::TlsConfig> mismatch =
      LoadTlsConfig(certs_->path("server.pem"), certs_->path("client.key"), std::nullopt);
  EXPECT_THAT(mismatch.status().message(), HasSubstr("does not match"));
  // A file that is not PEM.
  EXPECT_THAT(LoadTlsConfig(certs_->path("server.ext"), certs_->path("server.key"), std::nullopt)
                  .status()
                  .message(),
              HasSubstr("not a PEM file"));
  // A passphrase-protected key: refused at once, saying why (OpenSSL asked for
  // the passphrase on the terminal, and start-up waited).
  const std::string encrypted = certs_->path("encrypted.key");
  ASSERT_EQ(std::system(("openssl pkey -in " + certs_->path("server.key") + " -aes256 -passout " +
                         "pass:secret -out " + encrypted + " >/dev/null 2>&1 </dev/null")
                            .c_str()),
            0);
  const absl::StatusOr<auth::TlsConfig> locked =
      LoadTlsConfig(certs_->path("server.pem"), encrypted, std::nullopt);
  EXPECT_EQ(locked.status().code(), absl::StatusCode::kInvalidArgument) << locked.status();
  EXPECT_THAT(locked.status().message(), HasSubstr("encrypted"));
}

}  // namespace
}  // namespace cohost::server
