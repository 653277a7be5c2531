// What a worker does with the bytes a coordinator sends it before it touches an example, and how a
// caller's identity is read from its certificate. Input: byte 0 picks the part, the rest is its
// input:
//  0: an AdmissionTicket (serialized) for TicketVerifier::Verify. A ticket that verifies must
//     carry exactly the signature the accountant's key makes for its body (Ed25519 is
//     deterministic): no forgery, no malleated signature.
//  1: [n][n bytes of a TicketBody][a ShardAssignment] for CheckTicketCovers. A ticket it accepts
//     must state the assignment's q and C exactly, and noise the assignment does not undercut.
//  2: a certificate's common name and subject alternative names, separated by NUL bytes, for
//     PrincipalFromCertificate.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "accountant/mechanism.h"
#include "common/admission_ticket.h"
#include "common/identity.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/harness_key.h"
#include "proto/dpfleet.pb.h"
#include "worker/admission.h"

namespace {

using dpfleet::fuzz::Require;

void Verify(const std::string& bytes) {
  static const auto* const signer =
      dpfleet::TicketSigner::FromPem(dpfleet::fuzz::kHarnessTicketPrivateKey)->release();
  static const auto* const verifier =
      dpfleet::TicketVerifier::FromPem(dpfleet::fuzz::kHarnessTicketPublicKey)->release();
  dpfleet::v1::AdmissionTicket ticket;
  if (!ticket.ParseFromString(bytes)) return;
  const absl::StatusOr<dpfleet::v1::TicketBody> body = verifier->Verify(ticket);
  if (!body.ok()) {
    dpfleet::fuzz::RequireCleanRefusal(body.status(), "TicketVerifier::Verify");
    return;
  }
  dpfleet::v1::TicketBody reparsed;
  Require(reparsed.ParseFromString(ticket.body()), "a verified body that does not parse");
  // Sign serializes the body it is given; re-signing the exact bytes needs them as a body again.
  const absl::StatusOr<dpfleet::v1::AdmissionTicket> genuine = signer->Sign(*body);
  Require(genuine.ok() &&
              (genuine->body() != ticket.body() || genuine->signature() == ticket.signature()),
          "a ticket verified whose signature the key would not make");
}

void Covers(const std::string& bytes) {
  if (bytes.empty()) return;
  const size_t body_size = std::min<size_t>(static_cast<uint8_t>(bytes[0]), bytes.size() - 1);
  dpfleet::v1::TicketBody ticket;
  dpfleet::v1::ShardAssignment assignment;
  if (!ticket.ParseFromString(bytes.substr(1, body_size)) ||
      !assignment.ParseFromString(bytes.substr(1 + body_size))) {
    return;
  }
  const std::string nonce = ticket.rank_nonces_size() > 0 ? ticket.rank_nonces(0) : "";
  for (const std::optional<int64_t> step : {std::optional<int64_t>(), std::optional<int64_t>(0)}) {
    const absl::Status covered = dpfleet::worker::CheckTicketCovers(
        ticket, assignment, nonce, step,
        absl::FromUnixMillis(ticket.expires_unix_ms()) - absl::Milliseconds(1));
    if (!covered.ok()) {
      Require(covered.code() == absl::StatusCode::kPermissionDenied && !covered.message().empty(),
              "CheckTicketCovers refused with " + covered.ToString());
      continue;
    }
    Require(ticket.sampling_rate() == assignment.sampling_rate(),
            "a ticket covered another sampling rate");
    Require(ticket.clip_norm() == assignment.spec().clip_norm(),
            "a ticket covered another clip norm");
    Require(dpfleet::accountant::CombinedNoiseMultiplier(
                assignment.noise_multiplier(), assignment.spec().loss_noise_multiplier()) >=
                ticket.noise_multiplier(),
            "a ticket covered less noise than it admits");
    Require(ticket.job_id() == assignment.job_id(), "a ticket covered another job");
  }
}

void Principal(const std::string& bytes) {
  std::vector<std::string> names = absl::StrSplit(bytes, '\0');
  const std::string common_name = names.front();
  names.erase(names.begin());
  const auto principal = dpfleet::PrincipalFromCertificate(common_name, names);
  if (!principal.ok()) {
    Require(principal.status().code() == absl::StatusCode::kUnauthenticated,
            "PrincipalFromCertificate refused with " + principal.status().ToString());
    return;
  }
  Require(principal->name == common_name && !common_name.empty(),
          "a principal named other than its certificate's common name");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      Verify(bytes);
      break;
    case 1:
      Covers(bytes);
      break;
    default:
      Principal(bytes);
      break;
  }
  return 0;
}
