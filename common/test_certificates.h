#ifndef DPFLEET_COMMON_TEST_CERTIFICATES_H_
#define DPFLEET_COMMON_TEST_CERTIFICATES_H_

// Test-only: certificates of a throwaway cluster CA, made by deploy/make_certs.sh (a data
// dependency of the test) under the test's temporary folder.

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/identity.h"
#include "common/tls.h"
#include "gtest/gtest.h"

namespace dpfleet {

// The folder of the test's CA: "<TEST_TMPDIR>/<ca>".
inline std::string TestCaDir(const std::string& ca = "cluster-ca") {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", ca);
}

// Makes (once) and returns the certificate of principal `name` with `role`, signed by test CA
// `ca`.
inline TlsMaterial TestCertificate(const std::string& name, Role role,
                                   const std::string& ca = "cluster-ca") {
  const std::string command =
      absl::StrCat("bash ", std::getenv("TEST_SRCDIR"), "/dpfleet/deploy/make_certs.sh ",
                   TestCaDir(ca), " ", name, ":", RoleName(role));
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  const std::string dir = TestCaDir(ca);
  absl::StatusOr<TlsMaterial> tls = LoadTls({.ca_cert = dir + "/ca.pem",
                                             .cert = dir + "/" + name + ".pem",
                                             .key = dir + "/" + name + ".key"});
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : TlsMaterial{};
}

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_TEST_CERTIFICATES_H_
