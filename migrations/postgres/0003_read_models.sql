-- Unique reservations of login emails (tenants, operators): the write side's uniqueness check.
CREATE TABLE email_reservations
(
  email    text PRIMARY KEY NOT NULL,
  kind     text NOT NULL,
  owner_id text NOT NULL
);

-- Each SQL projection remembers the last event it applied.
CREATE TABLE projection_checkpoints
(
  name     text PRIMARY KEY NOT NULL,
  tx       bigint NOT NULL,
  position bigint NOT NULL
);

CREATE TABLE balances
(
  tenant_id   text PRIMARY KEY NOT NULL,
  balance     bigint NOT NULL,
  credited    bigint NOT NULL,
  adjusted    bigint NOT NULL,
  settled     bigint NOT NULL,
  outstanding bigint NOT NULL,
  calls       bigint NOT NULL,
  updated_at  text    NOT NULL
);

CREATE TABLE balance_leases
(
  tenant_id   text NOT NULL,
  lease_id    text NOT NULL,
  node        text NOT NULL,
  outstanding bigint NOT NULL,
  PRIMARY KEY (tenant_id, lease_id)
);

CREATE TABLE usage_calls
(
  request_id         text PRIMARY KEY NOT NULL,
  tenant_id          text    NOT NULL,
  key_id             text    NOT NULL,
  model              text    NOT NULL,
  inbound_protocol   text    NOT NULL,
  stream             bigint NOT NULL,
  status             bigint NOT NULL,
  input_tokens       bigint,
  cached_tokens      bigint,
  cache_write_tokens bigint,
  output_tokens      bigint,
  reasoning_tokens   bigint,
  estimated          bigint NOT NULL,
  cost               bigint NOT NULL,
  price_version      bigint NOT NULL,
  latency_ms         bigint NOT NULL,
  ttft_ms            bigint,
  attempts           bigint NOT NULL,
  provider           text,
  started_at         text    NOT NULL
);

CREATE INDEX usage_calls_tenant_time ON usage_calls (tenant_id, started_at);
