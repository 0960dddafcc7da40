// PEM files to a checked TLS configuration and an OpenSSL server context.

#include "server/auth/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "server/auth/read_file.h"

namespace cohost::server::auth {
namespace {

constexpr size_t kMaxPemBytes = size_t{1} << 20;

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(flag, path, kMaxPemBytes);
  if (!pem.ok()) return pem.status();
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return pem;
}

// OpenSSL's last error as text, and the queue cleared.
std::string SslError() {
  const unsigned long code = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

// OpenSSL's passphrase callback: there is none to give (OpenSSL's default
// would ask on the terminal, and wait), so an encrypted key fails at once,
// and says so.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Adds every certificate of the chain in `pem`: the first as the leaf.
absl::Status UseCertChain(SSL_CTX* ctx, const std::string& pem) {
  auto bio = MemBio(pem);
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", SslError()));
  }
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add_extra_chain_cert(ctx, extra);  // takes ownership
  }
  ERR_clear_error();  // the end of the chain reads as an error
  return absl::OkStatus();
}

absl::Status UseClientCa(SSL_CTX* ctx, const std::string& pem) {
  auto bio = MemBio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, ca);
    X509_free(ca);
    ++added;
  }
  ERR_clear_error();
  if (added == 0) return absl::InvalidArgumentError("--tls-client-ca: no certificate in it");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return absl::OkStatus();
}

}  // namespace

void SslCtxFree::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

absl::StatusOr<SslCtxPtr> MakeServerSslContext(const TlsConfig& config) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("TLS: ", SslError()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (absl::Status s = UseCertChain(ctx.get(), config.cert_chain_pem); !s.ok()) return s;
  auto bio = MemBio(config.private_key_pem);
  bool passphrase_asked = false;
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, &passphrase_asked));
  if (key == nullptr && passphrase_asked) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "--tls-key is encrypted (passphrase-protected); give it unencrypted (openssl pkey -in "
        "KEY -out PLAIN_KEY), readable by this server alone");
  }
  if (key == nullptr) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", SslError()));
  // OpenSSL checks the pair in either call, depending on the key type.
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("--tls-key does not match the certificate of --tls-cert");
  }
  if (config.mutual()) {
    if (absl::Status s = UseClientCa(ctx.get(), config.client_ca_pem); !s.ok()) return s;
  }
  return ctx;
}

absl::StatusOr<TlsConfig> LoadTlsConfig(const std::optional<std::string>& cert_file,
                                        const std::optional<std::string>& key_file,
                                        const std::optional<std::string>& client_ca_file) {
  TlsConfig config;
  if (!cert_file && !key_file) {
    if (client_ca_file) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return config;
  }
  if (!cert_file || !key_file) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key come together");
  }
  absl::StatusOr<std::string> cert = ReadPem("--tls-cert", *cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("--tls-key", *key_file);
  if (!key.ok()) return key.status();
  config.cert_chain_pem = *std::move(cert);
  config.private_key_pem = *std::move(key);
  if (client_ca_file) {
    absl::StatusOr<std::string> ca = ReadPem("--tls-client-ca", *client_ca_file);
    if (!ca.ok()) return ca.status();
    config.client_ca_pem = *std::move(ca);
  }
  // Everything OpenSSL would refuse later is refused now, at start-up.
  absl::StatusOr<SslCtxPtr> ctx = MakeServerSslContext(config);
  if (!ctx.ok()) return ctx.status();
  return config;
}

}  // namespace cohost::server::auth
