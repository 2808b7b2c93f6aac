-- Provider health: the upstream attempts of metered calls, per provider and per minute (UTC,
-- `YYYY-MM-DDTHH:MM:00Z`, so text order is time order). Latencies are counted in fixed buckets
-- (upper bounds in milliseconds: 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
-- above) so a p95 over any window is a sum of rows; `last_error*` keep the newest failure of
-- the minute. Built from InferenceCall events by the `provider_health` projection.
CREATE TABLE provider_health
(
  provider       text    NOT NULL,
  minute         text    NOT NULL,
  attempts       bigint NOT NULL,
  errors         bigint NOT NULL,
  latency_sum    bigint NOT NULL,
  latency_max    bigint NOT NULL,
  b0             bigint NOT NULL,
  b1             bigint NOT NULL,
  b2             bigint NOT NULL,
  b3             bigint NOT NULL,
  b4             bigint NOT NULL,
  b5             bigint NOT NULL,
  b6             bigint NOT NULL,
  b7             bigint NOT NULL,
  b8             bigint NOT NULL,
  b9             bigint NOT NULL,
  b10            bigint NOT NULL,
  b11            bigint NOT NULL,
  last_error_at  text,
  last_error     text,
  last_status    bigint,
  last_model     text,
  PRIMARY KEY (provider, minute)
);

CREATE INDEX provider_health_minute ON provider_health (minute);
