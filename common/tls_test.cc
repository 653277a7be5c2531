#include "common/tls.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/serve.h"
#include "common/test_certificates.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"

namespace dpfleet {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A server with only gRPC's health service, behind mutual TLS, as the coordinator's certificate.
class MutualTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = *StartServer({.listen_address = "127.0.0.1:0",
                            .credentials = MutualTlsServerCredentials(
                                TestCertificate("coordinator", Role::kCoordinator)),
                            .health_listen_address = "127.0.0.1:0"},
                           {});
    address_ = absl::StrCat("127.0.0.1:", server_.port);
  }
  void TearDown() override {
    server_.server->Shutdown();
    server_.health_server->Shutdown();
  }

  static grpc::Status Check(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckResponse response;
    return Health::NewStub(channel)->Check(&context, HealthCheckRequest(), &response);
  }

  RunningServer server_;
  std::string address_;
};

TEST_F(MutualTlsTest, AClientWithACertificateOfTheClusterCaIsServed) {
  EXPECT_TRUE(Check(MutualTlsChannel(address_, TestCertificate("alice", Role::kSubmitter),
                                     Role::kCoordinator))
                  .ok());
}

TEST_F(MutualTlsTest, PlaintextAndCertificateLessClientsFailAtTheHandshake) {
  EXPECT_EQ(Check(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  const TlsMaterial alice = TestCertificate("alice", Role::kSubmitter);
  grpc::SslCredentialsOptions no_certificate;
  no_certificate.pem_root_certs = alice.ca_cert_pem;
  grpc::ChannelArguments arguments;
  arguments.SetSslTargetNameOverride(RoleDnsName(Role::kCoordinator));
  EXPECT_EQ(
      Check(grpc::CreateCustomChannel(address_, grpc::SslCredentials(no_certificate), arguments))
          .error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

TEST_F(MutualTlsTest, ACertificateOfAnotherCaIsRefusedBothWays) {
  const TlsMaterial stranger = TestCertificate("mallory", Role::kAdmin, "other-ca");
  EXPECT_EQ(Check(MutualTlsChannel(address_, stranger, Role::kCoordinator)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A client of the cluster does not trust a server of another CA either.
  TlsMaterial confused = TestCertificate("alice", Role::kSubmitter);
  confused.ca_cert_pem = stranger.ca_cert_pem;
  EXPECT_EQ(Check(MutualTlsChannel(address_, confused, Role::kCoordinator)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(MutualTlsTest, AClientRefusesAServerOfAnotherRole) {
  // The server holds a coordinator's certificate; a client that means to reach an accountant
  // must not talk to it.
  EXPECT_EQ(Check(MutualTlsChannel(address_, TestCertificate("alice", Role::kSubmitter),
                                   Role::kAccountant))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(MutualTlsTest, TheHealthPortAnswersInPlaintext) {
  EXPECT_TRUE(Check(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_.health_port),
                                        grpc::InsecureChannelCredentials()))
                  .ok());
}

TEST(LoadTls, RefusesAKeyOthersMayReadAndNamesMissingFlags) {
  TestCertificate("carol", Role::kReader);
  const std::string dir = TestCaDir();
  const TlsFiles files{
      .ca_cert = dir + "/ca.pem", .cert = dir + "/carol.pem", .key = dir + "/carol.key"};
  ASSERT_TRUE(LoadTls(files).ok());
  ASSERT_EQ(chmod(files.key.c_str(), 0644), 0);
  const absl::StatusOr<TlsMaterial> readable = LoadTls(files);
  EXPECT_EQ(readable.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(readable.status().message().find("chmod 600"), std::string::npos) << readable.status();
  ASSERT_EQ(chmod(files.key.c_str(), 0600), 0);
  const absl::StatusOr<TlsMaterial> unset = LoadTls({.ca_cert = files.ca_cert, .cert = files.cert});
  EXPECT_EQ(unset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unset.status().message().find("--tls_key"), std::string::npos) << unset.status();
  EXPECT_EQ(
      LoadTls({.ca_cert = dir + "/nope.pem", .cert = files.cert, .key = files.key}).status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet
