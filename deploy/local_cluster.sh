#!/usr/bin/env bash
# Runs a dpfleet cluster on loopback: one accountant, one coordinator and N workers, each on a free
# port, with its state (SQLite ledger, job store, logs, pids, ports, certificates) under one folder.
# Every channel is mutual TLS: the cluster's CA and each component's certificate are made with
# deploy/make_certs.sh under STATE/tls, with certificates for an admin and a reader to use dpctl
# with (`env` exports the admin's). Each server also answers plaintext health checks on the port
# in STATE/NAME.health_port, and records every call it refused in STATE/NAME.audit.log.
#
#   deploy/local_cluster.sh start [--workers N] [--state-dir DIR] [--bin-dir DIR] [--data-dir DIR]
#                                 [--collective-timeout-s S] [--resume-wait-s S]
#   deploy/local_cluster.sh env   [--state-dir DIR]   # prints the exports dpctl needs
#   deploy/local_cluster.sh restart-coordinator [--state-dir DIR]   # on the same port, same job store
#   deploy/local_cluster.sh restart-worker --worker I [--state-dir DIR]   # a replacement, same data
#   deploy/local_cluster.sh stop  [--state-dir DIR]
#
# --data-dir is the folder of datasets every worker loads; "%w" in it stands for the worker's index
# (--data-dir /data/worker-%w), so that each worker can hold its own part of a dataset.
# Binaries come from --bin-dir (default: the workspace's bazel-bin); build them with
# `bazel build //accountant:dpfleet-accountant //coordinator:dpfleet-coordinator //worker:dpfleet-worker //dpctl:dpctl`.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
command=${1:-}
shift || true
workers=2
state_dir=${DPFLEET_STATE_DIR:-$repo/.state/local}
bin_dir=$repo/bazel-bin
data_dir=/usr/share/datasets
collective_timeout_s=60
resume_wait_s=10
ready_timeout_s=60
worker_index=
while (($#)); do
  case $1 in
    --workers) workers=$2; shift 2 ;;
    --state-dir) state_dir=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --collective-timeout-s) collective_timeout_s=$2; shift 2 ;;
    --resume-wait-s) resume_wait_s=$2; shift 2 ;;
    --worker) worker_index=$2; shift 2 ;;
    *) echo "local_cluster: unknown argument $1" >&2; exit 2 ;;
  esac
done

die() { echo "local_cluster: $*" >&2; exit 1; }

binary() {  # binary NAME PACKAGE: path of a built binary, or die naming the build command
  local path=$bin_dir/$2/$1
  [[ -x $path ]] || die "$path is missing; build it with: bazel build //$2:$1"
  echo "$path"
}

wait_for_file() {  # wait_for_file PATH WHAT PIDFILE
  local deadline=$((SECONDS + ready_timeout_s))
  until [[ -s $1 ]]; do
    kill -0 "$(cat "$3")" 2>/dev/null || die "$2 exited during start-up; see ${3%.pid}.log"
    ((SECONDS < deadline)) || die "$2 did not start within ${ready_timeout_s}s; see ${3%.pid}.log"
    sleep 0.1
  done
}

start_process() {  # start_process NAME COMMAND...: runs in the background, logs and pid in state_dir
  local name=$1
  shift
  "$@" >"$state_dir/$name.log" 2>&1 &
  echo $! >"$state_dir/$name.pid"
}

tls_env() {  # tls_env NAME: the environment dpctl needs to act as principal NAME
  echo "DPFLEET_TLS_CA=$state_dir/tls/ca.pem DPFLEET_TLS_CERT=$state_dir/tls/$1.pem DPFLEET_TLS_KEY=$state_dir/tls/$1.key"
}

print_env() {
  [[ -s $state_dir/coordinator.port && -s $state_dir/accountant.port ]] ||
    die "no cluster running under $state_dir"
  echo "export DPFLEET_COORDINATOR=127.0.0.1:$(cat "$state_dir/coordinator.port")"
  echo "export DPFLEET_ACCOUNTANT=127.0.0.1:$(cat "$state_dir/accountant.port")"
  echo "export $(tls_env admin)"
}

make_certs() {  # make_certs NAME:ROLE...: certificates under STATE/tls, kept across restarts
  bash "$repo/deploy/make_certs.sh" "$state_dir/tls" "$@" >&2 || die "cannot make certificates"
}

tls_flags() {  # tls_flags NAME: a server's TLS, health and audit flags
  echo "--tls_ca $state_dir/tls/ca.pem --tls_cert $state_dir/tls/$1.pem --tls_key $state_dir/tls/$1.key"
  echo "--health_listen 127.0.0.1:0 --health_port_file $state_dir/$1.health_port"
  echo "--audit_log $state_dir/$1.audit.log"
}

