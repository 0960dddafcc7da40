// TLS for both front doors: the server's certificate and key, and optionally
// the CA that client certificates must chain to (mutual TLS). Loaded and
// checked once at start-up (`--tls-cert`, `--tls-key`, `--tls-client-ca`);
// gRPC gets them as SslServerCredentials, the HTTP front door as an OpenSSL
// context.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace cohost::server::auth {

struct TlsConfig {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string client_ca_pem;  // empty: clients need no certificate

  bool enabled() const { return !cert_chain_pem.empty(); }
  bool mutual() const { return !client_ca_pem.empty(); }
};

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// Reads the PEM files. With none given, TLS is off (an empty config).
// INVALID_ARGUMENT when only one of cert and key is given, a client CA comes
// without them, a file holds no PEM, or the key does not match the
// certificate; NOT_FOUND when a file cannot be read. Errors name the flag.
absl::StatusOr<TlsConfig> LoadTlsConfig(const std::optional<std::string>& cert_file,
                                        const std::optional<std::string>& key_file,
                                        const std::optional<std::string>& client_ca_file);

// A server-side OpenSSL context for `config` (TLS 1.2 and up; with a client
// CA, a client certificate that chains to it is required).
absl::StatusOr<SslCtxPtr> MakeServerSslContext(const TlsConfig& config);

}  // namespace cohost::server::auth
