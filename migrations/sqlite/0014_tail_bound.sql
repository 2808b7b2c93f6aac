-- Each projection and the live view read only the aggregate types they apply, in log order:
-- none of them wades through the InferenceCall events of years of traffic to find its own.
CREATE INDEX events_type_tail ON events (aggregate_type, global_position);
