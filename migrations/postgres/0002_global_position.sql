-- A store-wide order and a timestamp for every event.
--
-- global_position comes from a sequence, and concurrent transactions can commit out of sequence
-- order, so a tailer reading "position > checkpoint" could skip a row that becomes visible later.
-- Every row therefore also records its transaction id (tx). Tailers read only rows whose
-- transaction is older than the oldest still running (pg_snapshot_xmin), in (tx, global_position)
-- order: that order never changes once read, so a checkpoint of (tx, global_position) is exact.
ALTER TABLE events ADD COLUMN global_position bigserial;
ALTER TABLE events ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_tail_order ON events (tx, global_position);

-- Wake tailers on every replica when events commit (polling remains the fallback).
CREATE OR REPLACE FUNCTION modelrouter_notify_events() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('modelrouter_events', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION modelrouter_notify_events();
