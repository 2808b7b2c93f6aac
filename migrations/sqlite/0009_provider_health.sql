-- Provider health: the upstream attempts of metered calls, per provider and per minute (UTC,
-- `YYYY-MM-DDTHH:MM:00Z`, so text order is time order). Latencies are counted in fixed buckets
-- (upper bounds in milliseconds: 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
-- above) so a p95 over any window is a sum of rows; `last_error*` keep the newest failure of
-- the minute. Built from InferenceCall events by the `provider_health` projection.
CREATE TABLE provider_health
(
  provider       text    NOT NULL,
  minute         text    NOT NULL,
  attempts       integer NOT NULL,
  errors         integer NOT NULL,
  latency_sum    integer NOT NULL,
  latency_max    integer NOT NULL,
  b0             integer NOT NULL,
  b1             integer NOT NULL,
  b2             integer NOT NULL,
  b3             integer NOT NULL,
  b4             integer NOT NULL,
  b5             integer NOT NULL,
  b6             integer NOT NULL,
  b7             integer NOT NULL,
  b8             integer NOT NULL,
  b9             integer NOT NULL,
  b10            integer NOT NULL,
  b11            integer NOT NULL,
  last_error_at  text,
  last_error     text,
  last_status    integer,
  last_model     text,
  PRIMARY KEY (provider, minute)
) STRICT;

CREATE INDEX provider_health_minute ON provider_health (minute);
