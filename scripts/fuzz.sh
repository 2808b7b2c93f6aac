#!/usr/bin/env bash
# Runs every fuzz target briefly (SECONDS_PER_TARGET, default 30). Needs cargo-fuzz and a
# nightly toolchain (`cargo install cargo-fuzz`); the first build takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
per_target="${SECONDS_PER_TARGET:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo +nightly fuzz list); do
  echo "==> fuzz $target (${per_target}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$per_target"
done
