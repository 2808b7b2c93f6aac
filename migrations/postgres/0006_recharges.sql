-- Recharge records (projection "recharges"): every top-up order, its state history, and prepaid
-- voucher codes, with when the Account credited each. Times are RFC 3339 UTC text.
CREATE TABLE recharge_orders
(
  order_id     text PRIMARY KEY NOT NULL,
  tenant_id    text    NOT NULL,
  amount       bigint NOT NULL,
  currency     text    NOT NULL,
  method       text    NOT NULL,
  state        text    NOT NULL,
  provider_ref text,
  pay_url      text,
  placed_at    text    NOT NULL,
  expires_at   text    NOT NULL,
  paid_at      text,
  paid_amount  bigint,
  confirmed_by text,
  mismatches   bigint NOT NULL,
  credited_at  text,
  updated_at   text    NOT NULL
);

CREATE INDEX recharge_orders_tenant ON recharge_orders (tenant_id, placed_at);
CREATE INDEX recharge_orders_state ON recharge_orders (state, expires_at);

CREATE TABLE recharge_history
(
  order_id text    NOT NULL,
  position bigint NOT NULL,
  at       text    NOT NULL,
  kind     text    NOT NULL,
  detail   text    NOT NULL,
  PRIMARY KEY (order_id, position)
);

CREATE TABLE prepaid_codes
(
  code_id     text PRIMARY KEY NOT NULL,
  amount      bigint NOT NULL,
  currency    text    NOT NULL,
  expires_at  text,
  note        text    NOT NULL,
  issued_at   text    NOT NULL,
  state       text    NOT NULL,
  redeemed_by text,
  redeemed_at text,
  credited_at text
);

CREATE INDEX prepaid_codes_redeemed_by ON prepaid_codes (redeemed_by);
