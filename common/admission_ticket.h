#ifndef DPFLEET_COMMON_ADMISSION_TICKET_H_
#define DPFLEET_COMMON_ADMISSION_TICKET_H_

// Admission tickets: the accountant's signed statement of the mechanism it admitted for a job
// (dataset, sampling rate, noise multiplier, clip norm), for one group of workers and a range of
// step indices, until an expiry (proto TicketBody). Workers run no step a ticket they verified
// does not cover, so a coordinator that lies, or was taken over, cannot run a noise-free or an
// uncharged step: every step index a group may run was leased from the accountant, which charges
// it.
//
// Signatures are Ed25519 (RFC 8032; Bernstein et al. 2012) through OpenSSL's EVP interface: the
// accountant alone holds the private key (deploy/make_certs.sh makes the pair), and the workers
// hold the public key, so no worker can mint a ticket either. The signed bytes are the serialized
// body as sent; a verifier parses only bytes whose signature it checked.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet {

class TicketSigner {
 public:
  // Returns a signer with the Ed25519 private key in `pem`. Errors: kInvalidArgument when it is
  // not an Ed25519 private key.
  static absl::StatusOr<std::unique_ptr<TicketSigner>> FromPem(const std::string& pem);
  // FromPem of the file at `path` (named by `flag` in errors), which must not be world-readable
  // (common/pem_file.h).
  static absl::StatusOr<std::unique_ptr<TicketSigner>> FromFile(const std::string& path,
                                                                const std::string& flag);
  ~TicketSigner();

  // Returns `body` serialized and signed. Thread-safe. Errors: kInternal when OpenSSL fails.
  absl::StatusOr<v1::AdmissionTicket> Sign(const v1::TicketBody& body) const;

 private:
  struct Key;
  explicit TicketSigner(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

class TicketVerifier {
 public:
  // Returns a verifier with the Ed25519 public key in `pem`. Errors: kInvalidArgument when it is
  // not an Ed25519 public key.
  static absl::StatusOr<std::unique_ptr<TicketVerifier>> FromPem(const std::string& pem);
  // FromPem of the file at `path` (named by `flag` in errors).
  static absl::StatusOr<std::unique_ptr<TicketVerifier>> FromFile(const std::string& path,
                                                                  const std::string& flag);
  ~TicketVerifier();

  // Returns the body of `ticket` once its signature checks out. Thread-safe. Errors:
  // kPermissionDenied for a missing ticket, a bad signature or a body that does not parse.
  absl::StatusOr<v1::TicketBody> Verify(const v1::AdmissionTicket& ticket) const;

 private:
  struct Key;
  explicit TicketVerifier(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_ADMISSION_TICKET_H_
