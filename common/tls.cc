#include "common/tls.h"

#include "absl/strings/str_cat.h"
#include "common/pem_file.h"

namespace dpfleet {

absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, const std::string& what) {
  TlsMaterial tls;
  absl::StatusOr<std::string> pem = ReadPemFile(files.ca_cert, what + "ca");
  if (!pem.ok()) return pem.status();
  tls.ca_cert_pem = *std::move(pem);
  pem = ReadPemFile(files.cert, what + "cert");
  if (!pem.ok()) return pem.status();
  tls.cert_pem = *std::move(pem);
  pem = ReadPrivateKeyFile(files.key, what + "key");
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
