#ifndef DPFLEET_BENCH_BENCH_CERTIFICATES_H_
#define DPFLEET_BENCH_BENCH_CERTIFICATES_H_

// Certificates for benchmarks that run servers over mutual TLS, as deployed: a throwaway cluster
// CA made by deploy/make_certs.sh (a data dependency of the benchmark, from its runfiles).

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/tls.h"

namespace dpfleet {

// Makes a CA, its ticket keys and the certificates of `principals` ("NAME:ROLE ...") in a new
// temporary folder; returns the folder. Aborts when make_certs.sh fails.
inline std::string MakeBenchCertificates(const std::string& principals) {
  char dir_template[] = "/tmp/dpfleet-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  char exe[4096];
  const ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[std::max<ssize_t>(length, 0)] = 0;
  const std::string command =
      absl::StrCat("bash ", exe, ".runfiles/dpfleet/deploy/make_certs.sh ", dir, " ", principals);
  if (std::system(command.c_str()) != 0) std::abort();
  return dir;
}

// The certificate of principal `name` made in `dir`.
inline TlsMaterial BenchCertificate(const std::string& dir, const std::string& name) {
  return *LoadTls({.ca_cert = dir + "/ca.pem",
                   .cert = dir + "/" + name + ".pem",
                   .key = dir + "/" + name + ".key"});
}

}  // namespace dpfleet

#endif  // DPFLEET_BENCH_BENCH_CERTIFICATES_H_
