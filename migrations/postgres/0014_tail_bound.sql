-- What a tailer may read, without waiting on the rest of the server.
--
-- Migration 0002 let tailers read rows whose writing transaction is older than every running
-- one (pg_snapshot_xmin). Transaction ids are cluster-wide, so a long transaction in *another
-- database* on the same server held every replica's view back (a replica started after an
-- import answered 401 for seconds while some unrelated session sat in a transaction).
--
-- The bound now is the oldest running transaction *of this database* that has written anything
-- (only those can be inserting events), or the snapshot's xmax when there is none. Order
-- matters, and plpgsql keeps it: the snapshot is taken first, then the activity is read (fresh:
-- pg_stat_clear_snapshot), and the caller reads the events in a later statement. A transaction
-- running at the snapshot that has ended by the activity read has committed or aborted before
-- the events are read, so its rows are visible then; one still running is in the bound.
CREATE OR REPLACE FUNCTION modelrouter_tail_bound() RETURNS xid8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  snapshot pg_snapshot;
  bound xid8;
BEGIN
  snapshot := pg_current_snapshot();
  PERFORM pg_stat_clear_snapshot();
  SELECT min(running) INTO bound
    FROM pg_snapshot_xip(snapshot) AS running
   WHERE (running::text::numeric % 4294967296)::bigint IN (
           SELECT backend_xid::text::bigint
             FROM pg_stat_activity
            WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND backend_xid IS NOT NULL);
  RETURN coalesce(bound, pg_snapshot_xmax(snapshot));
END
$$;

-- Each projection and the live view read only the aggregate types they apply, in tail order:
-- none of them wades through the InferenceCall events of years of traffic to find its own.
CREATE INDEX events_type_tail ON events (aggregate_type, tx, global_position);
