#include "common/tls.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpfleet {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& flag) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is required"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, " (", flag, ")"));
  std::stringstream contents;
  contents << in.rdbuf();
  if (contents.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, " (", flag, ") is not a PEM file"));
  }
  return contents.str();
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, const std::string& what) {
  TlsMaterial tls;
  absl::StatusOr<std::string> pem = ReadPem(files.ca_cert, what + "ca");
  if (!pem.ok()) return pem.status();
  tls.ca_cert_pem = *std::move(pem);
  pem = ReadPem(files.cert, what + "cert");
  if (!pem.ok()) return pem.status();
  tls.cert_pem = *std::move(pem);
  struct stat key_stat;
  if (!files.key.empty() && stat(files.key.c_str(), &key_stat) == 0 &&
      (key_stat.st_mode & S_IRWXO) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the private key %s (%skey) may be read by anyone (mode %04o); chmod 600 it", files.key,
        what, key_stat.st_mode & 07777));
  }
  pem = ReadPem(files.key, what + "key");
  if (!pem.ok()) return pem.status();
  tls.key_pem = *std::move(pem);
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const TlsMaterial& tls) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca_cert_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> MutualTlsChannel(const std::string& address, const TlsMaterial& tls,
                                                Role server_role,
                                                grpc::ChannelArguments arguments) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_cert_pem;
  options.pem_private_key = tls.key_pem;
  options.pem_cert_chain = tls.cert_pem;
  // The address may be any name or IP the server is reached at; what is checked is its role.
  arguments.SetSslTargetNameOverride(RoleDnsName(server_role));
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), arguments);
}

}  // namespace dpfleet
