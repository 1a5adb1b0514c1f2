#!/usr/bin/env bash
# A scaled deployment on this machine, without Docker: one redis-server (no persistence),
# N ephemera instances sharing it, and nginx with the shipped nginx.conf in front, on
# http://localhost:${PORT:-8080}. Ctrl-C stops everything. Other EPHEMERA_* variables in the
# environment reach every instance; with PIDS_FILE set, "name=pid" lines of every process are
# written there (scripts/bench.sh measures them). NGINX_WORKERS and NGINX_WORKER_CONNECTIONS
# override nginx's worker_processes and worker_connections (for load tests). SERVER_BIN runs
# another ephemera binary instead of building and running this tree's (to compare two builds).
#
#   scripts/run-scaled.sh [N]        # N instances, default 3
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
port=${PORT:-8080}
redis_port=${REDIS_PORT:-6390}
first_instance=${FIRST_INSTANCE_PORT:-9001}

[ -n "${SERVER_BIN:-}" ] || cargo build --release --quiet
dir=$(mktemp -d)
pids=()
# Redis stops last: a draining instance still starts its members' grace there.
stop() {
  trap - EXIT INT TERM
  local servers=("${pids[@]:1}")
  if [ ${#servers[@]} -gt 0 ]; then
    kill "${servers[@]}" 2>/dev/null || true
    wait "${servers[@]}" 2>/dev/null || true
  fi
  kill "${pids[@]:0:1}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT INT TERM

# Nothing of a room may reach disk: no RDB snapshots, no AOF. Never evict room keys. No
# per-command latency histograms: nothing reads them, and they cost every command.
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --maxmemory-policy noeviction --latency-tracking no --dir "$dir" --loglevel warning &
pids+=($!)
names=("redis=$!")
# An instance refuses to start without its store: wait until Redis answers.
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

upstream=""
for i in $(seq 0 $((n - 1))); do
  p=$((first_instance + i))
  EPHEMERA_BIND_ADDR="127.0.0.1:$p" \
  EPHEMERA_REDIS_URL="redis://127.0.0.1:$redis_port" \
  EPHEMERA_PUBLIC_URL="http://localhost:$port" \
  EPHEMERA_TRUSTED_PROXIES="127.0.0.1" \
    "${SERVER_BIN:-target/release/ephemera}" &
  pids+=($!)
  names+=("instance$((i + 1))=$!")
  upstream+="        server 127.0.0.1:$p;\n"
done

# The shipped nginx.conf with this machine's listen port and instances (as the tests do).
temp=""
for t in client_body proxy fastcgi uwsgi scgi; do temp+="    ${t}_temp_path $dir/$t;\n"; done
sed -e "s|    listen 80;|    listen $port;|" \
    -e "s|^worker_processes auto;|worker_processes ${NGINX_WORKERS:-auto};|" \
    -e "s|worker_connections 16384;|worker_connections ${NGINX_WORKER_CONNECTIONS:-16384};|" \
    -e "s|set \$ephemera_app http://app:8080;|set \$ephemera_app http://ephemera_local;|" \
    -e "s|^http {|http {\n$temp    upstream ephemera_local {\n$upstream    }|" \
    nginx.conf > "$dir/nginx.conf"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx" -p "$dir" -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid;" &
pids+=($!)
names+=("nginx=$!")
[ -z "${PIDS_FILE:-}" ] || printf '%s\n' "${names[@]}" > "$PIDS_FILE"

echo "ephemera: $n instances behind nginx on http://localhost:$port (Ctrl-C stops)"
wait
