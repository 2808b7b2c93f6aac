//! Gateway replicas as real processes, as an operator runs them: `modelrouter serve`, killed
//! with SIGKILL or stopped with SIGTERM, their logs kept for a failing test to show.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{eventually, Store};

pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
}

impl Replica {
    /// Starts `modelrouter serve` on the store with `data_dir` (SQLite: the store's own
    /// directory) and the given environment, and waits until it says it is ready.
    pub async fn start(store: &Store, data_dir: &Path, env: &[(&str, String)]) -> Replica {
        let replica = Replica::spawn(store, data_dir, env).await;
        let base = replica.url("/health/ready");
        let ready = eventually(Duration::from_secs(30), || async {
            reqwest::get(&base).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready, "the replica never became ready:\n{}", replica.logs());
        replica
    }

    /// Starts it without waiting for readiness (it is listening when this returns).
    pub async fn spawn(store: &Store, data_dir: &Path, env: &[(&str, String)]) -> Replica {
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelrouter"));
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("MODELROUTER_DATABASE_URL")
            .env("MODELROUTER_MASTER_KEY", "11".repeat(32))
            .env("MODELROUTER_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = &store.url {
            command.env("MODELROUTER_DATABASE_URL", url);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = stderr.lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
                .await
                .expect("the replica printed nothing")
                .unwrap()
                .unwrap_or_else(|| panic!("the replica ended:\n{}", logs.lock().unwrap()));
            if let Some(at) = line.split("http://").nth(1) {
                break at.trim().parse::<SocketAddr>().unwrap();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Replica {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL: the process ends at once, with nothing drained, settled or released.
    pub async fn kill(mut self) -> String {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        self.logs()
    }

    /// SIGTERM: a graceful stop (requests drained, records stored, leases settled and
    /// released). Returns the logs.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the replica did not stop within 60 s")
            .unwrap();
        assert!(status.success(), "the replica failed:\n{}", self.logs());
        self.logs()
    }
}
