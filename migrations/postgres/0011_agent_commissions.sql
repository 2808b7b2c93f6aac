-- Agents' commissions (projection "commissions"): which tenants each agent referred, each
-- agent's current rate, commission accrued per agent, month and tenant from the tenants' settled
-- usage, and the payouts operators recorded. Months are UTC "YYYY-MM"; times RFC 3339 UTC text;
-- money integer micro-units.
CREATE TABLE agent_rates
(
  agent_id       text PRIMARY KEY NOT NULL,
  commission_bps bigint  NOT NULL
);

CREATE TABLE agent_tenants
(
  tenant_id     text PRIMARY KEY NOT NULL,
  agent_id      text NOT NULL,
  registered_at text NOT NULL
);

CREATE INDEX agent_tenants_agent ON agent_tenants (agent_id, registered_at);

-- Commission is worked out per settlement (rounded down to a micro-unit) at the rate in force
-- when the usage settled, and summed here.
CREATE TABLE agent_commissions
(
  agent_id   text    NOT NULL,
  month      text    NOT NULL,
  tenant_id  text    NOT NULL,
  usage      bigint  NOT NULL,
  calls      bigint  NOT NULL,
  commission bigint  NOT NULL,
  PRIMARY KEY (agent_id, month, tenant_id)
);

CREATE TABLE agent_payouts
(
  agent_id  text    NOT NULL,
  month     text    NOT NULL,
  amount    bigint  NOT NULL,
  reference text    NOT NULL,
  paid_at   text    NOT NULL,
  paid_by   text    NOT NULL,
  PRIMARY KEY (agent_id, month)
);
