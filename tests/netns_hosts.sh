#!/usr/bin/env bash
# Test "machines" on one Linux box: each host is a network namespace with one interface (eth0) and
# its own address, 10.77.0.(I+1)/24 for host I, plugged by a veth pair into a bridge that lives in
# a namespace of its own. Nothing touches the machine's own network namespace, and the hosts reach
# only each other. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
#
#   netns_hosts.sh up PREFIX             # the switch namespace PREFIX-sw and its bridge
#   netns_hosts.sh add PREFIX I          # host I: namespace PREFIX-hI, prints its address
#   netns_hosts.sh kill PREFIX I         # SIGKILLs every process of host I and unplugs it
#   netns_hosts.sh down PREFIX           # kills and removes every host, then the switch
#   netns_hosts.sh address I             # prints host I's address
#
# A process runs on host I with: ip netns exec PREFIX-hI COMMAND...
set -euo pipefail

command=${1:-}
die() { echo "netns_hosts: $*" >&2; exit 1; }
address() { echo "10.77.0.$(($1 + 1))"; }

# This script's ancestors: a process that entered a test host (a test that runs as the operator's
# machine) and calls this script is never killed by it.
ancestors=" "
pid=$$
while ((pid > 1)); do
  ancestors+="$pid "
  pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
done

kill_namespace() {  # kill_namespace NAME: SIGKILL its processes, wait for them, delete it
  local pids=
  for pid in $(ip netns pids "$1" 2>/dev/null || true); do
    [[ $ancestors == *" $pid "* ]] || pids+="$pid "
  done
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for pid in $pids; do
      while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    done
  fi
  ip netns delete "$1" 2>/dev/null || true
}

case $command in
  up)
    prefix=${2:?PREFIX}
    ip netns add "$prefix-sw" || die "cannot create network namespaces (needs root): ip netns add failed"
    ip -n "$prefix-sw" link add br0 type bridge
    ip -n "$prefix-sw" link set br0 up
    ip -n "$prefix-sw" link set lo up
    ;;
  add)
    prefix=${2:?PREFIX}
    index=${3:?I}
    [[ $index =~ ^[0-9]+$ ]] && ((index < 250)) || die "host index must be 0..249, got $index"
    host=$prefix-h$index
    ip netns add "$host"
    # Both ends are made inside the namespaces: the veth never exists in the machine's own.
    ip -n "$host" link add eth0 type veth peer name "h$index" netns "$prefix-sw"
    ip -n "$host" addr add "$(address "$index")/24" dev eth0
    ip -n "$host" link set lo up
    ip -n "$host" link set eth0 up
    ip -n "$prefix-sw" link set "h$index" master br0
    ip -n "$prefix-sw" link set "h$index" up
    address "$index"
    ;;
  kill)
    prefix=${2:?PREFIX}
    index=${3:?I}
    kill_namespace "$prefix-h$index"
    ;;
  down)
    prefix=${2:?PREFIX}
    for ns in $(ip netns list | cut -d' ' -f1 | grep -E "^$prefix-h[0-9]+$" || true); do
      kill_namespace "$ns"
    done
    kill_namespace "$prefix-sw"
    ;;
  address)
    address "${2:?I}"
    ;;
  *)
    echo "usage: $0 up|add|kill|down|address ..." >&2
    exit 2
    ;;
esac
