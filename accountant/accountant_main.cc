// dpfleet-accountant: serves AccountantService over the SQLite ledger.

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "accountant/accountant_service.h"
#include "common/serve.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "host:port to serve on (port 0: any free port)");
ABSL_FLAG(std::string, ledger, "", "path of the SQLite ledger file (created if missing)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving");
ABSL_FLAG(
    std::string, tokens, "",
    "token file: one '<token> <role> <name>' per line, role admin|coordinator|reader (required)");

int main(int argc, char** argv) {
  dpfleet::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_ledger).empty()) {
    std::cerr << "dpfleet-accountant: --ledger is required\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_tokens).empty()) {
    std::cerr << "dpfleet-accountant: --tokens is required: every request must be authenticated\n";
    return 2;
  }
  auto auth = dpfleet::accountant::TokenAuthenticator::FromFile(absl::GetFlag(FLAGS_tokens));
  if (!auth.ok()) {
    std::cerr << "dpfleet-accountant: " << auth.status() << "\n";
    return 1;
  }
  auto ledger = dpfleet::accountant::Ledger::Open({.path = absl::GetFlag(FLAGS_ledger)});
  if (!ledger.ok()) {
    std::cerr << "dpfleet-accountant: " << ledger.status() << "\n";
    return 1;
  }
  dpfleet::accountant::AccountantServiceImpl service(ledger->get(), auth->get());
  auto server = dpfleet::StartServer(
      {.listen_address = absl::GetFlag(FLAGS_listen), .port_file = absl::GetFlag(FLAGS_port_file)},
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
