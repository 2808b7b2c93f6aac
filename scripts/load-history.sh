#!/usr/bin/env bash
# Loads a PostgreSQL store with the history of a busy platform, to measure what start-up and the
# CLI cost once the log is large (docs/operations.md, "Start-up and history"):
#
#   scripts/load-history.sh postgres://postgres@127.0.0.1:5432/history [CALLS] [TENANTS]
#
# It imports TENANTS tenants (default 100) with one key each through `modelrouter import`, then
# writes CALLS InferenceCall events (default 10,000,000) spread over them in bulk SQL, each
# tenant's calls settled on one lease (AllowanceGranted, UsageSettled, AllowanceReleased — so
# `ledger verify` agrees), and the usage read model to match, with its checkpoint at the head.
# (The provider-health read model is moved past the synthetic calls without rows for them.)
# The database must exist and be empty; the binary is MODELROUTER_BIN or target/release.
# Then `scripts/history-figures.sh URL` times serve, admin create and ledger verify on it.
set -euo pipefail
url=${1:?usage: load-history.sh POSTGRES_URL [CALLS] [TENANTS]}
calls=${2:-10000000}
tenants=${3:-100}
bin=${MODELROUTER_BIN:-target/release/modelrouter}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
  cat <<'EOF'
[[providers]]
id = "history-mock"
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
region = "local"
api_key = "sk-history"

[[models]]
name = "history-gpt"
display_name = "History GPT"
input_price = 1_000_000
output_price = 8_000_000
cached_input_price = 1_000_000

[[routes]]
model = "history-gpt"
deployments = [ { provider = "history-mock", upstream_model = "m", weight = 100, priority = 0 } ]
EOF
  for i in $(seq 1 "$tenants"); do
    printf '\n[[tenants]]\nemail = "history-%d@example.com"\nname = "History %d"\n' "$i" "$i"
    printf 'password = "correct horse battery staple"\nbalance = 1_000_000_000_000\n'
    printf 'keys = [ { name = "k", key = "sk-mr-history-%026d", scope = "auto" } ]\n' "$i"
  done
} >"$work/history.toml"

echo "importing $tenants tenants…"
MODELROUTER_MASTER_KEY=${MODELROUTER_MASTER_KEY:-$(printf '11%.0s' $(seq 1 32))} \
  "$bin" --database-url "$url" --data-dir "$work/data" import "$work/history.toml" >/dev/null

echo "writing $calls calls…"
start=$(date +%s)
psql "$url" -q -v ON_ERROR_STOP=1 -v calls="$calls" <<'SQL'
BEGIN;
CREATE TEMP TABLE history_tenants AS
  SELECT aggregate_id AS tenant_id,
         row_number() OVER (ORDER BY aggregate_id) - 1 AS n,
         max(sequence) AS last_sequence
    FROM events WHERE aggregate_type = 'Account' GROUP BY aggregate_id;

-- Each call: 10 input and 20 output tokens at the model's prices = 170 µ.
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                    metadata)
SELECT 'InferenceCall', 'req_history_' || g, 1, 'Completed', '1',
       json_build_object('Completed', json_build_object(
         'tenant_id', t.tenant_id, 'key_id', 'history-key', 'model', 'history-gpt',
         'inbound_protocol', 'openai', 'stream', false, 'status', 200,
         'usage', json_build_object('input_total', 10, 'cache_read', NULL, 'cache_write', NULL,
                                    'output_total', 20, 'reasoning', NULL, 'estimated', false),
         'cost', 170, 'price_version', 1, 'latency_ms', 5, 'ttft_ms', 5,
         'attempts', json_build_array(json_build_object(
           'provider', 'history-mock', 'upstream_model', 'm', 'status', 200, 'error', NULL,
           'latency_ms', 5)),
         'started_at', to_char((now() - (g || ' milliseconds')::interval) AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'lease_id', 'history/' || t.tenant_id)),
       json_build_object('actor', 'system', 'request_id', 'req_history_' || g)
  FROM generate_series(1, :calls) AS g
  JOIN history_tenants t ON t.n = g % (SELECT count(*) FROM history_tenants);

-- The usage read model, as the projection would have written it.
INSERT INTO usage_calls (request_id, tenant_id, key_id, model, inbound_protocol, stream, status,
                         input_tokens, cached_tokens, cache_write_tokens, output_tokens,
                         reasoning_tokens, estimated, cost, price_version, latency_ms, ttft_ms,
                         attempts, provider, started_at)
SELECT aggregate_id, payload->'Completed'->>'tenant_id', 'history-key', 'history-gpt', 'openai',
       0, 200, 10, NULL, NULL, 20, NULL, 0, 170, 1, 5, 5, 1, 'history-mock',
       payload->'Completed'->>'started_at'
  FROM events WHERE aggregate_type = 'InferenceCall' AND aggregate_id LIKE 'req_history_%';

CREATE TEMP TABLE history_leases AS
  SELECT payload->'Completed'->>'tenant_id' AS tenant_id, count(*) AS calls,
         sum(170) AS used
    FROM events WHERE aggregate_type = 'InferenceCall' AND aggregate_id LIKE 'req_history_%'
   GROUP BY 1;

INSERT INTO lease_usage (lease_id, tenant_id, used, calls)
SELECT 'history/' || tenant_id, tenant_id, used, calls FROM history_leases;

-- Each tenant's calls, settled on one lease of a replica that has long stopped.
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                    metadata)
SELECT 'Account', t.tenant_id, t.last_sequence + step, kind, '1', payload,
       json_build_object('actor', 'system')
  FROM history_tenants t JOIN history_leases l USING (tenant_id),
  LATERAL (VALUES
    (1, 'AllowanceGranted', json_build_object('AllowanceGranted', json_build_object(
          'lease_id', 'history/' || t.tenant_id, 'node', 'history', 'amount', l.used))),
    (2, 'UsageSettled', json_build_object('UsageSettled', json_build_object(
          'lease_id', 'history/' || t.tenant_id, 'used', l.used, 'calls', l.calls))),
    (3, 'AllowanceReleased', json_build_object('AllowanceReleased', json_build_object(
          'lease_id', 'history/' || t.tenant_id, 'amount', 0)))
  ) AS e(step, kind, payload);

-- The call projections are at the head of the calls.
INSERT INTO projection_checkpoints (name, tx, position)
SELECT name, tx::text::bigint, global_position
  FROM (SELECT tx, global_position FROM events WHERE aggregate_type = 'InferenceCall'
         ORDER BY tx DESC, global_position DESC LIMIT 1) AS head,
       (VALUES ('usage'), ('provider_health')) AS p(name)
ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, position = excluded.position;
COMMIT;
ANALYZE events;
ANALYZE usage_calls;
SQL
echo "done in $(($(date +%s) - start)) s: $(psql "$url" -Atc "SELECT count(*) FROM events") events"
