#!/usr/bin/env bash
# The utility table: runs recipes (default: every recipes/fmnist_*.textproto) one after another on
# a local cluster on loopback (2 workers, mutual TLS, a fresh ledger) and prints, per recipe, the
# model, epsilon and delta spent, steps, test accuracy, wall time, examples/s (expected examples
# per step x steps / wall time) and the published figure it is compared with (its "Published:"
# comment line).
#
#   bench/utility.sh [RECIPE.textproto...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

recipes=("$@")
if ((${#recipes[@]} == 0)); then recipes=(recipes/fmnist_*.textproto); fi
bazel build //accountant:dpfleet-accountant //coordinator:dpfleet-coordinator \
  //worker:dpfleet-worker //dpctl:dpctl
dpctl=bazel-bin/dpctl/dpctl
state_dir=$(mktemp -d -t dpfleet-utility-XXXXXX)
trap 'bash deploy/local_cluster.sh stop --state-dir "$state_dir" >/dev/null' EXIT
eval "$(bash deploy/local_cluster.sh start --workers 2 --state-dir "$state_dir")"
# A budget for the benchmark's own ledger, large enough for every recipe in turn.
"$dpctl" register-dataset fashion-mnist --epsilon 1000 --delta 1e-5 >/dev/null

rows=()
for recipe in "${recipes[@]}"; do
  echo "utility: $recipe" >&2
  job=$("$dpctl" submit --spec "$recipe" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  "$dpctl" watch "$job" >/dev/null || true
  published=$(sed -n 's/^# Published: //p' "$recipe" | head -1)
  rows+=("$("$dpctl" get "$job" --json | python3 -c '
import json, sys
job, recipe, published = json.load(sys.stdin), sys.argv[1], sys.argv[2]
spec, result = job["spec"], job.get("result", {})
steps = int(result.get("steps_run", 0))
wall = float(result.get("wall_seconds", 0))
batch = job.get("sampling_rate", 0) * int(job.get("dataset_size", 0))
accuracy = result.get("test_accuracy")
print("| %s | %s | %.3f | %g | %d | %s | %.0f s | %s | %s |" % (
    recipe.split("/")[-1].replace(".textproto", ""), spec["model"],
    result.get("epsilon_spent", 0), result.get("delta", spec.get("delta", 0)), steps,
    "%.2f%%" % (100 * accuracy) if accuracy is not None else job["state"], wall,
    "%.0f" % (batch * steps / wall) if wall > 0 else "-", published or "-"))
' "$recipe" "$published")")
done

echo
echo "| recipe | model | epsilon | delta | steps | test accuracy | wall time | examples/s | published |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
