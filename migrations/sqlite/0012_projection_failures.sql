-- Events a SQL projection could not apply (an amount beyond every limit, a sum that would
-- overflow): the projection records the event here, leaves it out and goes on, so one bad event
-- never holds back every tenant's read models. `/health/ready` answers 503 and the console shows
-- them while any is unacknowledged; an operator acknowledges one once it is understood.
CREATE TABLE projection_failures
(
  name             text NOT NULL,
  position         integer NOT NULL,
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  event_type       text NOT NULL,
  error            text NOT NULL,
  failed_at        text NOT NULL,
  acknowledged_at  text,
  acknowledged_by  text,
  PRIMARY KEY (name, position)
) STRICT;
