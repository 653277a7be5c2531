#!/usr/bin/env bash
# The demo: installs what dpfleet needs, builds it, starts a local cluster on loopback (accountant,
# coordinator, 2 workers), gives Fashion-MNIST a privacy budget, trains a DP-SGD model on it to
# (epsilon = 2, delta = 1e-5), prints test accuracy and epsilon spent, shows the budget, and stops
# the cluster.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash deploy/install_deps.sh
bazel build //accountant:dpfleet-accountant //coordinator:dpfleet-coordinator \
  //worker:dpfleet-worker //dpctl:dpctl

state_dir=$(mktemp -d -t dpfleet-demo-XXXXXX)
trap 'bash deploy/local_cluster.sh stop --state-dir "$state_dir"' EXIT
eval "$(bash deploy/local_cluster.sh start --workers 2 --state-dir "$state_dir")"
dpctl=bazel-bin/dpctl/dpctl

"$dpctl" register-dataset fashion-mnist --epsilon 8 --delta 1e-5
"$dpctl" submit --dataset fashion-mnist --model mlp --workers 2 \
  --batch-size 512 --epochs 2 --clip-norm 1 --target-epsilon 2 --delta 1e-5 \
  --optimizer sgd --learning-rate 0.5 --momentum 0.9 --name demo --watch
"$dpctl" budget fashion-mnist
