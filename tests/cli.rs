//! The `modelrouter` binary as an operator uses it.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_modelrouter");

fn run(data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("MODELROUTER_DATABASE_URL")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_import_rebuild_and_admin_create() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(dir.path(), &["--version"]);
    assert!(ok && out.starts_with("modelrouter "), "{out}");

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/import-example.toml"
    );
    let (ok, out, err) = run(dir.path(), &["import", example]);
    assert!(ok, "{err}");
    assert!(!out.contains(" 0 new events"), "{out}");
    let (ok, out, err) = run(dir.path(), &["import", example]);
    assert!(ok, "{err}");
    assert!(
        out.contains(": 0 new events"),
        "a second import changes nothing: {out}"
    );

    let (ok, out, err) = run(dir.path(), &["projections", "rebuild"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("rebuilt balances") && out.contains("rebuilt usage"),
        "{out}"
    );
    let (ok, _, err) = run(dir.path(), &["projections", "rebuild", "nonsense"]);
    assert!(!ok && err.contains("unknown projection"), "{err}");

    let (ok, out, err) = run(
        dir.path(),
        &["admin", "create", "--email", "ops@example.com"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("one-time password: "), "{out}");
    let (ok, _, err) = run(
        dir.path(),
        &["admin", "create", "--email", "ops@example.com"],
    );
    assert!(!ok && err.contains("already has a login"), "{err}");

    let (ok, _, err) = run(dir.path(), &["import", "/nonexistent.toml"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[providers]]\nid = \"x\"\nprotocol = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(dir.path(), &["import", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("not a valid import file"), "{err}");
}

/// `serve --demo` prints a working curl line; SIGTERM drains metering before the process exits.
#[tokio::test]
async fn demo_serves_and_sigterm_drains_metering() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let key = "sk-mr-cli-demo-key-0000000000000";
    let mut child = tokio::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("MODELROUTER_DEMO_API_KEY", key)
        .env_remove("MODELROUTER_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the demo did not become ready");
    for i in 0..5 {
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "demo-gpt", "messages": [{"role": "user", "content": format!("hi {i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("Mock reply to: hi {i}")
        );
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout)
        .await
        .unwrap();
    assert!(
        stdout.contains(&format!("Authorization: Bearer {key}")),
        "{stdout}"
    );

    // Every call was written before exit: the usage projection, caught up offline, has five.
    let db =
        modelrouter_projections::Db::connect(dir.path().join("modelrouter.db").to_str().unwrap())
            .await
            .unwrap();
    modelrouter_projections::sql::catch_up(
        &db,
        modelrouter_projections::sql::Projection::Usage,
        1000,
    )
    .await
    .unwrap();
    let calls = modelrouter_projections::sql::usage::calls(&db, None, 100)
        .await
        .unwrap();
    assert_eq!(calls.len(), 5);
    assert!(calls.iter().all(|c| c.cost > 0 && c.status == 200));
}
