-- Refunds of paid recharge orders: what the Account gave back (balances, projection "balances")
-- and what each order refunded (projection "recharges"); and the first characters of each
-- prepaid code, recorded at issue so operators can tell codes apart after they were shown once.
ALTER TABLE balances ADD COLUMN refunded integer NOT NULL DEFAULT 0;
ALTER TABLE recharge_orders ADD COLUMN refunded integer NOT NULL DEFAULT 0;
ALTER TABLE prepaid_codes ADD COLUMN prefix text;
