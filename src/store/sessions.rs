//! Sessions of people (tenants, operators, agents) and sign-in throttling, shared by every
//! replica on one database. Each session belongs to one [`Realm`]: a tenant's token never opens
//! an operator's or an agent's pages, and the other way round.
//!
//! These are plain tables, not events: a session or a failed sign-in is access state, not a
//! business fact. Nobody replays them, they change on every page view or wrong password, and
//! they are deleted as soon as they end — an event log would keep them forever for nothing.
//!
//! Architecture invariant: a session's cookie token is never stored, only its SHA-256, so a
//! leaked table names no live session. Every time is stored as integer Unix seconds.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use modelrouter_projections::on_db;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Db;

/// How long sessions live: `idle` since the last page view, `absolute` since sign-in.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

/// Which kind of identity a session signs in: they are separate people with separate logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    Tenant,
    Operator,
    Agent,
}

impl Realm {
    pub fn as_str(self) -> &'static str {
        match self {
            Realm::Tenant => "tenant",
            Realm::Operator => "operator",
            Realm::Agent => "agent",
        }
    }
}

/// A session just created. The token goes into the cookie and exists nowhere else, which is
/// why this type has no `Debug`: it must not end up in a log.
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The tenant, operator or agent id, by the session's realm.
    pub subject_id: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How often a session's `last_seen_at` is written at most. Page views in between cost no
/// write; the price is that the idle timeout may end a session up to this much early.
const REFRESH_EVERY_SECS: i64 = 60;

