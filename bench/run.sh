#!/usr/bin/env bash
# Gateway overhead benchmark: wrk against the mock upstream directly, then through the gateway.
# See docs/benchmark.md.
#
# Environment:
#   CONNECTIONS (32)  THREADS (2)  DURATION (10s)  WARMUP (2s, 0 to skip)
#   STREAM (1)        also run the streaming ("stream":true) variant; 0 to skip
#   SAMPLES (200)     sequential curl calls used to sample x-modelrouter-overhead-us
#   SKIP_BUILD (0)    1: do not run `cargo build --release`
#   MODELROUTER_BIN   binary to use (default target/release/modelrouter)
#   MODELROUTER_DATABASE_URL  use this PostgreSQL database instead of a fresh SQLite store
#   MODELROUTER_LOG   gateway log filter (default: the binary's default, info)
#   KEEP_DATA (0)     1: keep the temporary data dir
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
OUT="$BENCH/out"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
STREAM="${STREAM:-1}"
SAMPLES="${SAMPLES:-200}"
SKIP_BUILD="${SKIP_BUILD:-0}"
KEEP_DATA="${KEEP_DATA:-0}"
BIN="${MODELROUTER_BIN:-$ROOT/target/release/modelrouter}"

KEY="sk-mr-bench-00000000000000000000"
MODEL="bench-gpt"
BODY="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/modelrouter-bench.XXXXXX")"
MOCK_PID=""
GW_PID=""

cleanup() {
  local rc=$?
  for pid in "$GW_PID" "$MOCK_PID"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "$GW_PID" "$MOCK_PID"; do
    if [[ -n "$pid" ]]; then
      # Bounded wait for a graceful exit, then force.
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ "$KEEP_DATA" == "1" ]]; then
    log "data dir kept: $DATA_DIR"
  else
    rm -rf "$DATA_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites
if [[ "$SKIP_BUILD" != "1" ]]; then
  log "building release binary"
  (cd "$ROOT" && cargo build --release) >&2
fi
[[ -x "$BIN" ]] || die "binary not found: $BIN"

command -v curl >/dev/null || die "curl is required"
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if ! apt-get install -y wrk >&2; then
    apt-get update >&2
    apt-get install -y wrk >&2
  fi
fi
command -v wrk >/dev/null || die "wrk is not available"

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  else
    local p
    while :; do
      p=$((20000 + RANDOM % 20000))
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
  fi
}

# wait_for NAME PID TIMEOUT_S CMD... : poll CMD every 100 ms until it succeeds.
wait_for() {
  local name=$1 pid=$2 timeout=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$name exited early (see $OUT/$name.log)"
    ((SECONDS < deadline)) || die "$name not ready after ${timeout}s (see $OUT/$name.log)"
    sleep 0.1
  done
}

chat_ok() { # chat_ok URL KEY: one chat completion that must answer 200
  [[ "$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$1/v1/chat/completions" \
    -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$BODY")" == 200 ]]
}

# ---------------------------------------------------------------- mock upstream
MOCK_PORT="$(free_port)"
MOCK_URL="http://127.0.0.1:$MOCK_PORT"
log "starting mock upstream on $MOCK_URL"
"$BIN" mock-upstream --listen "127.0.0.1:$MOCK_PORT" >"$OUT/mock.log" 2>&1 &
MOCK_PID=$!
wait_for mock "$MOCK_PID" 15 chat_ok "$MOCK_URL" "sk-anything"

# ---------------------------------------------------------------- import + gateway
GW_PORT="$(free_port)"
while [[ "$GW_PORT" == "$MOCK_PORT" ]]; do GW_PORT="$(free_port)"; done
GW_URL="http://127.0.0.1:$GW_PORT"

cat >"$OUT/bench-import.toml" <<EOF
[[providers]]
id = "bench-mock"
protocol = "openai"
base_url = "$MOCK_URL/v1"
region = "local"
api_key = "sk-upstream-bench-0000"

