-- Operators, agents and tenants are separate identities with separate sessions. A session
-- belongs to one realm and names its subject (a tenant, operator or agent id); a token of one
-- realm never opens another realm's pages. Sessions from before this migration are tenants'.
ALTER TABLE portal_sessions RENAME COLUMN tenant_id TO subject_id;
ALTER TABLE portal_sessions ADD COLUMN realm text NOT NULL DEFAULT 'tenant';
