#!/usr/bin/env bash
# deploy/slurm/dpfleet.sbatch on a real Slurm cluster of 2 nodes: this test starts munged, and
# slurmctld and two slurmd (Debian's slurm-wlm) each on a test host of its own (a network namespace
# with its own address, tests/netns_hosts.sh) from a generated slurm.conf, submits the script with
# sbatch --wait for 2 nodes, and checks that the 2-worker DP job it runs SUCCEEDED and was charged.
# Needs root, iproute2 and the Slurm packages; without them it reports SKIPPED with the reason
# (gtest's format, which deploy/test.sh counts).
set -uo pipefail

runfiles=${TEST_SRCDIR:?}/dpfleet
# Under /tmp, not the test's folder: munge wants a short socket path on a world-searchable path.
work=$(mktemp -d /tmp/dpfleet-slurm.XXXXXX)
chmod 755 "$work"
hosts="bash $runfiles/tests/netns_hosts.sh"
prefix=dps$$
stop_daemons() {
  for pidfile in "$work"/slurmd-*.pid "$work/slurmctld.pid" "$work/munged.pid"; do
    [[ -s $pidfile ]] && kill -TERM "$(cat "$pidfile")" 2>/dev/null
  done
  sleep 1
  $hosts down "$prefix" >/dev/null 2>&1
  rm -rf "$work"
}
trap stop_daemons EXIT

skip() {
  echo "tests/slurm_test.sh: Skipped"
  echo "$*"
  echo "[  SKIPPED ] SlurmTest.SbatchRunsADpJobToSucceeded (0 ms)"
  exit 0
}
fail() {
  echo "FAIL: $*"
  for log in "$work"/*.log "$work"/state/logs-*/*.log "$work/job.out"; do
    [[ -f $log ]] && { echo "--- $log"; tail -n 40 "$log"; }
  done
  exit 1
}

((EUID == 0)) || skip "needs root to run slurmd and munged"
for daemon in munged slurmctld slurmd sbatch; do
  command -v "$daemon" >/dev/null || skip "no $daemon: install slurmctld slurmd slurm-client munge"
done
# Host 1: the controller; hosts 2 and 3: the nodes n1 and n2. The daemons enter their host with
# nsenter, not `ip netns exec`, which would hide the cgroup file system slurmd looks for.
$hosts up "$prefix" >/dev/null 2>&1 || skip "cannot make network namespaces for the Slurm hosts"
for host in 1 2 3; do $hosts add "$prefix" "$host" >/dev/null || skip "cannot add test host $host"; done
on_host() { local host=$1; shift; nsenter --net="/run/netns/$prefix-h$host" "$@"; }

# munge with a key and socket of its own, so nothing else on the machine is touched.
dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge.key"
mkdir -m 755 "$work/munge"
munged --force --key-file "$work/munge.key" --socket "$work/munge/munge.socket" \
  --pid-file "$work/munged.pid" --log-file "$work/munged.log" --seed-file "$work/munge.seed" ||
  skip "munged cannot start: $(tail -n 3 "$work/munged.log" 2>/dev/null)"

# Every host has its own ports, so the defaults are free. All hosts share this machine's name, so
# the nodes are told apart by name (slurmd -N) and reached at their addresses.
mkdir -p "$work/spool/ctld" "$work/spool/d"
cat >"$work/slurm.conf" <<EOF
ClusterName=dpfleet-test
SlurmctldHost=$(hostname -s)($($hosts address 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$work/spool/ctld
SlurmdSpoolDir=$work/spool/d/%n
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd-%n.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=n1 NodeHostname=$(hostname -s) NodeAddr=$($hosts address 2) CPUs=1 State=UNKNOWN
NodeName=n2 NodeHostname=$(hostname -s) NodeAddr=$($hosts address 3) CPUs=1 State=UNKNOWN
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/slurm.conf

on_host 1 slurmctld -f "$SLURM_CONF" ||
  skip "slurmctld cannot start: $(tail -n 3 "$work/slurmctld.log")"
on_host 2 slurmd -f "$SLURM_CONF" -N n1 || skip "slurmd cannot start: $(tail -n 3 "$work"/slurmd-*.log)"
on_host 3 slurmd -f "$SLURM_CONF" -N n2 || skip "slurmd cannot start: $(tail -n 3 "$work"/slurmd-*.log)"
deadline=$((SECONDS + 60))
until (($(on_host 1 sinfo -h -N -o '%T' 2>/dev/null | grep -cE '^(idle|mixed)') == 2)); do
  ((SECONDS < deadline)) || skip "the Slurm nodes did not come up: $(on_host 1 sinfo -N 2>&1)"
  sleep 0.5
done
echo "slurm: nodes n1 ($($hosts address 2)) and n2 ($($hosts address 3)) up"

# A cluster for the allocation: the services and a worker on n1, a worker on n2; a 40-step DP-SGD
# job over both.
start=$SECONDS
on_host 1 env DPFLEET_BIN_DIR="$runfiles" DPFLEET_STATE_DIR="$work/state" DPFLEET_THREADS=1 \
  DPFLEET_BUDGET="fashion-mnist 8 1e-5" \
  sbatch --wait --nodes 2 --output "$work/job.out" --chdir "$work" \
  "$runfiles/deploy/slurm/dpfleet.sbatch" --dataset fashion-mnist --model mlp --workers 2 \
  --batch-size 600 --steps 40 --clip-norm 1 --noise-multiplier 1 --delta 1e-5 \
  --optimizer sgd --learning-rate 0.5 --momentum 0.9 --seed 3
status=$?
cat "$work/job.out"
((status == 0)) || fail "sbatch --wait exited $status"
grep -q "SUCCEEDED" "$work/job.out" || fail "the DP job did not report SUCCEEDED"
grep -q "SUCCEEDED  mlp on fashion-mnist, 2 worker(s)" "$work/job.out" || fail "not a 2-worker job"
grep -q "2 worker(s)$" "$work/job.out" || fail "the launcher did not start a worker on each node"
grep -qE "result: test accuracy [0-9.]+%" "$work/job.out" || fail "no test accuracy in the output"
grep -qE "admitted \(committed\) +[0-9.]+" "$work/job.out" || fail "no budget in the output"
# The ledger outlives the allocation: the budget spent is still there for the next one.
[[ -s $work/state/ledger.db ]] || fail "the ledger was not kept in DPFLEET_STATE_DIR"
echo "slurm: the sbatch job ran the DP job to SUCCEEDED in $((SECONDS - start)) s"
echo "1 passed, 0 failed"
