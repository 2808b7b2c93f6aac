//! The recharge records read model: every top-up order with its state history, and every
//! prepaid voucher code, plus when the Account actually credited each one (so a payment that was
//! recorded but not yet credited — a crash between the two — is found and finished).

use modelrouter_domain::account::{AccountEvent, CreditKind};
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::prepaid::PrepaidEvent;
use modelrouter_domain::recharge::RechargeEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx};
use crate::db::{Db, StoredEvent};

/// The Account credit reference of a recharge order. References are unique per account across
/// kinds, hence the prefix.
pub fn order_reference(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// The Account credit reference of a redeemed prepaid code.
pub fn code_reference(code_id: &str) -> String {
    format!("code:{code_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    pub order_id: String,
    pub tenant_id: String,
    pub amount: i64,
    pub currency: String,
    /// `stripe`, `manual` or `sandbox`.
    pub method: String,
    /// `pending`, `paid`, `failed` or `expired`.
    pub state: String,
    pub provider_ref: Option<String>,
    pub pay_url: Option<String>,
    pub placed_at: String,
    pub expires_at: String,
    pub paid_at: Option<String>,
    pub paid_amount: Option<i64>,
    pub confirmed_by: Option<String>,
    /// Confirmations refused because their amount or currency differed from the order.
    pub mismatches: i64,
    pub credited_at: Option<String>,
    pub updated_at: String,
    /// What has been refunded of the order (micro-units); the state stays `paid`.
    pub refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    pub order_id: String,
    pub at: String,
    /// `placed`, `checkout`, `paid`, `mismatch`, `failed`, `expired`, `credited` or `refunded`.
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeRow {
    pub code_id: String,
    pub amount: i64,
    pub currency: String,
    pub expires_at: Option<String>,
    pub note: String,
    pub issued_at: String,
    /// `issued`, `redeemed` or `disabled`.
    pub state: String,
    pub redeemed_by: Option<String>,
    pub redeemed_at: Option<String>,
    pub credited_at: Option<String>,
    /// The code's first characters, for telling codes apart (absent on older codes).
    pub prefix: Option<String>,
}

/// Micro-units as people write amounts: two to six decimals, by integer arithmetic.
fn amount_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let mut fraction = format!("{:06}", abs % 1_000_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{}.{fraction}", abs / 1_000_000)
}

fn time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn decode<E: DeserializeOwned>(event: &StoredEvent) -> Option<E> {
    match serde_json::from_value(event.payload.clone()) {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            tracing::error!(position = event.position, %error, "recharge event does not decode; skipped");
            None
        }
    }
}

pub(super) async fn apply(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    match event.aggregate_type.as_str() {
        types::RECHARGE_ORDER => {
            if let Some(e) = decode::<RechargeEvent>(event) {
                apply_order(tx, event, e).await?;
            }
        }
        types::PREPAID_CODE => {
            if let Some(e) = decode::<PrepaidEvent>(event) {
                apply_code(tx, event, e).await?;
            }
        }
        types::ACCOUNT => {
            if let Some(AccountEvent::Credited { source, .. }) = decode(event) {
                apply_credit(tx, event, source.kind, &source.reference).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn history(
    tx: &mut DbTx<'_>,
    event: &StoredEvent,
    order_id: &str,
    kind: &str,
    detail: String,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO recharge_history (order_id, position, at, kind, detail)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, position) DO NOTHING",
        )
        .bind(order_id)
        .bind(event.position)
        .bind(&event.recorded_at)
        .bind(kind)
        .bind(detail)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

async fn apply_order(
    tx: &mut DbTx<'_>,
    event: &StoredEvent,
    payload: RechargeEvent,
) -> Result<(), sqlx::Error> {
    let id = event.aggregate_id.as_str();
    let at = event.recorded_at.as_str();
    match payload {
        RechargeEvent::Placed {
            tenant_id,
            amount,
            currency,
            method,
            placed_at,
            expires_at,
        } => {
            let method = serde_json::to_value(method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            on_tx!(tx, conn => {
                sqlx::query(
                    "INSERT INTO recharge_orders
                       (order_id, tenant_id, amount, currency, method, state, placed_at,
                        expires_at, mismatches, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, 0, $8)
                     ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(id)
                .bind(&tenant_id)
                .bind(amount.0)
                .bind(&currency)
                .bind(&method)
                .bind(time(&placed_at))
                .bind(time(&expires_at))
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            let detail = format!("{} {currency} by {method}", amount_text(amount.0));
            history(tx, event, id, "placed", detail).await
        }
        RechargeEvent::CheckoutCreated {
            provider_ref,
            pay_url,
        } => {
            on_tx!(tx, conn => {
                sqlx::query(
                    "UPDATE recharge_orders SET provider_ref = $2, pay_url = $3, updated_at = $4
                      WHERE order_id = $1",
                )
                .bind(id)
                .bind(&provider_ref)
                .bind(&pay_url)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            history(tx, event, id, "checkout", provider_ref).await
        }
        RechargeEvent::Paid {
            amount,
            currency,
            provider_ref,
            paid_at,
            confirmed_by,
            ..
        } => {
            on_tx!(tx, conn => {
                sqlx::query(
                    "UPDATE recharge_orders SET state = 'paid', paid_at = $2, paid_amount = $3,
                            provider_ref = COALESCE(provider_ref, $4), confirmed_by = $5,
                            updated_at = $6
                      WHERE order_id = $1",
                )
                .bind(id)
                .bind(time(&paid_at))
                .bind(amount.0)
                .bind(&provider_ref)
                .bind(&confirmed_by)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            let detail = format!(
                "{} {currency} received ({confirmed_by}, {provider_ref})",
                amount_text(amount.0)
            );
            history(tx, event, id, "paid", detail).await
        }
        RechargeEvent::PaymentMismatch {
            expected,
            received,
            currency,
            provider_ref,
            ..
        } => {
            on_tx!(tx, conn => {
                sqlx::query(
                    "UPDATE recharge_orders SET mismatches = mismatches + 1, updated_at = $2
                      WHERE order_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            let detail = format!(
                "refused: {} {currency} received for an order of {} ({provider_ref})",
                amount_text(received.0),
                amount_text(expected.0)
            );
            history(tx, event, id, "mismatch", detail).await
        }
        RechargeEvent::Failed { reason, .. } => {
            set_state(tx, id, "failed", at).await?;
            history(tx, event, id, "failed", reason).await
        }
        RechargeEvent::Expired { .. } => {
            set_state(tx, id, "expired", at).await?;
            history(tx, event, id, "expired", String::new()).await
        }
        RechargeEvent::Refunded { amount, reason, .. } => {
            on_tx!(tx, conn => {
                sqlx::query(
                    "UPDATE recharge_orders SET refunded = refunded + $2, updated_at = $3
                      WHERE order_id = $1",
                )
                .bind(id)
                .bind(amount.0)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            let detail = format!("{} refunded: {reason}", amount_text(amount.0));
            history(tx, event, id, "refunded", detail).await
        }
    }
}

async fn set_state(tx: &mut DbTx<'_>, id: &str, state: &str, at: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE recharge_orders SET state = $2, updated_at = $3
              WHERE order_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(state)
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

async fn apply_code(
    tx: &mut DbTx<'_>,
    event: &StoredEvent,
    payload: PrepaidEvent,
) -> Result<(), sqlx::Error> {
    let id = event.aggregate_id.as_str();
    match payload {
        PrepaidEvent::Issued {
            amount,
            currency,
            expires_at,
            note,
            issued_at,
            prefix,
        } => on_tx!(tx, conn => {
            sqlx::query(
                "INSERT INTO prepaid_codes
                   (code_id, amount, currency, expires_at, note, issued_at, state, prefix)
                 VALUES ($1, $2, $3, $4, $5, $6, 'issued', $7) ON CONFLICT (code_id) DO NOTHING",
            )
            .bind(id)
            .bind(amount.0)
            .bind(&currency)
            .bind(expires_at.as_ref().map(time))
            .bind(&note)
            .bind(time(&issued_at))
            .bind(&prefix)
            .execute(conn)
            .await
            .map(|_| ())
        }),
        PrepaidEvent::Redeemed { tenant_id, at, .. } => on_tx!(tx, conn => {
            sqlx::query(
                "UPDATE prepaid_codes SET state = 'redeemed', redeemed_by = $2, redeemed_at = $3
                  WHERE code_id = $1",
            )
            .bind(id)
            .bind(&tenant_id)
            .bind(time(&at))
            .execute(conn)
            .await
            .map(|_| ())
        }),
        PrepaidEvent::Disabled { .. } => on_tx!(tx, conn => {
            sqlx::query("UPDATE prepaid_codes SET state = 'disabled' WHERE code_id = $1")
                .bind(id)
                .execute(conn)
                .await
                .map(|_| ())
        }),
    }
}

async fn apply_credit(
    tx: &mut DbTx<'_>,
    event: &StoredEvent,
    kind: CreditKind,
    reference: &str,
) -> Result<(), sqlx::Error> {
    let at = event.recorded_at.as_str();
    match kind {
        CreditKind::RechargeOrder => {
            let Some(order_id) = reference.strip_prefix("order:") else {
                return Ok(());
            };
            on_tx!(tx, conn => {
                sqlx::query("UPDATE recharge_orders SET credited_at = $2 WHERE order_id = $1")
                    .bind(order_id)
                    .bind(at)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
            history(tx, event, order_id, "credited", String::new()).await
        }
        CreditKind::Voucher => {
            let Some(code_id) = reference.strip_prefix("code:") else {
                return Ok(());
            };
            on_tx!(tx, conn => {
                sqlx::query("UPDATE prepaid_codes SET credited_at = $2 WHERE code_id = $1")
                    .bind(code_id)
                    .bind(at)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        }
        _ => Ok(()),
    }
}

// ---- reads ----

const ORDER_COLUMNS: &str = "order_id, tenant_id, amount, currency, method, state, provider_ref, \
    pay_url, placed_at, expires_at, paid_at, paid_amount, confirmed_by, mismatches, credited_at, \
    updated_at, refunded";

fn order_row<R: Row>(row: &R) -> Result<OrderRow, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OrderRow {
        order_id: row.try_get("order_id")?,
        tenant_id: row.try_get("tenant_id")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        method: row.try_get("method")?,
        state: row.try_get("state")?,
        provider_ref: row.try_get("provider_ref")?,
        pay_url: row.try_get("pay_url")?,
        placed_at: row.try_get("placed_at")?,
        expires_at: row.try_get("expires_at")?,
        paid_at: row.try_get("paid_at")?,
        paid_amount: row.try_get("paid_amount")?,
        confirmed_by: row.try_get("confirmed_by")?,
        mismatches: row.try_get("mismatches")?,
        credited_at: row.try_get("credited_at")?,
        updated_at: row.try_get("updated_at")?,
        refunded: row.try_get("refunded")?,
    })
}

/// Which orders to list. Every variant but `All` is bound as a parameter.
pub enum OrderQuery<'a> {
    /// One tenant's orders, newest first.
    Tenant(&'a str),
    /// Pending orders whose expiry has passed at the given time.
    DueToExpire(&'a str),
    /// Paid orders not credited, paid before the given time.
    PaidNotCredited(&'a str),
    /// Orders with refused confirmations (for finance).
    Flagged,
    /// Every order, newest first.
    All,
}

pub async fn orders(db: &Db, query: OrderQuery<'_>) -> Result<Vec<OrderRow>, sqlx::Error> {
    // Only fixed SQL fragments — never data — go into the text.
    let (condition, value) = match query {
        OrderQuery::Tenant(tenant) => ("tenant_id = $1", Some(tenant)),
        OrderQuery::DueToExpire(now) => ("state = 'pending' AND expires_at <= $1", Some(now)),
        OrderQuery::PaidNotCredited(before) => (
            "state = 'paid' AND credited_at IS NULL AND updated_at < $1",
            Some(before),
        ),
        OrderQuery::Flagged => ("mismatches > 0", None),
        OrderQuery::All => ("1 = 1", None),
    };
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM recharge_orders WHERE {condition}
          ORDER BY placed_at DESC, order_id LIMIT 10000"
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query(&sql);
        if let Some(value) = value {
            q = q.bind(value);
        }
        q.fetch_all(pool).await?.iter().map(order_row).collect()
    })
}

/// What the console's order list filters by; absent filters match every order.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter<'a> {
    pub state: Option<&'a str>,
    pub method: Option<&'a str>,
    pub tenant_id: Option<&'a str>,
}

/// Orders matching `filter`, newest first, paged; and how many match in all.
pub async fn search(
    db: &Db,
    filter: OrderFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrderRow>, i64), sqlx::Error> {
    let condition = "($1 IS NULL OR state = $1) AND ($2 IS NULL OR method = $2)
                     AND ($3 IS NULL OR tenant_id = $3)";
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM recharge_orders WHERE {condition}
          ORDER BY placed_at DESC, order_id LIMIT $4 OFFSET $5"
    );
    let count = format!("SELECT COUNT(*) FROM recharge_orders WHERE {condition}");
    crate::on_db!(db, pool => {
        let rows = sqlx::query(&sql)
            .bind(filter.state)
            .bind(filter.method)
            .bind(filter.tenant_id)
            .bind(limit.max(0))
            .bind(offset.max(0))
            .fetch_all(pool)
            .await?
            .iter()
            .map(order_row)
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(filter.state)
            .bind(filter.method)
            .bind(filter.tenant_id)
            .fetch_one(pool)
            .await?;
        Ok((rows, total))
    })
}

pub async fn order(db: &Db, order_id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM recharge_orders WHERE order_id = $1");
    crate::on_db!(db, pool => {
        match sqlx::query(&sql).bind(order_id).fetch_optional(pool).await? {
            Some(row) => Ok(Some(order_row(&row)?)),
            None => Ok(None),
        }
    })
}

/// An order's history, oldest first.
pub async fn order_history(db: &Db, order_id: &str) -> Result<Vec<HistoryRow>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = crate::on_db!(db, pool => {
        sqlx::query_as(
            "SELECT order_id, at, kind, detail FROM recharge_history
              WHERE order_id = $1 ORDER BY position",
        )
        .bind(order_id)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(order_id, at, kind, detail)| HistoryRow {
            order_id,
            at,
            kind,
            detail,
        })
        .collect())
}

const CODE_COLUMNS: &str = "code_id, amount, currency, expires_at, note, issued_at, state, \
    redeemed_by, redeemed_at, credited_at, prefix";

/// Prepaid codes: those one tenant redeemed (newest first), or all of them.
pub async fn codes(db: &Db, redeemed_by: Option<&str>) -> Result<Vec<CodeRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM prepaid_codes WHERE ($1 IS NULL OR redeemed_by = $1)
          ORDER BY COALESCE(redeemed_at, issued_at) DESC, code_id"
    );
    crate::on_db!(db, pool => {
        sqlx::query(&sql)
            .bind(redeemed_by)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(CodeRow {
                    code_id: row.try_get("code_id")?,
                    amount: row.try_get("amount")?,
                    currency: row.try_get("currency")?,
                    expires_at: row.try_get("expires_at")?,
                    note: row.try_get("note")?,
                    issued_at: row.try_get("issued_at")?,
                    state: row.try_get("state")?,
                    redeemed_by: row.try_get("redeemed_by")?,
                    redeemed_at: row.try_get("redeemed_at")?,
                    credited_at: row.try_get("credited_at")?,
                    prefix: row.try_get("prefix")?,
                })
            })
            .collect()
    })
}

pub(super) async fn dump(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let mut lines = Vec::new();
    let mut orders = orders(db, OrderQuery::All).await?;
    orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    for order in orders {
        lines.push(serde_json::to_string(&order).unwrap_or_default());
        for entry in order_history(db, &order.order_id).await? {
            lines.push(serde_json::to_string(&entry).unwrap_or_default());
        }
    }
    for code in codes(db, None).await? {
        lines.push(serde_json::to_string(&code).unwrap_or_default());
    }
    Ok(lines)
}
