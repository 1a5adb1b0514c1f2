#!/usr/bin/env bash
# The benchmark: redis-server, two release instances and nginx with the shipped proxy settings
# (scripts/run-scaled.sh), driven by ephemera-loadgen on the same machine. Writes one JSON per
# run under docs/benchmarks/results/ (override with OUT=dir); the servers log to
# target/bench-topology.log. Then: target/release/bench-report docs/benchmarks/results docs/benchmarks docs/benchmarks/before
# (the last argument adds the before-and-after table: before/ is the first, unoptimised run).
#
#   scripts/bench.sh [scenario...]    # default: every scenario below
#   SERVER_BIN=/tmp/old-ephemera OUT=/tmp/old scripts/bench.sh idle-rooms   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=${OUT:-docs/benchmarks/results}
mkdir -p "$out"
# Two builds: together they would unify features and rebuild the server run-scaled.sh builds.
cargo build --release --quiet
cargo build --release --quiet -p ephemera-loadgen

# Tens of thousands of proxied sockets need more than the default 28k ephemeral ports per
# nginx-to-instance address pair; the previous setting comes back at exit. The topology listens
# below 20000 (16390, 18080, 19001-19003), so no outgoing connection can hold a port an instance
# is about to listen on.
ports_before=$(cat /proc/sys/net/ipv4/ip_local_port_range)
echo "20000 65535" > /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null \
  || echo "note: cannot widen the ephemeral port range; big runs may run out of ports" >&2

port=18080
pids=$(mktemp)
topology=""
watch=""
trap 'stop_topology; rm -f "$pids"
      echo "$ports_before" > /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true' EXIT INT TERM

# topology N NGINX_WORKERS: redis-server, N instances and nginx (scripts/run-scaled.sh), ready.
topology() {
  local n=$1 workers=$2
  # Limits meant for the internet would throttle a load test from a few loopback addresses.
  EPHEMERA_ROOM_CREATE_PER_MINUTE=1000000 EPHEMERA_MAX_CONNECTIONS_PER_IP=1000000 \
  EPHEMERA_CONNECT_RATE_PER_SECOND=1000000 EPHEMERA_CONNECT_RATE_PER_IP_PER_SECOND=1000000 \
  EPHEMERA_JOINS_PER_MINUTE=1000000 EPHEMERA_READS_PER_MINUTE=1000000 EPHEMERA_MAX_USERS_LIMIT=1000 \
  EPHEMERA_MAX_ROOMS_PER_CLIENT=1000000 EPHEMERA_ROOM_MESSAGE_RATE_PER_SECOND=1000000 \
  EPHEMERA_ROOM_JOIN_RATE_PER_SECOND=1000000 \
  NGINX_WORKERS=$workers NGINX_WORKER_CONNECTIONS=20000 \
  PORT=$port REDIS_PORT=16390 FIRST_INSTANCE_PORT=19001 PIDS_FILE=$pids \
    scripts/run-scaled.sh "$n" >> target/bench-topology.log 2>&1 &
  topology=$!
  # The instances first: asking nginx before they listen would mark them failed for a while.
  local urls=()
  for i in $(seq "$n"); do urls+=("http://127.0.0.1:$((19000 + i))"); done
  for url in "${urls[@]}" "http://127.0.0.1:$port"; do
    for _ in $(seq 600); do
      [ -s "$pids" ] && curl -sf "$url/readyz" >/dev/null && break
      sleep 0.1
    done
    curl -sf "$url/readyz" >/dev/null || { echo "$url did not start" >&2; exit 1; }
  done
  watch=$(paste -sd, "$pids")
}

stop_topology() {
  [ -z "$topology" ] && return
  kill "$topology" 2>/dev/null || true
  wait "$topology" 2>/dev/null || true
  topology=""
  : > "$pids"
}

: > target/bench-topology.log
lg=target/release/ephemera-loadgen
nginx="--http http://127.0.0.1:$port --ws ws://127.0.0.1:$port"
direct="--http http://127.0.0.1:19001 --ws ws://127.0.0.1:19001,ws://127.0.0.1:19002"