/// A new random token: 32 bytes from the operating system's CSPRNG, URL-safe base64 without
/// padding. Used for session cookies, CSRF tokens and the pre-sign-in CSRF cookie.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a session for `subject_id` in `realm`, ending at the latest `policy.absolute` after
/// `now`.
pub async fn create_session(
    db: &Db,
    realm: Realm,
    subject_id: &str,
    now: DateTime<Utc>,
    policy: &SessionPolicy,
) -> Result<NewSession, sqlx::Error> {
    let token = new_token();
    let csrf = new_token();
    let now = now.timestamp();
    let expires_at = now.saturating_add(secs(policy.absolute));
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO portal_sessions
                    (token_hash, realm, subject_id, csrf, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(token_hash(&token))
        .bind(realm.as_str())
        .bind(subject_id)
        .bind(&csrf)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(NewSession {
        token,
        csrf,
        expires_at: at(expires_at),
    })
}

/// The live session of `realm` a cookie token names, if any. Refreshes last_seen_at, but writes
/// at most once a minute per session, so page views do not each cost a write.
pub async fn find_session(
    db: &Db,
    realm: Realm,
    token: &str,
    now: DateTime<Utc>,
    policy: &SessionPolicy,
) -> Result<Option<Session>, sqlx::Error> {
    let hash = token_hash(token);
    let now = now.timestamp();
    let idle_since = now.saturating_sub(secs(policy.idle));
    let row: Option<(String, String, i64, i64, i64)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT subject_id, csrf, created_at, last_seen_at, expires_at
               FROM portal_sessions WHERE token_hash = $1 AND realm = $2",
        )
        .bind(&hash)
        .bind(realm.as_str())
        .fetch_optional(pool)
        .await
    })?;
    let Some((subject_id, csrf, created_at, last_seen_at, expires_at)) = row else {
        return Ok(None);
    };

    if expires_at <= now || last_seen_at <= idle_since {
        // Ended: delete it now rather than wait for the purge. The condition is repeated so a
        // replica that refreshed the session a moment ago (with a later clock) keeps it.
        let _writing = db.write_lock().await;
        on_db!(db, pool => {
            sqlx::query(
                "DELETE FROM portal_sessions
                  WHERE token_hash = $1 AND (expires_at <= $2 OR last_seen_at <= $3)",
            )
            .bind(&hash)
            .bind(now)
            .bind(idle_since)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        return Ok(None);
    }

    if now - last_seen_at >= REFRESH_EVERY_SECS {
        // `last_seen_at < $2` keeps the time from moving backwards when replicas' clocks differ.
        let _writing = db.write_lock().await;
        on_db!(db, pool => {
            sqlx::query(
                "UPDATE portal_sessions SET last_seen_at = $2
                  WHERE token_hash = $1 AND last_seen_at < $2",
            )
            .bind(&hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
    }

    Ok(Some(Session {
        subject_id,
        csrf,
        created_at: at(created_at),
        expires_at: at(expires_at),
    }))
}

/// Ends the session a cookie token names (sign-out). Ending an unknown session is no error.
pub async fn end_session(db: &Db, token: &str) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Ends every session of one subject in `realm` except (optionally) the one whose token is
/// given — after a password change, a suspension or a reset.
pub async fn end_subject_sessions(
    db: &Db,
    realm: Realm,
    subject_id: &str,
    except_token: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let keep = except_token.map(token_hash);
    let _writing = db.write_lock().await;
    let ended = on_db!(db, pool => {
        match &keep {
            Some(keep) => sqlx::query(
                "DELETE FROM portal_sessions
                  WHERE realm = $1 AND subject_id = $2 AND token_hash <> $3",
            )
            .bind(realm.as_str())
            .bind(subject_id)
            .bind(keep),
            None => sqlx::query("DELETE FROM portal_sessions WHERE realm = $1 AND subject_id = $2")
                .bind(realm.as_str())
                .bind(subject_id),
        }
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(ended)
}

/// Deletes ended sessions; returns how many.
pub async fn purge_ended(
    db: &Db,
    now: DateTime<Utc>,
    policy: &SessionPolicy,
) -> Result<u64, sqlx::Error> {
    let now = now.timestamp();
    let idle_since = now.saturating_sub(secs(policy.idle));
    let _writing = db.write_lock().await;
    let purged = on_db!(db, pool => {
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_since)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(purged)
}

/// When a subject's failed sign-ins lock it: `max_failures` within `window` (counted from the
/// first failure of the window) lock it for `lockout`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRule {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// Until when the subject is locked, if it is locked at `now`.
pub async fn locked_until(
    db: &Db,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let until: Option<Option<i64>> = on_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT locked_until FROM login_throttle WHERE subject = $1 AND locked_until > $2",
        )
        .bind(subject)
        .bind(now.timestamp())
        .fetch_optional(pool)
        .await
    })?;
    Ok(until.flatten().map(at))
}

/// Records one failure; returns the lock's end when this failure (or an earlier one) locked
/// the subject.
///
/// One upsert does the counting, so failures recorded at the same moment by several replicas
/// are all counted: the database serializes them on the subject's row. A `max_failures` of 0
/// locks on the first failure, as 1 does.
pub async fn record_failure(
    db: &Db,
    subject: &str,
    now: DateTime<Utc>,
    rule: &ThrottleRule,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let now = now.timestamp();
    let window_expired_before = now.saturating_sub(secs(rule.window));
    let lock_end = now.saturating_add(secs(rule.lockout));
    let _writing = db.write_lock().await;
    // The cases, in order: still locked (keep the lock, count on); the lock has passed or the
    // window has expired (start over at 1); else count on. Every SET expression sees the row
    // as it was before this statement, so the new count is spelled out again for the lock.
    let until: Option<i64> = on_db!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO login_throttle AS t (subject, failures, window_started_at, locked_until)
             VALUES ($1, 1, $2, CASE WHEN 1 >= $4 THEN $5 END)
             ON CONFLICT (subject) DO UPDATE SET
               failures = CASE
                 WHEN t.locked_until > $2 THEN t.failures + 1
                 WHEN t.locked_until IS NOT NULL OR t.window_started_at <= $3 THEN 1
                 ELSE t.failures + 1 END,
               window_started_at = CASE
                 WHEN t.locked_until > $2 THEN t.window_started_at
                 WHEN t.locked_until IS NOT NULL OR t.window_started_at <= $3 THEN $2
                 ELSE t.window_started_at END,
               locked_until = CASE
                 WHEN t.locked_until > $2 THEN t.locked_until
                 WHEN (CASE
                         WHEN t.locked_until IS NOT NULL OR t.window_started_at <= $3 THEN 1
                         ELSE t.failures + 1 END) >= $4 THEN $5 END
             RETURNING locked_until",
        )
        .bind(subject)
        .bind(now)
        .bind(window_expired_before)
        .bind(i64::from(rule.max_failures))
        .bind(lock_end)
        .fetch_one(pool)
        .await
    })?;
    // A zero lockout "locks" until now, which is no lock at all.
    Ok(until.filter(|&until| until > now).map(at))
}

/// Counts one more of something allowed `limit` times per `window` for `subject` (sign-ups
/// from one address, verification mails to one tenant) in the sign-in throttle's table: its
/// window starts at the first one counted. Returns None when this one is within the limit, else
/// until when the subject is refused (the refusals count too, and do not prolong it).
///
/// One upsert counts, so attempts at the same moment on several replicas each get their own
/// number: exactly `limit` of them pass.
pub async fn count_within_limit(
    db: &Db,
    subject: &str,
    now: DateTime<Utc>,
    limit: u32,
    window: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    // The (limit + 1)-th within the window is the first "failure" that locks.
    let rule = ThrottleRule {
        max_failures: limit.saturating_add(1),
        window,
        lockout: window,
    };
    record_failure(db, subject, now, &rule).await
}

/// Forgets a subject's failures (after a successful sign-in).
pub async fn clear_failures(db: &Db, subject: &str) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1")
            .bind(subject)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Deletes the rows of subjects that are not locked and whose next failure would start a new
/// count anyway (their lock has passed, or their window has expired); returns how many.
/// `window` should be the longest window of the rules in use, so no rule loses a live count.
pub async fn purge_stale_failures(
    db: &Db,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<u64, sqlx::Error> {
    let now = now.timestamp();
    let window_expired_before = now.saturating_sub(secs(window));
    let _writing = db.write_lock().await;
    let purged = on_db!(db, pool => {
        sqlx::query(
            "DELETE FROM login_throttle
              WHERE (locked_until IS NOT NULL AND locked_until <= $1)
                 OR (locked_until IS NULL AND window_started_at <= $2)",
        )
        .bind(now)
        .bind(window_expired_before)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(purged)
}

/// Lower-case hex SHA-256 of a session token: the only form in which tokens are stored.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whole seconds of a duration; durations past `i64::MAX` seconds are as good as forever.
fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The instant `secs` Unix seconds name, clamped to what `DateTime` can hold (a policy of
/// "forever" saturates to `i64::MAX` seconds, which chrono cannot represent).
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}
