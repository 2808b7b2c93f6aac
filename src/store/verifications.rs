//! Email verification links and the local mail outbox, shared by every replica on one database.
//!
//! Like sessions, these are plain tables, not events: a link is a means to the `EmailVerified`
//! event on the Tenant, and a mail in the outbox is what an SMTP server would have carried.
//!
//! Architecture invariant: a link's token is never stored, only its SHA-256, so a leaked table
//! opens no account's verification. (The outbox holds whole mails, link included, exactly as a
//! mail server's spool would; it is only written where no SMTP server is configured.)

use chrono::{DateTime, Utc};
use modelrouter_projections::on_db;
use sha2::{Digest, Sha256};

use super::sessions::new_token;
use super::Db;

/// What a verification token names, as the table has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub tenant_id: String,
    pub email: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

/// Creates a link for `tenant_id` to verify `email`, working until `expires_at`; returns its
/// token (which goes into the mail and exists nowhere else).
pub async fn issue(
    db: &Db,
    tenant_id: &str,
    email: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO email_verifications (token_hash, tenant_id, email, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(tenant_id)
        .bind(email)
        .bind(now.timestamp())
        .bind(expires_at.timestamp())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(token)
}

/// The link a token names, used or not, expired or not.
pub async fn find(db: &Db, token: &str) -> Result<Option<Verification>, sqlx::Error> {
    let row: Option<(String, String, i64, Option<i64>)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT tenant_id, email, expires_at, used_at
               FROM email_verifications WHERE token_hash = $1",
        )
        .bind(token_hash(token))
        .fetch_optional(pool)
        .await
    })?;
    Ok(
        row.map(|(tenant_id, email, expires_at, used_at)| Verification {
            tenant_id,
            email,
            expires_at: DateTime::from_timestamp(expires_at, 0).unwrap_or(DateTime::<Utc>::MIN_UTC),
            used: used_at.is_some(),
        }),
    )
}

/// Marks a link used, once its verification is recorded. Marking it again changes nothing.
pub async fn mark_used(db: &Db, token: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query(
            "UPDATE email_verifications SET used_at = $2
              WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash(token))
        .bind(now.timestamp())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Deletes expired links, used or not; returns how many.
pub async fn purge(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let _writing = db.write_lock().await;
    let purged = on_db!(db, pool => {
        sqlx::query("DELETE FROM email_verifications WHERE expires_at <= $1")
            .bind(now.timestamp())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(purged)
}

/// A mail kept in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// The link the mail asks its reader to follow, if any.
    pub action_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Keeps a mail (to a tenant, when it is one) in the outbox.
pub async fn keep_in_outbox(
    db: &Db,
    tenant_id: Option<&str>,
    mail: &OutboxMail,
) -> Result<(), sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO mail_outbox
                    (id, tenant_id, recipient, subject, body, action_url, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(&mail.recipient)
        .bind(&mail.subject)
        .bind(&mail.body)
        .bind(&mail.action_url)
        .bind(mail.created_at.timestamp_millis())
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// A tenant's mail in the outbox, newest first, at most `limit`.
pub async fn outbox_of(
    db: &Db,
    tenant_id: &str,
    limit: i64,
) -> Result<Vec<OutboxMail>, sqlx::Error> {
    type Row = (String, String, String, Option<String>, i64);
    let rows: Vec<Row> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT recipient, subject, body, action_url, created_at
               FROM mail_outbox WHERE tenant_id = $1
              ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(recipient, subject, body, action_url, created_at)| OutboxMail {
                recipient,
                subject,
                body,
                action_url,
                created_at: DateTime::from_timestamp_millis(created_at).unwrap_or_default(),
            },
        )
        .collect())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
