-- Portal access state (src/store/sessions.rs): plain tables, not events — a session or a failed
-- sign-in is not a business fact, and both are deleted freely. Times are Unix seconds.

-- A signed-in portal session. Only the SHA-256 of the cookie's token is kept, so a leaked table
-- names no live session.
CREATE TABLE portal_sessions
(
  token_hash   text PRIMARY KEY NOT NULL,
  tenant_id    text    NOT NULL,
  csrf         text    NOT NULL,
  created_at   integer NOT NULL,
  last_seen_at integer NOT NULL,
  expires_at   integer NOT NULL
) STRICT;

-- Ending every session of a tenant (after a password change) finds them by tenant.
CREATE INDEX portal_sessions_tenant ON portal_sessions (tenant_id);

-- Failed sign-ins per subject (an email, a client address) in the current window, and the end
-- of the subject's lock (NULL when the failures have not locked it).
CREATE TABLE login_throttle
(
  subject           text PRIMARY KEY NOT NULL,
  failures          integer NOT NULL,
  window_started_at integer NOT NULL,
  locked_until      integer
) STRICT;
