#ifndef DPFLEET_COMMON_TEST_CERTIFICATES_H_
#define DPFLEET_COMMON_TEST_CERTIFICATES_H_

// Test-only: certificates of a throwaway cluster CA, made by deploy/make_certs.sh (a data
// dependency of the test) under the test's temporary folder.

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/admission_ticket.h"
#include "common/identity.h"
#include "common/tls.h"
#include "gtest/gtest.h"

namespace dpfleet {

// The folder of the test's CA: "<TEST_TMPDIR>/<ca>".
inline std::string TestCaDir(const std::string& ca = "cluster-ca") {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", ca);
}

// Makes (once each) the certificates of `principals` ("NAME:ROLE") under the CA in `dir`, with
// deploy/make_certs.sh, which makes the CA too if `dir` has none. A failure fails the test.
inline void MakeCertificatesIn(const std::string& dir, const std::vector<std::string>& principals) {
  const std::string command =
      absl::StrCat("bash ", std::getenv("TEST_SRCDIR"), "/dpfleet/deploy/make_certs.sh ", dir, " ",
                   absl::StrJoin(principals, " "));
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

// Returns principal `name`'s certificate from `dir`, laid out as deploy/make_certs.sh writes it
// (ca.pem, NAME.pem, NAME.key). A failure fails the test.
inline TlsMaterial CertificateIn(const std::string& dir, const std::string& name) {
  absl::StatusOr<TlsMaterial> tls = LoadTls({.ca_cert = dir + "/ca.pem",
                                             .cert = dir + "/" + name + ".pem",
                                             .key = dir + "/" + name + ".key"});
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : TlsMaterial{};
}

// Makes (once) and returns the certificate of principal `name` with `role`, signed by test CA
// `ca`.
inline TlsMaterial TestCertificate(const std::string& name, Role role,
                                   const std::string& ca = "cluster-ca") {
  MakeCertificatesIn(TestCaDir(ca), {absl::StrCat(name, ":", RoleName(role))});
  return CertificateIn(TestCaDir(ca), name);
}

// The ticket key pair made with test CA `ca`: the accountant's signer, and a worker's verifier.
// A failure fails the test (and returns null).
inline std::unique_ptr<TicketSigner> TestTicketSigner(const std::string& ca = "cluster-ca") {
  MakeCertificatesIn(TestCaDir(ca), {});
  auto signer = TicketSigner::FromFile(TestCaDir(ca) + "/ticket.key", "ticket.key");
  EXPECT_TRUE(signer.ok()) << signer.status();
  return signer.ok() ? *std::move(signer) : nullptr;
}
inline std::unique_ptr<TicketVerifier> TestTicketVerifier(const std::string& ca = "cluster-ca") {
  MakeCertificatesIn(TestCaDir(ca), {});
  auto verifier = TicketVerifier::FromFile(TestCaDir(ca) + "/ticket.pub", "ticket.pub");
  EXPECT_TRUE(verifier.ok()) << verifier.status();
  return verifier.ok() ? *std::move(verifier) : nullptr;
}

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_TEST_CERTIFICATES_H_