[[models]]
name = "$MODEL"
display_name = "Bench GPT"
input_price = 2_000_000
output_price = 8_000_000
cached_input_price = 500_000

[[routes]]
model = "$MODEL"
deployments = [ { provider = "bench-mock", upstream_model = "upstream-gpt", weight = 100, priority = 0 } ]

[[tenants]]
email = "bench@example.com"
name = "Bench"
password = "bench password 123"
balance = 1_000_000_000_000
keys = [ { name = "bench", key = "$KEY", scope = "auto" } ]
EOF

DB_ARGS=()
if [[ -n "${MODELROUTER_DATABASE_URL:-}" ]]; then
  log "store: PostgreSQL (MODELROUTER_DATABASE_URL); use a throwaway database"
  [[ -n "${MODELROUTER_MASTER_KEY:-}" ]] ||
    log "note: MODELROUTER_MASTER_KEY is not set; a new key is made per run in the temp data dir," \
      "so a database left by an earlier run holds a provider key sealed under another key"
  DB_ARGS=(--database-url "$MODELROUTER_DATABASE_URL")
else
  log "store: SQLite in $DATA_DIR"
fi

log "importing bench config"
"$BIN" --data-dir "$DATA_DIR" ${DB_ARGS[@]+"${DB_ARGS[@]}"} import "$OUT/bench-import.toml" >"$OUT/import.log" 2>&1 \
  || { cat "$OUT/import.log" >&2; die "import failed"; }

log "starting gateway on $GW_URL"
"$BIN" --data-dir "$DATA_DIR" ${DB_ARGS[@]+"${DB_ARGS[@]}"} serve --listen "127.0.0.1:$GW_PORT" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
wait_for gateway "$GW_PID" 60 curl -fsS "$GW_URL/health/ready"
curl -sS -X POST "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d "$BODY" >"$OUT/gateway-sample-response.json"
chat_ok "$GW_URL" "$KEY" || die "gateway smoke request failed: $(cat "$OUT/gateway-sample-response.json")"

# ---------------------------------------------------------------- wrk runs
# run_wrk LABEL URL STREAM: warm up, then measure; prints the BENCH line.
run_wrk() {
  local label=$1 url=$2 stream=$3
  if [[ "$WARMUP" != "0" && "$WARMUP" != "0s" ]]; then
    BENCH_KEY="$KEY" BENCH_MODEL="$MODEL" BENCH_STREAM="$stream" BENCH_LABEL="$label-warmup" \
      wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" -s "$BENCH/chat.lua" "$url" \
      >"$OUT/wrk-$label-warmup.txt" 2>&1
  fi
  log "wrk $label: -t$THREADS -c$CONNECTIONS -d$DURATION"
  BENCH_KEY="$KEY" BENCH_MODEL="$MODEL" BENCH_STREAM="$stream" BENCH_LABEL="$label" \
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -s "$BENCH/chat.lua" "$url" \
    >"$OUT/wrk-$label.txt" 2>&1 || { cat "$OUT/wrk-$label.txt" >&2; die "wrk $label failed"; }
  local line
  line="$(grep '^BENCH ' "$OUT/wrk-$label.txt" | tail -n1)"
  [[ -n "$line" ]] || { cat "$OUT/wrk-$label.txt" >&2; die "no BENCH line from wrk $label"; }
  echo "$line"
}

field() { # field LINE NAME
  tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

RESULTS="$OUT/results.txt"
: >"$RESULTS"
run_wrk direct "$MOCK_URL" 0 | tee -a "$RESULTS"
run_wrk gateway "$GW_URL" 0 | tee -a "$RESULTS"
if [[ "$STREAM" == "1" ]]; then
  run_wrk direct-stream "$MOCK_URL" 1 | tee -a "$RESULTS"
  run_wrk gateway-stream "$GW_URL" 1 | tee -a "$RESULTS"
fi

# ---------------------------------------------------------------- overhead header
log "sampling x-modelrouter-overhead-us over $SAMPLES sequential requests"
OVERHEAD="$OUT/overhead-us.txt"
: >"$OVERHEAD"
bad=0
for _ in $(seq 1 "$SAMPLES"); do
  headers="$(curl -sS -o /dev/null -D - -X POST "$GW_URL/v1/chat/completions" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$BODY")"
  status="$(head -n1 <<<"$headers" | awk '{print $2}')"
  [[ "$status" == 200 ]] || bad=$((bad + 1))
  tr -d '\r' <<<"$headers" | awk -F': *' 'tolower($1)=="x-modelrouter-overhead-us"{print $2}' >>"$OVERHEAD"
