#!/usr/bin/env bash
# Installs what dpfleet needs, runs every test, runs each fuzz harness for 20 s
# (DPFLEET_FUZZ_SECONDS), and compiles the CUDA/NCCL variant where the CUDA toolkit is installed.
# Ends with a line "N passed, N failed, N skipped". CI runs exactly this.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash deploy/install_deps.sh || exit 1

log=$(mktemp)
bazel test --test_output=errors //... 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}

cuda_status=0
if [[ -x /usr/local/cuda/bin/nvcc && -f /usr/local/cuda/include/nccl.h ]]; then
  echo "test: CUDA toolkit found; compiling the CUDA/NCCL variant (bazel build --config=cuda //...)"
  bazel build --config=cuda //... || cuda_status=$?
else
  echo "test: no CUDA toolkit at /usr/local/cuda; skipping the CUDA/NCCL variant"
fi

passed=$(grep -cE '^//.* PASSED in ' "$log")
failed=$(grep -cE '^//.* (FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log")
skipped=$(grep -cE '^//.* SKIPPED' "$log")
# Test cases that skipped themselves (GTEST_SKIP, e.g. no root for network namespaces) pass in
# Bazel's eyes: name each with its reason, and count it as skipped.
while IFS= read -r test_log; do
  while IFS= read -r line; do
    echo "test: SKIPPED ${test_log#bazel-testlogs/} ${line}"
    skipped=$((skipped + 1))
  done < <(awk '/: Skipped$/ {getline reason; next_reason = reason}
                /^\[  SKIPPED \] .* \([0-9]+ ms\)$/ {print $4 ": " next_reason}' "$test_log")
done < <(grep -lE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' bazel-testlogs/*/*/test.log bazel-testlogs/*/test.log 2>/dev/null)
if ((test_status != 0 && failed == 0)); then failed=1; fi  # e.g. the build itself broke

# Every parser and request validator under libFuzzer with ASan and UBSan, 20 s each: a crash, leak
# or sanitizer report fails the run. Each harness counts as one test.
fuzz_log=$(mktemp)
bash fuzz/run_fuzzers.sh "${DPFLEET_FUZZ_SECONDS:-20}" 2>&1 | tee "$fuzz_log"
fuzz_status=${PIPESTATUS[0]}
fuzz_line=$(grep -E '^fuzzing: [0-9]+ passed, [0-9]+ failed$' "$fuzz_log" | tail -1)
if [[ -n "$fuzz_line" ]]; then
  read -r fuzz_passed fuzz_failed < <(sed -E 's/^fuzzing: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$fuzz_line")
  passed=$((passed + fuzz_passed))
  failed=$((failed + fuzz_failed))
fi
if ((fuzz_status != 0 && ${fuzz_failed:-0} == 0)); then
  echo "test: the fuzzing build or run failed"
  failed=$((failed + 1))
fi
rm -f "$fuzz_log"
if ((cuda_status != 0)); then
  echo "test: the CUDA/NCCL variant failed to compile"
  failed=$((failed + 1))
fi
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
