#!/usr/bin/env bash
# Installs every Debian package dpfleet needs to build, test and run. Safe to run twice:
# apt-get skips what is already installed. Needs root (or sudo).
set -euo pipefail

packages=(
  # Build system (offline Bazel 4) and compilers.
  bazel-bootstrap bazel-rules-java g++
  # RPC and serialization.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # Tensors, collectives, and a fast BLAS (the reference BLAS is ~20x slower for LibTorch).
  libtorch-dev libgloo-dev libopenblas0-openmp
  # Ledger and job store; the CSPRNG behind privacy noise (OpenSSL's DRBG); the cluster's
  # certificates (deploy/make_certs.sh).
  libsqlite3-dev libssl-dev openssl
  # Multi-host tests: test machines as network namespaces (ip netns).
  iproute2
  # Offline validation of the Kubernetes manifests.
  python3-yaml
  # The Slurm deployment test: a Slurm controller and node daemon on this machine.
  slurmctld slurmd slurm-client munge
  # Feature extraction's JPEG decoder.
  libjpeg62-turbo-dev
  # Tests and benchmarks; clang and libFuzzer for the fuzz harnesses (fuzz/, --config=fuzz).
  libgtest-dev libgmock-dev libbenchmark-dev clang libfuzzer-14-dev
  # Real data for the demo job.
  dataset-fashion-mnist
  # dpctl plot's PNG output and the report's browser test (headless Chromium).
  chromium
  # The Python client (clients/python): gRPC, protobuf, a progress bar.
  python3-grpcio python3-protobuf python3-tqdm
)

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install_deps: all packages present"
fi
