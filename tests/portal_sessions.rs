//! Portal sessions and sign-in throttling on every configured store: finding, expiring, ending
//! and purging sessions, and locking subjects after repeated failures — including failures
//! recorded at the same moment. Time is driven by explicit `now` values, never by sleeping.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use modelrouter::store::sessions::{self, Realm, SessionPolicy, ThrottleRule};
use modelrouter_projections::{on_db, Db};

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;

const POLICY: SessionPolicy = SessionPolicy {
    idle: Duration::from_secs(30 * 60),
    absolute: Duration::from_secs(12 * 60 * 60),
};

const RULE: ThrottleRule = ThrottleRule {
    max_failures: 3,
    window: Duration::from_secs(10 * 60),
    lockout: Duration::from_secs(15 * 60),
};

/// `secs` seconds after a fixed start.
fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

async fn session_rows(db: &Db) -> Vec<(String, String, String)> {
    on_db!(db, pool => {
        sqlx::query_as("SELECT token_hash, subject_id, csrf FROM portal_sessions")
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

#[tokio::test]
async fn a_session_is_found_by_its_token_and_by_no_other() {
    for store in stores().await {
        let db = store.core().await.db;
        let created = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        assert_eq!(created.expires_at, t(12 * HOUR), "{}", store.name);
        assert_ne!(created.token, created.csrf, "{}", store.name);

        let found = sessions::find_session(&db, Realm::Tenant, &created.token, t(MINUTE), &POLICY)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}: the new session is live", store.name));
        assert_eq!(found.subject_id, "tenant-a");
        assert_eq!(found.csrf, created.csrf);
        assert_eq!(found.created_at, t(0));
        assert_eq!(found.expires_at, t(12 * HOUR));

        let stranger = sessions::new_token();
        assert!(
            sessions::find_session(&db, Realm::Tenant, &stranger, t(MINUTE), &POLICY)
                .await
                .unwrap()
                .is_none(),
            "{}: an unknown token names no session",
            store.name
        );
    }
}

#[tokio::test]
async fn a_session_opens_only_its_own_realm() {
    for store in stores().await {
        let db = store.core().await.db;
        let operator = sessions::create_session(&db, Realm::Operator, "op-1", t(0), &POLICY)
            .await
            .unwrap();
        for realm in [Realm::Tenant, Realm::Agent] {
            let found = sessions::find_session(&db, realm, &operator.token, t(MINUTE), &POLICY)
                .await
                .unwrap();
            assert!(
                found.is_none(),
                "{}: an operator's token opens no {realm:?} session",
                store.name
            );
        }
        let found =
            sessions::find_session(&db, Realm::Operator, &operator.token, t(MINUTE), &POLICY)
                .await
                .unwrap()
                .expect("the operator's session is live");
        assert_eq!(found.subject_id, "op-1");
        // Ending a tenant's sessions by the same id leaves the operator's alone.
        let ended = sessions::end_subject_sessions(&db, Realm::Tenant, "op-1", None)
            .await
            .unwrap();
        assert_eq!(ended, 0, "{}", store.name);
    }
}

#[test]
fn tokens_are_32_random_bytes_in_url_safe_base64() {
    let token = sessions::new_token();
    assert_eq!(
        token.len(),
        43,
        "32 bytes are 43 base64 characters unpadded"
    );
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_ne!(token, sessions::new_token());
}

#[tokio::test]
async fn the_table_never_holds_a_session_token_in_plaintext() {
    for store in stores().await {
        let db = store.core().await.db;
        let created = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        let rows = session_rows(&db).await;
        assert_eq!(rows.len(), 1, "{}", store.name);
        for (hash, tenant, csrf) in rows {
            for column in [hash, tenant, csrf] {
                assert!(
                    !column.contains(&created.token),
                    "{}: the cookie token is stored in plaintext",
                    store.name
                );
            }
        }
    }
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_expiry_however_busy_it_is() {
    for store in stores().await {
        let db = store.core().await.db;
        let created = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        // Used every 20 minutes, it is never idle, so only the absolute expiry can end it.
        let mut now = 0;
        while now + 20 * MINUTE < 12 * HOUR {
            now += 20 * MINUTE;
            assert!(
                sessions::find_session(&db, Realm::Tenant, &created.token, t(now), &POLICY)
                    .await
                    .unwrap()
                    .is_some(),
                "{}: alive at {now}s",
                store.name
            );
        }
        assert!(sessions::find_session(
            &db,
            Realm::Tenant,
            &created.token,
            t(12 * HOUR - 1),
            &POLICY
        )
        .await
        .unwrap()
        .is_some());
        assert!(
            sessions::find_session(&db, Realm::Tenant, &created.token, t(12 * HOUR), &POLICY)
                .await
                .unwrap()
                .is_none(),
            "{}: ended at the absolute expiry",
            store.name
        );
        assert!(
            session_rows(&db).await.is_empty(),
            "{}: an ended session found by its token is deleted",
            store.name
        );
    }
}

#[tokio::test]
async fn an_idle_session_ends_and_a_used_one_outlives_its_first_idle_deadline() {
    for store in stores().await {
        let db = store.core().await.db;
        let idle = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        let almost = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        let used = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();

        assert!(
            sessions::find_session(
                &db,
                Realm::Tenant,
                &almost.token,
                t(30 * MINUTE - 1),
                &POLICY
            )
            .await
            .unwrap()
            .is_some(),
            "{}: alive until the idle timeout",
            store.name
        );
        assert!(
            sessions::find_session(&db, Realm::Tenant, &idle.token, t(30 * MINUTE), &POLICY)
                .await
                .unwrap()
                .is_none(),
            "{}: ended once idle for the idle timeout",
            store.name
        );

        // Seen at 20 minutes, the used session lives past the first deadline (30 minutes) until
        // 30 minutes after that view.
        for now in [20 * MINUTE, 45 * MINUTE] {
            assert!(
                sessions::find_session(&db, Realm::Tenant, &used.token, t(now), &POLICY)
                    .await
                    .unwrap()
                    .is_some(),
                "{}: alive at {now}s",
                store.name
            );
        }
        assert!(
            sessions::find_session(&db, Realm::Tenant, &used.token, t(75 * MINUTE), &POLICY)
                .await
                .unwrap()
                .is_none(),
            "{}: ended 30 minutes after its last view",
            store.name
        );
    }
}

#[tokio::test]
async fn views_within_a_minute_of_the_last_refresh_do_not_move_the_idle_deadline() {
    for store in stores().await {
        let db = store.core().await.db;
        let created = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        // Not written: less than a minute since sign-in. The idle deadline stays at 30 minutes.
        assert!(
            sessions::find_session(&db, Realm::Tenant, &created.token, t(59), &POLICY)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            sessions::find_session(&db, Realm::Tenant, &created.token, t(30 * MINUTE), &POLICY)
                .await
                .unwrap()
                .is_none(),
            "{}",
            store.name
        );
    }
}

#[tokio::test]
async fn signing_out_ends_one_session_and_a_password_change_ends_the_others() {
    for store in stores().await {
        let db = store.core().await.db;
        let mut a = Vec::new();
        for _ in 0..3 {
            a.push(
                sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
                    .await
                    .unwrap(),
            );
        }
        let b = sessions::create_session(&db, Realm::Tenant, "tenant-b", t(0), &POLICY)
            .await
            .unwrap();
        let live = |token: String| {
            let db = db.clone();
            async move {
                sessions::find_session(&db, Realm::Tenant, &token, t(MINUTE), &POLICY)
                    .await
                    .unwrap()
                    .is_some()
            }
        };

        sessions::end_session(&db, &a[0].token).await.unwrap();
        assert!(
            !live(a[0].token.clone()).await,
            "{}: signed out",
            store.name
        );
        assert!(live(a[1].token.clone()).await);
        // Signing out twice, or with a token that names nothing, is no error.
        sessions::end_session(&db, &a[0].token).await.unwrap();

        let ended =
            sessions::end_subject_sessions(&db, Realm::Tenant, "tenant-a", Some(&a[1].token))
                .await
                .unwrap();
        assert_eq!(ended, 1, "{}: only the other session ended", store.name);
        assert!(
            live(a[1].token.clone()).await,
            "{}: the session that changed the password stays",
            store.name
        );
        assert!(!live(a[2].token.clone()).await);
        assert!(
            live(b.token.clone()).await,
            "{}: other tenants keep their sessions",
            store.name
        );

        let ended = sessions::end_subject_sessions(&db, Realm::Tenant, "tenant-a", None)
            .await
            .unwrap();
        assert_eq!(ended, 1, "{}", store.name);
        assert!(!live(a[1].token.clone()).await);
        assert!(live(b.token.clone()).await);
    }
}

#[tokio::test]
async fn purging_deletes_ended_sessions_only() {
    for store in stores().await {
        let db = store.core().await.db;
        // Seen every 10 minutes until 11:50, so not idle at 12:05, but past its absolute expiry.
        let old = sessions::create_session(&db, Realm::Tenant, "tenant-a", t(0), &POLICY)
            .await
            .unwrap();
        for now in (1..=71).map(|i| i * 10 * MINUTE) {
            assert!(
                sessions::find_session(&db, Realm::Tenant, &old.token, t(now), &POLICY)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        // Idle since 11:30, so idle for the whole idle timeout at 12:00.
        sessions::create_session(
            &db,
            Realm::Tenant,
            "tenant-a",
            t(11 * HOUR + 30 * MINUTE),
            &POLICY,
        )
        .await
        .unwrap();
        let fresh = sessions::create_session(
            &db,
            Realm::Tenant,
            "tenant-b",
            t(11 * HOUR + 40 * MINUTE),
            &POLICY,
        )
        .await
        .unwrap();

        let now = t(12 * HOUR + 5 * MINUTE);
        let purged = sessions::purge_ended(&db, now, &POLICY).await.unwrap();
        assert_eq!(purged, 2, "{}", store.name);
        assert_eq!(session_rows(&db).await.len(), 1, "{}", store.name);
        assert!(
            sessions::find_session(&db, Realm::Tenant, &fresh.token, now, &POLICY)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(sessions::purge_ended(&db, now, &POLICY).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_subject_is_locked_after_max_failures_within_the_window_until_the_lockout_ends() {
    for store in stores().await {
        let db = store.core().await.db;
        let subject = "email:alice@example.com";
        let fail = |now: i64| sessions::record_failure(&db, subject, t(now), &RULE);

        assert_eq!(fail(0).await.unwrap(), None, "{}", store.name);
        assert_eq!(fail(MINUTE).await.unwrap(), None);
        let lock_end = t(2 * MINUTE + 15 * MINUTE);
        assert_eq!(
            fail(2 * MINUTE).await.unwrap(),
            Some(lock_end),
            "{}: the third failure within 10 minutes locks",
            store.name
        );
        assert_eq!(
            sessions::locked_until(&db, subject, t(3 * MINUTE))
                .await
                .unwrap(),
            Some(lock_end)
        );
        assert_eq!(
            sessions::locked_until(&db, "ip:203.0.113.9", t(3 * MINUTE))
                .await
                .unwrap(),
            None,
            "{}: other subjects are not locked",
            store.name
        );
        // Failing while locked keeps the lock as it was.
        assert_eq!(fail(5 * MINUTE).await.unwrap(), Some(lock_end));
        assert_eq!(
            sessions::locked_until(&db, subject, t(17 * MINUTE - 1))
                .await
                .unwrap(),
            Some(lock_end)
        );
        assert_eq!(
            sessions::locked_until(&db, subject, t(17 * MINUTE))
                .await
                .unwrap(),
            None,
            "{}: the lock ends after the lockout",
            store.name
        );

        // After the lock the count starts over: two failures do not lock again, a third does.
        assert_eq!(fail(18 * MINUTE).await.unwrap(), None, "{}", store.name);
        assert_eq!(fail(19 * MINUTE).await.unwrap(), None);
        assert_eq!(
            fail(20 * MINUTE).await.unwrap(),
            Some(t(20 * MINUTE + 15 * MINUTE))
        );
    }
}

#[tokio::test]
async fn failures_spread_over_more_than_the_window_do_not_lock() {
    for store in stores().await {
        let db = store.core().await.db;
        let subject = "ip:203.0.113.9";
        let fail = |now: i64| sessions::record_failure(&db, subject, t(now), &RULE);

        // The window runs from the first failure: the failure at 10 minutes starts a new one.
        for now in [0, 6 * MINUTE, 10 * MINUTE, 16 * MINUTE] {
            assert_eq!(fail(now).await.unwrap(), None, "{}: at {now}s", store.name);
        }
        assert_eq!(
            sessions::locked_until(&db, subject, t(16 * MINUTE))
                .await
                .unwrap(),
            None
        );
        // The third failure of the window that began at 10 minutes locks.
        assert_eq!(
            fail(19 * MINUTE).await.unwrap(),
            Some(t(19 * MINUTE + 15 * MINUTE)),
            "{}",
            store.name
        );
    }
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_count() {
    for store in stores().await {
        let db = store.core().await.db;
        let subject = "email:alice@example.com";
        let fail = |now: i64| sessions::record_failure(&db, subject, t(now), &RULE);

        fail(0).await.unwrap();
        fail(MINUTE).await.unwrap();
        sessions::clear_failures(&db, subject).await.unwrap();
        assert_eq!(fail(2 * MINUTE).await.unwrap(), None, "{}", store.name);
        assert_eq!(
            fail(3 * MINUTE).await.unwrap(),
            None,
            "{}: cleared failures do not count",
            store.name
        );
        assert!(fail(4 * MINUTE).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_recorded_at_the_same_moment_are_all_counted() {
    const N: u32 = 24;
    for store in stores().await {
        let db = store.core().await.db;
        let rule = ThrottleRule {
            max_failures: N,
            ..RULE
        };
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    sessions::record_failure(&db, "email:alice@example.com", t(0), &rule)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut locked = 0;
        for task in tasks {
            if task.await.unwrap().is_some() {
                locked += 1;
            }
        }
        // A lost update would leave the count below N (no lock); a double count would lock
        // before the last failure (more than one lock reported).
        assert_eq!(locked, 1, "{}: exactly the N-th failure locks", store.name);
        assert_eq!(
            sessions::locked_until(&db, "email:alice@example.com", t(1))
                .await
                .unwrap(),
            Some(t(15 * MINUTE))
        );
    }
}

#[tokio::test]
async fn purging_failures_keeps_counts_and_locks_that_still_matter() {
    for store in stores().await {
        let db = store.core().await.db;
        let fail = |subject: &'static str, now: i64| {
            let db = db.clone();
            async move {
                sessions::record_failure(&db, subject, t(now), &RULE)
                    .await
                    .unwrap()
            }
        };
        // Locked from 0 to 15 minutes: its lock has passed at 20.
        for _ in 0..3 {
            fail("lock-passed", 0).await;
        }
        // Locked from 10 to 25 minutes.
        for _ in 0..3 {
            fail("locked", 10 * MINUTE).await;
        }
        // One failure whose window ended at 15 minutes.
        fail("window-expired", 5 * MINUTE).await;
        // Two failures in a window that lasts until 22 minutes.
        fail("counting", 12 * MINUTE).await;
        fail("counting", 13 * MINUTE).await;

        let purged = sessions::purge_stale_failures(&db, t(20 * MINUTE), RULE.window)
            .await
            .unwrap();
        assert_eq!(purged, 2, "{}", store.name);
        assert_eq!(
            sessions::locked_until(&db, "locked", t(20 * MINUTE))
                .await
                .unwrap(),
            Some(t(25 * MINUTE)),
            "{}",
            store.name
        );
        assert!(
            fail("counting", 20 * MINUTE).await.is_some(),
            "{}: the live count survived the purge",
            store.name
        );
    }
}
