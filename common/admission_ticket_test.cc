#include "common/admission_ticket.h"

#include <sys/stat.h>

#include <fstream>

#include "common/test_certificates.h"
#include "gtest/gtest.h"

namespace dpfleet {
namespace {

v1::TicketBody SomeBody() {
  v1::TicketBody body;
  body.set_job_id("job-1");
  body.set_dataset("fashion-mnist");
  body.set_sampling_rate(0.01);
  body.set_noise_multiplier(1.1);
  body.set_clip_norm(1.0);
  body.add_rank_nonces(std::string(16, 'a'));
  body.set_first_step(0);
  body.set_end_step(8);
  return body;
}

TEST(AdmissionTicket, AVerifiedTicketSaysWhatWasSigned) {
  const auto signer = TestTicketSigner();
  const auto verifier = TestTicketVerifier();
  const absl::StatusOr<v1::AdmissionTicket> ticket = signer->Sign(SomeBody());
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  EXPECT_EQ(ticket->signature().size(), 64u);
  const absl::StatusOr<v1::TicketBody> body = verifier->Verify(*ticket);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->noise_multiplier(), 1.1);
  EXPECT_EQ(body->end_step(), 8);
}

TEST(AdmissionTicket, AnyChangeToTheBodyOrSignatureIsRefused) {
  const auto signer = TestTicketSigner();
  const auto verifier = TestTicketVerifier();
  const v1::AdmissionTicket ticket = *signer->Sign(SomeBody());

  v1::TicketBody noiseless = SomeBody();
  noiseless.set_noise_multiplier(0);
  v1::AdmissionTicket forged = ticket;
  forged.set_body(noiseless.SerializeAsString());  // The old signature on a new body.
  EXPECT_EQ(verifier->Verify(forged).status().code(), absl::StatusCode::kPermissionDenied);

  for (size_t i = 0; i < ticket.body().size(); i += 7) {  // Flip a bit anywhere in the body.
    v1::AdmissionTicket flipped = ticket;
    (*flipped.mutable_body())[i] ^= 1;
    EXPECT_EQ(verifier->Verify(flipped).status().code(), absl::StatusCode::kPermissionDenied) << i;
  }
  v1::AdmissionTicket bad_signature = ticket;
  (*bad_signature.mutable_signature())[10] ^= 0x40;
  EXPECT_EQ(verifier->Verify(bad_signature).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier->Verify(v1::AdmissionTicket()).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AdmissionTicket, AnotherClustersKeyIsRefused) {
  const auto other_signer = TestTicketSigner("other-ca");
  const auto verifier = TestTicketVerifier();
  const absl::StatusOr<v1::TicketBody> body = verifier->Verify(*other_signer->Sign(SomeBody()));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(body.status().message().find("signature"), std::string::npos);
}

// Copies file `from` to `to` with permissions `mode`; returns `to`.
std::string CopyWithMode(const std::string& from, const std::string& to, mode_t mode) {
  {
    std::ifstream in(from);
    std::ofstream out(to);
    out << in.rdbuf();
  }
  EXPECT_EQ(chmod(to.c_str(), mode), 0);
  return to;
}

TEST(AdmissionTicket, KeysAreCheckedWhenLoaded) {
  const std::string dir = TestCaDir();
  MakeCertificatesIn(dir, {"someone:worker"});
  // A P-256 key is not an Ed25519 key; a public key is not a private one.
  EXPECT_EQ(TicketSigner::FromFile(dir + "/someone.key", "--ticket_key").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TicketVerifier::FromFile(dir + "/ca.pem", "--ticket_public_key").status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string public_key = CopyWithMode(dir + "/ticket.pub", dir + "/private.pub", 0600);
  EXPECT_EQ(TicketSigner::FromFile(public_key, "--ticket_key").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TicketVerifier::FromFile(dir + "/missing.pub", "--ticket_public_key").status().code(),
            absl::StatusCode::kNotFound);
  const absl::Status unset = TicketSigner::FromFile("", "--ticket_key").status();
  EXPECT_EQ(unset.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unset.message().find("--ticket_key is required"), std::string::npos);

  // A signing key anyone may read is refused.
  const std::string exposed = CopyWithMode(dir + "/ticket.key", dir + "/exposed.key", 0644);
  const absl::Status readable = TicketSigner::FromFile(exposed, "--ticket_key").status();
  EXPECT_EQ(readable.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(readable.message().find("chmod 600"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet
