#!/usr/bin/env bash
# Fuzzes the WebSocket frame parser and the REST bodies (fuzz/, cargo-fuzz with libFuzzer).
# Needs the nightly toolchain. Usage: scripts/fuzz.sh [seconds per target, default 60]
# A crash leaves its input in fuzz/artifacts/<target>/: fix the cause and keep the input as a
# unit test in crates/protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for target in ws_frame rest_body; do
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=20000
done
