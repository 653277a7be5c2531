#!/usr/bin/env bash
# Makes a dpfleet cluster's certificates with openssl: one cluster CA, and for each principal a
# key and a certificate the CA signed. A certificate names its principal in its subject's common
# name and its role in its one subjectAltName, DNS:<role>.dpfleet, which is what the services
# authorise and what a client checks the server it reaches against (common/identity.h).
#
#   deploy/make_certs.sh DIR [NAME:ROLE ...]
#
# ROLE is admin, submitter, reader, coordinator, worker or accountant. The CA (DIR/ca.pem,
# DIR/ca.key) is made on the first call and reused after; each principal gets DIR/NAME.pem and
# DIR/NAME.key (mode 600), kept if they already exist. Keys are ECDSA P-256; certificates last
# 825 days.
#
# With the CA comes the cluster's ticket key pair (Ed25519): DIR/ticket.key (mode 600) is the
# accountant's, which signs admission tickets; DIR/ticket.pub goes to every worker, which runs
# no step without a ticket it verifies.
set -euo pipefail

die() { echo "make_certs: $*" >&2; exit 1; }
(($# >= 1)) || die "usage: $0 DIR [NAME:ROLE ...]"
command -v openssl >/dev/null || die "openssl is missing (Debian package openssl)"
dir=$1
shift
mkdir -p "$dir"
umask 077

if [[ ! -s $dir/ca.pem || ! -s $dir/ca.key ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/O=dpfleet/CN=dpfleet cluster CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null || die "cannot make the CA in $dir"
  chmod 644 "$dir/ca.pem"
fi
if [[ ! -s $dir/ticket.key || ! -s $dir/ticket.pub ]]; then
  openssl genpkey -algorithm ed25519 -out "$dir/ticket.key" 2>/dev/null &&
    openssl pkey -in "$dir/ticket.key" -pubout -out "$dir/ticket.pub" 2>/dev/null ||
    die "cannot make the ticket key pair in $dir"
  chmod 600 "$dir/ticket.key"
  chmod 644 "$dir/ticket.pub"
fi

for entry in "$@"; do
  name=${entry%%:*}
  role=${entry#*:}
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad principal name '$name'"
  case $role in
    admin | submitter | reader | coordinator | worker | accountant) ;;
    *) die "'$entry': role must be admin, submitter, reader, coordinator, worker or accountant" ;;
  esac
  [[ -s $dir/$name.pem && -s $dir/$name.key ]] && continue
  extensions=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n%s\n' \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:$role.dpfleet" >"$extensions"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/O=dpfleet/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null ||
    die "cannot make a key for $name"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 825 -extfile "$extensions" -out "$dir/$name.pem" 2>/dev/null ||
    die "cannot sign $name's certificate"
  rm -f "$dir/$name.csr" "$extensions"
  chmod 600 "$dir/$name.key"
  chmod 644 "$dir/$name.pem"
done
