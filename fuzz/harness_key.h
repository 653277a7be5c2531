#ifndef DPFLEET_FUZZ_HARNESS_KEY_H_
#define DPFLEET_FUZZ_HARNESS_KEY_H_

// A throwaway Ed25519 ticket key pair for admission_fuzz and its seeds only; it signs nothing a
// cluster trusts.

namespace dpfleet::fuzz {

constexpr char kHarnessTicketPrivateKey[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIG7DV7mj1kKyZULgg+p+urvqpzsTbZlgHIIxBqNPzTxk\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kHarnessTicketPublicKey[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEACf5LHpAvAyLAFU3gn85e3CxcSmoOOmds8NakEgcKOlk=\n"
    "-----END PUBLIC KEY-----\n";

}  // namespace dpfleet::fuzz

#endif  // DPFLEET_FUZZ_HARNESS_KEY_H_