first=1
run() {
  local name=$1
  shift
  # The previous run's members stay online for the presence grace (10 s) after they leave;
  # their departures are work this run must not measure.
  [ "$first" = 1 ] || sleep 12
  first=0
  echo "== $name: $*"
  "$lg" "$@" --watch "$watch" --out "$out/$name.json" | grep -E '"(deliveries_per_second|per_second|long_per_second|lost_percent|longest_ms|period_s|lost|gaps|duplicates|p50|p99|join_ms|settle_ms|unsettled|connected|refused)"'
}

scenarios=${*:-"pauses floor light fanout-nginx fanout-mix fanout-direct idle-rooms big-room join-storm churn idle idle-100k"}
for s in $scenarios; do
  # Every run but pauses and floor (no server) and the idle ones (below) is on the target
  # topology: two instances.
  case $s in
    pauses|floor) stop_topology ;;
    idle) stop_topology; topology 3 8 ;;
    idle-100k) stop_topology; topology 6 16 ;;
    *) [ -n "$topology" ] || topology 2 4 ;;
  esac
  case $s in
    # No server at all: how long the machine keeps a thread that is ready to run from running.
    # Then beside as many idle sockets as 1,000 rooms put on the machine (below): what sockets
    # cost by merely existing, whatever holds them.
    pauses)
      run pauses pauses --duration 60
      run pauses-beside-79200-sockets pauses --duration 60 --idle-sockets 79200 ;;
    # No server at all: what one write per delivery costs this machine (the reader is a
    # tokio process like the load generator).
    floor) run floor floor --members 1000 --rate 50000 --duration 20 ;;
    light) run light fanout $nginx --rooms 50 --members 20 --rate 10 --duration 20 ;;
    fanout-nginx)
      for rate in 20 35 50 65 80 95; do
        run "fanout-nginx-$rate" fanout $nginx --rooms 50 --members 20 --rate "$rate" --duration 20
      done
      # The throughput target: 55k/s sustained for 60 s.
      run fanout-nginx-55 fanout $nginx --rooms 50 --members 20 --rate 55 --duration 60 ;;
    # The conversation's events beside messages: one send in ten reacts to or edits the
    # sender's latest message (each an event every member gets, like a message).
    fanout-mix) run fanout-mix-50 fanout $nginx --rooms 50 --members 20 --rate 50 --duration 20 --mix 10 ;;
    fanout-direct)
      for rate in 50 100; do
        run "fanout-direct-$rate" fanout $direct --rooms 50 --members 20 --rate "$rate" --duration 20
      done ;;
    # The same clients both times (1,000 rooms of 20 take two processes, so 10 rooms alone get
    # two as well: a room's members are spread over the processes); 60 s, as tails are noisy.
    # The third run holds as many idle sockets as the 990 idle rooms add (19,800 members: their
    # clients', nginx's two and the instances' sockets), with no server work for them.
    idle-rooms)
      for rooms in 10 1000; do
        run "idle-rooms-10-of-$rooms" idle-rooms $nginx --rooms "$rooms" --active 10 --members 20 --rate 10 --duration 60 --procs 2
      done
      run idle-rooms-10-beside-79200-sockets idle-rooms $nginx --rooms 10 --active 10 --members 20 --rate 10 --duration 60 --procs 2 --idle-sockets 79200 ;;
    big-room) run big-room big-room $nginx --rooms 1 --members 500 --rate 10 --duration 20 ;;
    # Every process here may hold at most 20000 files (ulimit -n; CAP_SYS_RESOURCE is withheld,
    # so not even root raises it): two instances hold at most ~2 x 19,900 sockets. 51,000 idle
    # WebSockets take three instances (17,000 each) and 8 nginx workers (~12,750 files each).
    idle) run idle idle $nginx --rooms 2550 --members 20 --duration 300 --procs 3 --sources 16 --ramp 500 ;;
    # The stretch: 102,000 take six instances, 16 nginx workers and six client processes.
    idle-100k) run idle-100k idle $nginx --rooms 5100 --members 20 --duration 300 --procs 6 --sources 16 --ramp 500 ;;
    # 10,000 joins fill 1,000 rooms; 1,000 more, one per room, must each be refused (4403).
    join-storm) run join-storm join-storm $nginx --rooms 1000 --members 10 --over 1 --duration 5 --procs 2 --ramp 1000 ;;
    churn) run churn churn $nginx --rooms 50 --members 20 --rate 10 --duration 20 --churn 3 --procs 2 ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
