// dpfleet-accountant: serves AccountantService over the SQLite ledger.

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "accountant/accountant_service.h"
#include "common/admission_ticket.h"
#include "common/serve.h"
#include "common/server_flags.h"

ABSL_FLAG(std::string, ledger, "", "path of the SQLite ledger file (created if missing)");
ABSL_FLAG(std::string, ticket_key, "",
          "Ed25519 private key (PEM, not world-readable) that signs the admission tickets "
          "workers check; deploy/make_certs.sh makes it as ticket.key");
ABSL_FLAG(absl::Duration, ticket_lifetime, absl::Minutes(10),
          "how long an admission ticket stays valid");

int main(int argc, char** argv) {
  dpfleet::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_ledger).empty()) {
    std::cerr << "dpfleet-accountant: --ledger is required\n";
    return 2;
  }
  // Every caller is identified by its client certificate (common/identity.h).
  const absl::StatusOr<dpfleet::TlsMaterial> tls = dpfleet::TlsFromFlags();
  if (!tls.ok()) {
    std::cerr << "dpfleet-accountant: " << tls.status() << "\n";
    return 2;
  }
  const auto signer =
      dpfleet::TicketSigner::FromFile(absl::GetFlag(FLAGS_ticket_key), "--ticket_key");
  if (!signer.ok()) {
    std::cerr << "dpfleet-accountant: " << signer.status() << "\n";
    return 2;
  }
  auto ledger = dpfleet::accountant::Ledger::Open({.path = absl::GetFlag(FLAGS_ledger)});
  if (!ledger.ok()) {
    std::cerr << "dpfleet-accountant: " << ledger.status() << "\n";
    return 1;
  }
  dpfleet::accountant::AccountantServiceImpl service(ledger->get(), signer->get(),
                                                     absl::GetFlag(FLAGS_ticket_lifetime));
  auto server = dpfleet::StartServer(
      dpfleet::ServerOptionsFromFlags(*tls, dpfleet::accountant::kMaxAccountantRequestBytes),
      {&service});
  if (!server.ok()) {
    std::cerr << "dpfleet-accountant: " << server.status() << "\n";
    return 1;
  }
  std::cerr << "dpfleet-accountant: serving on port " << server->port << ", ledger "
            << absl::GetFlag(FLAGS_ledger) << "\n";
  dpfleet::WaitForTerminationSignal();
  server->server->Shutdown();
  return 0;
}
