#!/usr/bin/env bash
# Times what must not grow with history, on a store loaded by scripts/load-history.sh:
#
#   scripts/history-figures.sh postgres://postgres@127.0.0.1:5432/history
#
# - serve: from the process start until /health/ready answers 200 (goal: ≤ 2 s);
# - admin create: a new operator, the whole command (goal: ≤ 1 s);
# - ledger verify --tenant: one tenant's ledger, its settlements against its recorded calls
#   (goal: ≤ 2 s).
set -euo pipefail
url=${1:?usage: history-figures.sh POSTGRES_URL}
bin=${MODELROUTER_BIN:-target/release/modelrouter}
export MODELROUTER_MASTER_KEY=${MODELROUTER_MASTER_KEY:-$(printf '11%.0s' $(seq 1 32))}
export MODELROUTER_LOG=${MODELROUTER_LOG:-warn}
work=$(mktemp -d)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
ms() { echo $(($(date +%s%N) / 1000000)); }

echo "events in the log: $(psql "$url" -Atc "SELECT count(*) FROM events")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(ms)
"$bin" --database-url "$url" --data-dir "$work/data" serve --listen "127.0.0.1:$port" \
  >/dev/null 2>"$work/serve.log" &
server=$!
until curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.02
done
echo "serve ready: $(($(ms) - start)) ms"
kill -TERM "$server"; wait "$server" || true; server=

start=$(ms)
"$bin" --database-url "$url" --data-dir "$work/data" admin create \
  --email "figures-$(date +%s%N)@example.com" >/dev/null
echo "admin create: $(($(ms) - start)) ms"

start=$(ms)
"$bin" --database-url "$url" --data-dir "$work/data" ledger verify \
  --tenant history-1@example.com
echo "ledger verify --tenant: $(($(ms) - start)) ms"
