// dpfleet-accountant: serves AccountantService over the SQLite ledger.

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "accountant/accountant_service.h"
#include "common/serve.h"
#include "common/server_flags.h"

ABSL_FLAG(std::string, ledger, "", "path of the SQLite ledger file (created if missing)");

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
  auto ledger = dpfleet::accountant::Ledger::Open({.path = absl::GetFlag(FLAGS_ledger)});
  if (!ledger.ok()) {
    std::cerr << "dpfleet-accountant: " << ledger.status() << "\n";
    return 1;
  }
  dpfleet::accountant::AccountantServiceImpl service(ledger->get());
  auto server = dpfleet::StartServer(dpfleet::ServerOptionsFromFlags(*tls), {&service});
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