stop() {
  shopt -s nullglob
  local pids=()
  for pidfile in "$state_dir"/*.pid; do
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$pidfile"
  done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$state_dir"/*.port "$state_dir"/*.health_port
}

start_coordinator() {  # start_coordinator PORT (0: any free port)
  local coordinator
  coordinator=$(binary dpfleet-coordinator coordinator)
  rm -f "$state_dir/coordinator.port"
  # shellcheck disable=SC2046
  start_process coordinator "$coordinator" --accountant "127.0.0.1:$(cat "$state_dir/accountant.port")" \
    $(tls_flags coordinator) --jobs_db "$state_dir/jobs.db" \
    --listen "127.0.0.1:$1" --port_file "$state_dir/coordinator.port" \
    --collective_timeout_s "$collective_timeout_s" --resume_wait_s "$resume_wait_s"
  wait_for_file "$state_dir/coordinator.port" coordinator "$state_dir/coordinator.pid"
}

wait_for_workers() {  # wait_for_workers N: until the coordinator sees N workers alive
  local dpctl deadline=$((SECONDS + ready_timeout_s)) alive=0
  dpctl=$(binary dpctl dpctl)
  while ((alive < $1)); do
    # shellcheck disable=SC2046
    alive=$(env $(tls_env admin) DPFLEET_COORDINATOR=127.0.0.1:$(cat "$state_dir/coordinator.port") \
      "$dpctl" workers 2>/dev/null | tail -n 1 | cut -d' ' -f1)
    alive=${alive:-0}
    for pidfile in "$state_dir"/worker-*.pid; do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || die "$(basename "${pidfile%.pid}") exited; see ${pidfile%.pid}.log"
    done
    ((SECONDS < deadline)) || die "only $alive of $1 workers registered within ${ready_timeout_s}s"
    ((alive >= $1)) || sleep 0.2
  done
}

start_worker() {  # start_worker I: worker I on the data folder the cluster was started with
  local worker data
  worker=$(binary dpfleet-worker worker)
  data=$(cat "$state_dir/data_dir")
  make_certs "worker-$1:worker"
  # Workers share this machine's cores: one intra-op thread each, and passive OpenMP waiting.
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE start_process "worker-$1" "$worker" \
    --coordinator "127.0.0.1:$(cat "$state_dir/coordinator.port")" $(tls_flags "worker-$1") \
    --data_dir "${data//%w/$1}" --port_file "$state_dir/worker-$1.port" \
    --ticket_public_key "$state_dir/tls/ticket.pub" --threads 1
}

# Starts worker I again (after it died): a replacement holding the same part of the data.
restart_worker() {
  [[ $worker_index =~ ^[0-9]+$ ]] || die "restart-worker needs --worker I"
  [[ -s $state_dir/data_dir && -s $state_dir/coordinator.port ]] || die "no cluster was started under $state_dir"
  local pid
  pid=$(cat "$state_dir/worker-$worker_index.pid" 2>/dev/null || true)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && die "worker-$worker_index (pid $pid) is still running"
  mv -f "$state_dir/worker-$worker_index.log" "$state_dir/worker-$worker_index.previous.log" 2>/dev/null || true
  rm -f "$state_dir/worker-$worker_index.port"
  start_worker "$worker_index"
  wait_for_file "$state_dir/worker-$worker_index.port" "worker-$worker_index" "$state_dir/worker-$worker_index.pid"
  echo "local_cluster: worker-$worker_index restarted" >&2
}

# Restarts the coordinator on its old port (so workers find it again) with the same job store.
restart_coordinator() {
  [[ -s $state_dir/coordinator.port ]] || die "no coordinator was started under $state_dir"
  local port pid
  port=$(cat "$state_dir/coordinator.port")
  pid=$(cat "$state_dir/coordinator.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  mv -f "$state_dir/coordinator.log" "$state_dir/coordinator.previous.log" 2>/dev/null || true
  start_coordinator "$port"
  shopt -s nullglob
  local worker_pids=("$state_dir"/worker-*.pid)
  wait_for_workers "${#worker_pids[@]}"
  echo "local_cluster: coordinator restarted on port $port" >&2
}

start() {
  local accountant
  accountant=$(binary dpfleet-accountant accountant)
  binary dpfleet-worker worker >/dev/null
  binary dpfleet-coordinator coordinator >/dev/null
  binary dpctl dpctl >/dev/null
  mkdir -p "$state_dir"
  if compgen -G "$state_dir/*.pid" >/dev/null; then
    die "a cluster may already run under $state_dir; run '$0 stop --state-dir $state_dir' first"
  fi
  rm -f "$state_dir"/*.port
  trap 'stop; exit 1' ERR
  make_certs accountant:accountant coordinator:coordinator admin:admin reader:reader

  # shellcheck disable=SC2046
  start_process accountant "$accountant" --ledger "$state_dir/ledger.db" \
    $(tls_flags accountant) --ticket_key "$state_dir/tls/ticket.key" \
    --port_file "$state_dir/accountant.port"
  wait_for_file "$state_dir/accountant.port" accountant "$state_dir/accountant.pid"
  start_coordinator 0
  echo "$data_dir" >"$state_dir/data_dir"
  for ((i = 0; i < workers; i++)); do start_worker "$i"; done
  wait_for_workers "$workers"
  trap - ERR
  echo "local_cluster: accountant, coordinator and $workers worker(s) running under $state_dir" >&2
  print_env
}

case $command in
  start) start ;;
  restart-coordinator) restart_coordinator ;;
  restart-worker) restart_worker ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env|restart-coordinator|restart-worker [--worker I] [--workers N] [--state-dir DIR] [--bin-dir DIR] [--data-dir DIR]" >&2; exit 2 ;;
esac
