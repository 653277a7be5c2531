#ifndef DPFLEET_COMMON_TLS_H_
#define DPFLEET_COMMON_TLS_H_

// Mutual TLS for every dpfleet channel. A cluster has one CA; each process holds a certificate it
// signed (deploy/make_certs.sh) and its key. Servers demand and verify a client certificate, so a
// plaintext connection, or one without a certificate from the cluster CA, fails at the handshake.
// Clients verify that the server's certificate is from the same CA and carries the role they
// meant to reach (DNS:<role>.dpfleet, common/identity.h), whatever address they dialled.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/identity.h"
#include "grpcpp/grpcpp.h"

namespace dpfleet {

// Paths of a process's TLS files, all PEM.
struct TlsFiles {
  std::string ca_cert;  // The cluster CA's certificate.
  std::string cert;     // This process's certificate (chain).
  std::string key;      // Its private key: readable by its owner only.
};

struct TlsMaterial {
  std::string ca_cert_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Reads the three files. Errors: kInvalidArgument naming an unset path (`what` names the flags in
// the message, e.g. "--tls_key"); kNotFound for a missing file; kFailedPrecondition for a key file
// that anyone may read (world permission bits; a group, as Kubernetes' fsGroup gives, may), with
// the chmod that fixes it.
absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, const std::string& what = "--tls_");

// Credentials for a server that requires and verifies a client certificate signed by the CA.
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const TlsMaterial& tls);

// A channel to `address` authenticated by this process's certificate, which accepts only a server
// whose certificate the CA signed for `server_role`. `arguments` are passed on (backoff, sizes).
std::shared_ptr<grpc::Channel> MutualTlsChannel(const std::string& address, const TlsMaterial& tls,
                                                Role server_role,
                                                grpc::ChannelArguments arguments = {});

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_TLS_H_
