#include "common/admission_ticket.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "absl/strings/str_cat.h"
#include "common/pem_file.h"

namespace dpfleet {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct MdContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using MdContextPtr = std::unique_ptr<EVP_MD_CTX, MdContextDeleter>;

// Parses a PEM key with `read` (PEM_read_bio_PrivateKey or PEM_read_bio_PUBKEY); null unless it is
// an Ed25519 key.
PkeyPtr ReadEd25519(const std::string& pem,
                    EVP_PKEY* (*read)(BIO*, EVP_PKEY**, pem_password_cb*, void*)) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return nullptr;
  PkeyPtr key(read(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  if (key != nullptr && EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) return nullptr;
  return key;
}

// `parsed` (a signer or verifier made from the PEM of the file at `path`), its error naming the
// file and the flag that named it.
template <typename T>
absl::StatusOr<std::unique_ptr<T>> NamingTheFile(absl::StatusOr<std::unique_ptr<T>> parsed,
                                                 const std::string& path, const std::string& flag) {
  if (parsed.ok()) return parsed;
  return absl::InvalidArgumentError(
      absl::StrCat(path, " (", flag, "): ", parsed.status().message()));
}

}  // namespace

struct TicketSigner::Key {
  PkeyPtr pkey;
};
struct TicketVerifier::Key {
  PkeyPtr pkey;
};

TicketSigner::TicketSigner(std::unique_ptr<Key> key) : key_(std::move(key)) {}
TicketSigner::~TicketSigner() = default;
TicketVerifier::TicketVerifier(std::unique_ptr<Key> key) : key_(std::move(key)) {}
TicketVerifier::~TicketVerifier() = default;

absl::StatusOr<std::unique_ptr<TicketSigner>> TicketSigner::FromPem(const std::string& pem) {
  auto key = std::make_unique<Key>();
  key->pkey = ReadEd25519(pem, PEM_read_bio_PrivateKey);
  if (key->pkey == nullptr) {
    return absl::InvalidArgumentError("the ticket signing key is not an Ed25519 private key");
  }
  return std::unique_ptr<TicketSigner>(new TicketSigner(std::move(key)));
}

absl::StatusOr<std::unique_ptr<TicketSigner>> TicketSigner::FromFile(const std::string& path,
                                                                     const std::string& flag) {
  absl::StatusOr<std::string> pem = ReadPrivateKeyFile(path, flag);
  if (!pem.ok()) return pem.status();
  return NamingTheFile(FromPem(*pem), path, flag);
}

absl::StatusOr<v1::AdmissionTicket> TicketSigner::Sign(const v1::TicketBody& body) const {
  v1::AdmissionTicket ticket;
  if (!body.SerializeToString(ticket.mutable_body())) {
    return absl::InternalError("cannot serialize the ticket");
  }
  MdContextPtr context(EVP_MD_CTX_new());
  size_t length = 64;  // RFC 8032: an Ed25519 signature is 64 bytes.
  std::string signature(length, '\0');
  const auto* message = reinterpret_cast<const unsigned char*>(ticket.body().data());
  if (context == nullptr ||
      EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     message, ticket.body().size()) != 1) {
    return absl::InternalError("OpenSSL could not sign the ticket");
  }
  signature.resize(length);
  ticket.set_signature(std::move(signature));
  return ticket;
}

absl::StatusOr<std::unique_ptr<TicketVerifier>> TicketVerifier::FromPem(const std::string& pem) {
  auto key = std::make_unique<Key>();
  key->pkey = ReadEd25519(pem, PEM_read_bio_PUBKEY);
  if (key->pkey == nullptr) {
    return absl::InvalidArgumentError("the ticket key is not an Ed25519 public key");
  }
  return std::unique_ptr<TicketVerifier>(new TicketVerifier(std::move(key)));
}

absl::StatusOr<std::unique_ptr<TicketVerifier>> TicketVerifier::FromFile(const std::string& path,
                                                                         const std::string& flag) {
  absl::StatusOr<std::string> pem = ReadPemFile(path, flag);
  if (!pem.ok()) return pem.status();
  return NamingTheFile(FromPem(*pem), path, flag);
}

absl::StatusOr<v1::TicketBody> TicketVerifier::Verify(const v1::AdmissionTicket& ticket) const {
  if (ticket.body().empty()) {
    return absl::PermissionDeniedError("no admission ticket: the accountant admitted nothing");
  }
  MdContextPtr context(EVP_MD_CTX_new());
  if (context == nullptr ||
      EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestVerify(
          context.get(), reinterpret_cast<const unsigned char*>(ticket.signature().data()),
          ticket.signature().size(), reinterpret_cast<const unsigned char*>(ticket.body().data()),
          ticket.body().size()) != 1) {
    return absl::PermissionDeniedError(
        "the admission ticket's signature is not the accountant's ticket key's");
  }
  v1::TicketBody body;
  if (!body.ParseFromString(ticket.body())) {
    return absl::PermissionDeniedError("the admission ticket's body does not parse");
  }
  return body;
}

}  // namespace dpfleet
