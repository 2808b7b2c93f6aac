//! The event store and the write side: connecting and migrating either backend, the command
//! bus over the cqrs-es frameworks, email reservations, and the metering spool.
//!
//! Architecture invariant: this is the only module that names a concrete store backend
//! (besides the projections crate's SQL).

mod commands;
pub mod replicas;
pub mod sessions;
pub mod spool;
pub mod verifications;

pub use commands::{CommandError, Commands};
pub use modelrouter_projections::Db;
pub use spool::{MeteringRecord, Spool, SpoolSettings, SpoolTask};

use modelrouter_projections::on_db;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Connects to the configured store and applies pending migrations.
pub async fn open(url: &str) -> Result<Db, StoreError> {
    let db = Db::connect(url).await?;
    db.migrate().await?;
    Ok(db)
}

/// What kind of login owns an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    Tenant,
    Operator,
    Agent,
}

impl LoginKind {
    fn as_str(self) -> &'static str {
        match self {
            LoginKind::Tenant => "tenant",
            LoginKind::Operator => "operator",
            LoginKind::Agent => "agent",
        }
    }
}

/// Reserves an email for a new login. Returns false when another login holds it.
/// The reservation precedes the `Registered` event; a registration that then fails releases it.
pub async fn reserve_email(
    db: &Db,
    email: &str,
    kind: LoginKind,
    owner_id: &str,
) -> Result<bool, sqlx::Error> {
    let _writing = db.write_lock().await;
    let inserted = on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO email_reservations (email, kind, owner_id) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(kind.as_str())
        .bind(owner_id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(inserted == 1)
}

pub async fn release_email(db: &Db, email: &str, owner_id: &str) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query("DELETE FROM email_reservations WHERE email = $1 AND owner_id = $2")
            .bind(email)
            .bind(owner_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Reserves an agent's referral code, so two agents never share one. Codes live in the same
/// unique table as emails, under a `referral:` key no email can have. Returns false when taken.
pub async fn reserve_referral_code(
    db: &Db,
    code: &str,
    agent_id: &str,
) -> Result<bool, sqlx::Error> {
    let _writing = db.write_lock().await;
    let inserted = on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO email_reservations (email, kind, owner_id) VALUES ($1, 'referral', $2)
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(format!("referral:{code}"))
        .bind(agent_id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(inserted == 1)
}

/// The owner of a reserved email, if any.
pub async fn email_owner(
    db: &Db,
    email: &str,
    kind: LoginKind,
) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar("SELECT owner_id FROM email_reservations WHERE email = $1 AND kind = $2")
            .bind(email)
            .bind(kind.as_str())
            .fetch_optional(pool)
            .await
    })
}
