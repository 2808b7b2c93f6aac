-- Email verification (src/store/verifications.rs) and the local mail outbox (src/mail.rs):
-- plain tables, not events. The verification itself is an event (Tenant EmailVerified); a link
-- and a mail are how it comes about. Times are Unix seconds.

-- A verification link mailed to a tenant. Only the SHA-256 of the link's token is kept, so the
-- table names no working link. A link is used once (used_at) and not after expires_at.
CREATE TABLE email_verifications
(
  token_hash text PRIMARY KEY NOT NULL,
  tenant_id  text    NOT NULL,
  email      text    NOT NULL,
  created_at integer NOT NULL,
  expires_at integer NOT NULL,
  used_at    integer
) STRICT;

CREATE INDEX email_verifications_tenant ON email_verifications (tenant_id);

-- Mail that went to no SMTP server (none configured: the demo, tests, a local setup). The demo
-- shows a tenant its own mail in the portal. Kept in the store rather than in files so every
-- replica (and PostgreSQL deployments) sees the same outbox.
CREATE TABLE mail_outbox
(
  id         text PRIMARY KEY NOT NULL,
  tenant_id  text,
  recipient  text    NOT NULL,
  subject    text    NOT NULL,
  body       text    NOT NULL,
  -- The link the mail asks its reader to follow, if any (the portal shows it as a button).
  action_url text,
  -- Unix milliseconds, so mails of one second keep their order.
  created_at integer NOT NULL
) STRICT;

CREATE INDEX mail_outbox_tenant ON mail_outbox (tenant_id, created_at);
