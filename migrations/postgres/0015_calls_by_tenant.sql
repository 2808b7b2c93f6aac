-- One tenant's metered calls, in log order, without reading anyone else's: `ledger verify`
-- reconciles what a tenant was charged through allowances with the InferenceCall events the log
-- records for it (docs/ledger.md), and must not scan a log of millions of calls to do so.
--
-- A partial expression index: only InferenceCall events, keyed on the tenant their record names.
-- The planner uses it only for a query with the same expression and the literal aggregate type
-- (projections/src/call_log.rs). Building it reads every InferenceCall event once and blocks
-- event writes while it runs: on a large log, migrate before the new version takes traffic.
CREATE INDEX events_calls_by_tenant
    ON events ((payload->'Completed'->>'tenant_id'), global_position)
 WHERE aggregate_type = 'InferenceCall';
