#!/usr/bin/env bash
# Builds the libFuzzer harnesses (bazel build --config=fuzz: clang, ASan, UBSan) and runs each for
# SECONDS (default 20) on a scratch copy of its seed corpus. Prints one row per harness (executions,
# corpus growth, result) and exits nonzero if any harness crashed, leaked, hit a sanitizer report or
# could not run. A crasher is kept as fuzz-crashes/<harness>-<kind>-<hash>: copy it into
# fuzz/corpus/<harness>/ once fixed, so the corpus test replays it in every build.
#
#   fuzz/run_fuzzers.sh [SECONDS] [HARNESS...]
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

seconds=${1:-20}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(accountant_fuzz admission_fuzz checkpoint_fuzz feature_shard_fuzz idx_fuzz
             job_spec_fuzz jpeg_fuzz npy_fuzz)
fi

if ! command -v clang >/dev/null; then
  echo "run_fuzzers: clang is not installed (deploy/install_deps.sh installs clang and libfuzzer-14-dev)"
  exit 1
fi
if ! bazel build --config=fuzz //fuzz:all; then
  echo "run_fuzzers: the fuzzing build failed"
  exit 1
fi
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)/fuzz
crashes="$repo/fuzz-crashes"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failures=0
rows=()
for harness in "${harnesses[@]}"; do
  corpus="$scratch/$harness"
  mkdir -p "$corpus" "$crashes"
  cp fuzz/corpus/"$harness"/* "$corpus"/ 2>/dev/null
  seeds=$(find "$corpus" -type f | wc -l)
  log="$scratch/$harness.log"
  # -rss_limit_mb: the toy trainer and the accountant's PLD fit well inside 2 GB; more is a leak.
  # Leak detection is on by default under ASan; -error_exitcode makes every report a failure.
  "$bin/$harness" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -timeout=25 -error_exitcode=77 -artifact_prefix="$crashes/$harness-" "$corpus" >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  units=$(find "$corpus" -type f | wc -l)
  if ((status == 0)); then
    result=ok
  else
    failures=$((failures + 1))
    result=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer): [a-z-]+|runtime error: .*|invariant broken: .*' "$log" |
             head -c 120)
    result="FAILED (exit $status${result:+: $result})"
    echo "run_fuzzers: $harness failed; the end of its log:"
    tail -40 "$log"
  fi
  rows+=("$(printf '%-20s %12s %8s %8s  %s' "$harness" "${execs:-?}" "$seeds" "$units" "$result")")
done

echo
echo "fuzzing: ${seconds} s per harness, ASan+UBSan (crashers under fuzz-crashes/)"
printf '%-20s %12s %8s %8s  %s\n' harness executions seeds corpus result
printf '%s\n' "${rows[@]}"
echo "fuzzing: $(( ${#harnesses[@]} - failures )) passed, $failures failed"
rmdir "$crashes" 2>/dev/null
((failures == 0))