done
n_overhead="$(wc -l <"$OVERHEAD")"
((n_overhead > 0)) || die "no x-modelrouter-overhead-us header in gateway responses"

# percentile P FILE: nearest-rank percentile of the numbers in FILE
percentile() {
  sort -n "$2" | awk -v p="$1" '{v[NR]=$1} END {i=int((p*NR+99)/100); if(i<1)i=1; print v[i]}'
}
oh_p50="$(percentile 50 "$OVERHEAD")"
oh_p99="$(percentile 99 "$OVERHEAD")"
oh_max="$(sort -n "$OVERHEAD" | tail -n1)"

# ---------------------------------------------------------------- summary
summary() {
  local d g
  d="$(grep "label=$1 " "$RESULTS")"
  g="$(grep "label=$2 " "$RESULTS")"
  printf '%-16s %10s %10s %10s %10s %8s\n' "$3" "req/s" "p50 ms" "p90 ms" "p99 ms" "errors"
  for pair in "direct:$d" "gateway:$g"; do
    local name=${pair%%:*} line=${pair#*:}
    local errs=$(($(field "$line" non2xx) + $(field "$line" err_connect) + $(field "$line" err_read) \
      + $(field "$line" err_write) + $(field "$line" err_timeout)))
    printf '  %-14s %10s %10s %10s %10s %8s\n' "$name" "$(field "$line" rps)" \
      "$(field "$line" p50_ms)" "$(field "$line" p90_ms)" "$(field "$line" p99_ms)" "$errs"
  done
  awk -v dr="$(field "$d" rps)" -v gr="$(field "$g" rps)" \
    -v d50="$(field "$d" p50_ms)" -v g50="$(field "$g" p50_ms)" \
    -v d90="$(field "$d" p90_ms)" -v g90="$(field "$g" p90_ms)" \
    -v d99="$(field "$d" p99_ms)" -v g99="$(field "$g" p99_ms)" \
    'BEGIN { printf "  %-14s %9.1f%% %+10.3f %+10.3f %+10.3f\n", "gateway-direct", (gr/dr-1)*100, g50-d50, g90-d90, g99-d99 }'
}

{
  echo
  echo "== Model Router gateway benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, wrk -t$THREADS -c$CONNECTIONS -d$DURATION) =="
  echo "   store: $([[ -n "${MODELROUTER_DATABASE_URL:-}" ]] && echo postgres || echo sqlite)"
  echo
  summary direct gateway "non-streaming"
  if [[ "$STREAM" == "1" ]]; then
    echo
    summary direct-stream gateway-stream "streaming"
  fi
  echo
  echo "x-modelrouter-overhead-us over $n_overhead sequential requests ($bad non-200):"
  echo "  median ${oh_p50} us   p99 ${oh_p99} us   max ${oh_max} us"
  echo
  echo "raw output: $OUT"
} | tee "$OUT/summary.txt"

# Every wrk run must be free of non-2xx answers and socket errors.
wrk_errors="$(awk '{for (i = 1; i <= NF; i++) { split($i, kv, "=");
  if (kv[1] == "non2xx" || kv[1] ~ /^err_/) s += kv[2] }} END {print s + 0}' "$RESULTS")"
if ((wrk_errors != 0 || bad != 0)); then
  die "some requests failed (non-2xx or socket errors); see $OUT/wrk-*.txt and $OUT/gateway.log"
fi
