#!/usr/bin/env bash
# Runs every fuzz target briefly (SECONDS_PER_TARGET, default 30). Needs cargo-fuzz and a
# nightly toolchain (`cargo install cargo-fuzz`); the first build takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
per_target="${SECONDS_PER_TARGET:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Seed the corpora with the golden fixtures, so fuzzing starts from realistic inputs.
mkdir -p corpus/stream_decoders corpus/sse_parser corpus/request_decoders corpus/response_decoders
cp ../tests/fixtures/*/*.sse corpus/stream_decoders/ 2>/dev/null || true
cp ../tests/fixtures/*/*.sse corpus/sse_parser/ 2>/dev/null || true
cp ../tests/fixtures/*/*request*.json corpus/request_decoders/ 2>/dev/null || true
cp ../tests/fixtures/*/*response*.json corpus/response_decoders/ 2>/dev/null || true
# relay_path: one protocol byte (0 openai, 1 anthropic, 2 dashscope, 3 minimax), cut lengths up
# to a zero byte, then the upstream's recorded stream.
mkdir -p corpus/relay_path
for dialect in openai anthropic dashscope minimax; do
  case $dialect in openai) pick=0 ;; anthropic) pick=1 ;; dashscope) pick=2 ;; minimax) pick=3 ;; esac
  for transcript in ../tests/fixtures/$dialect/stream_*.sse; do
    case $transcript in *expected*) continue ;; esac
    { printf "\\$(printf '%03o' "$pick")\\007\\023\\001\\000"; cat "$transcript"; } \
      > "corpus/relay_path/$(basename "$transcript" .sse)-$dialect"
  done
done
for target in $(cargo +nightly fuzz list); do
  echo "==> fuzz $target (${per_target}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$per_target"
done
