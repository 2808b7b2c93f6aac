-- Unique reservations of login emails (tenants, operators): the write side's uniqueness check.
CREATE TABLE email_reservations
(
  email    text PRIMARY KEY NOT NULL,
  kind     text NOT NULL,
  owner_id text NOT NULL
) STRICT;

-- Each SQL projection remembers the last event it applied.
CREATE TABLE projection_checkpoints
(
  name     text PRIMARY KEY NOT NULL,
  tx       integer NOT NULL,
  position integer NOT NULL
) STRICT;

CREATE TABLE balances
(
  tenant_id   text PRIMARY KEY NOT NULL,
  balance     integer NOT NULL,
  credited    integer NOT NULL,
  adjusted    integer NOT NULL,
  settled     integer NOT NULL,
  outstanding integer NOT NULL,
  calls       integer NOT NULL,
  updated_at  text    NOT NULL
) STRICT;

CREATE TABLE balance_leases
(
  tenant_id   text NOT NULL,
  lease_id    text NOT NULL,
  node        text NOT NULL,
  outstanding integer NOT NULL,
  PRIMARY KEY (tenant_id, lease_id)
) STRICT;

CREATE TABLE usage_calls
(
  request_id         text PRIMARY KEY NOT NULL,
  tenant_id          text    NOT NULL,
  key_id             text    NOT NULL,
  model              text    NOT NULL,
  inbound_protocol   text    NOT NULL,
  stream             integer NOT NULL,
  status             integer NOT NULL,
  input_tokens       integer,
  cached_tokens      integer,
  cache_write_tokens integer,
  output_tokens      integer,
  reasoning_tokens   integer,
  estimated          integer NOT NULL,
  cost               integer NOT NULL,
  price_version      integer NOT NULL,
  latency_ms         integer NOT NULL,
  ttft_ms            integer,
  attempts           integer NOT NULL,
  provider           text,
  started_at         text    NOT NULL
) STRICT;

CREATE INDEX usage_calls_tenant_time ON usage_calls (tenant_id, started_at);
