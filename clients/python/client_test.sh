#!/usr/bin/env bash
# Runs client_test.py with Debian's Python (python3-grpcio, python3-protobuf) against a local
# cluster it starts and stops.
set -euo pipefail
root="$TEST_SRCDIR/dpfleet"
python=/usr/bin/python3
[[ -x $python ]] || python=python3
state="$TEST_TMPDIR/cluster"
trap 'bash "$root/deploy/local_cluster.sh" stop --state-dir "$state" >/dev/null 2>&1 || true' EXIT
eval "$(bash "$root/deploy/local_cluster.sh" start --workers 2 --state-dir "$state" \
  --bin-dir "$root" --data-dir /usr/share/datasets | grep '^export ')"
export DPFLEET_TEST_STATE_DIR="$state"
PYTHONPATH="$root/clients/python" exec "$python" "$root/clients/python/client_test.py" -v
