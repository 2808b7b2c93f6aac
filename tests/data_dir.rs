//! The data directory keeps its secrets to its owner: a gateway started on a fresh directory
//! creates the SQLite store (and its WAL and shared-memory files), the master key and the
//! directory itself readable by the owner only. SQLite only: PostgreSQL keeps no files here.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::visitor::Visitor;
use modelrouter::config::Settings;
use modelrouter::server::Running;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_fresh_data_dir_and_its_files_are_private_to_the_owner() {
    let parent = tempfile::tempdir().unwrap();
    // Readable by all, as a parent often is: what the gateway creates inside must not be.
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = parent.path().join("data");
    let mut settings = Settings::local(([127, 0, 0, 1], 0).into(), data_dir.clone());
    // The visitor verifies its email through the outbox shown in the portal.
    settings.mail.outbox_in_portal = true;
    let server = Running::start(settings).await.unwrap();
    // A write, so the WAL and the shared-memory index exist.
    Visitor::sign_up(&format!("http://{}", server.addr), "owner@example.com").await;

    for file in [
        "modelrouter.db",
        "modelrouter.db-wal",
        "modelrouter.db-shm",
        "master.key",
    ] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    server.stop().await.unwrap();
}
