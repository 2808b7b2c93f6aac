-- A store-wide order and a timestamp for every event, so projections can tail and replay the
-- whole log in order. SQLite has one writer at a time, so rowid order is commit order; the
-- trigger copies the rowid into global_position in the inserting transaction.
ALTER TABLE events ADD COLUMN global_position integer;
ALTER TABLE events ADD COLUMN recorded_at text;

UPDATE events SET global_position = rowid,
                  recorded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
 WHERE global_position IS NULL;

CREATE UNIQUE INDEX events_global_position ON events (global_position);

CREATE TRIGGER events_assign_global_position AFTER INSERT ON events
BEGIN
  UPDATE events
     SET global_position = NEW.rowid,
         recorded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
   WHERE rowid = NEW.rowid;
END;
