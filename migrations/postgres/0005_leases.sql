-- What the calls metered under each allowance lease were charged (usage projection), so that the
-- lease of a replica that died can be settled from the log by another replica.
CREATE TABLE lease_usage
(
  lease_id  text PRIMARY KEY NOT NULL,
  tenant_id text    NOT NULL,
  used      bigint NOT NULL,
  calls     bigint NOT NULL
);

-- Each serving replica says here that it is alive (Unix seconds). Leases of a replica that
-- stopped saying so are reclaimed. Plain state, not events: liveness is not a business fact.
CREATE TABLE replica_heartbeats
(
  node       text PRIMARY KEY NOT NULL,
  started_at bigint NOT NULL,
  seen_at    bigint NOT NULL
);
