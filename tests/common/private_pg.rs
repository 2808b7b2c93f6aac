//! A PostgreSQL server of the test's own — the server's own `initdb` and `pg_ctl`, as a non-root
//! user, on a port of its own — so a test can stop and start it under load. Never the machine's
//! own instance.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;
use tokio::process::Command;

pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The user the server runs as, when the test runs as root (PostgreSQL refuses root).
    user: Option<&'static str>,
}

impl PrivatePostgres {
    /// Initializes and starts a server, or None when this machine has no PostgreSQL server
    /// binaries (the test then says it was skipped).
    pub async fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let root = Command::new("id").arg("-u").output().await.unwrap().stdout == b"0\n";
        let user = root.then_some("nobody");
        if let Some(user) = user {
            let owned = Command::new("chown")
                .args(["-R", &format!("{user}:"), dir.path().to_str().unwrap()])
                .status()
                .await
                .unwrap();
            assert!(owned.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivatePostgres {
            port,
            dir,
            bin,
            user,
        };
        let data = server.data_dir();
        server
            .run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            )
            .await;
        server.start_again().await;
        Some(server)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Runs one of the server's programs (as the server's user).
    async fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = match self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the (stopped) server and waits until it takes connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        )
        .await;
        let url = self.url("postgres");
        let up = super::eventually(Duration::from_secs(30), || async {
            sqlx::PgConnection::connect(&url).await.is_ok()
        })
        .await;
        assert!(up, "the private PostgreSQL did not come up");
    }

    /// Stops the server (fast: open connections are cut, as in a crash of the network path).
    pub async fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        )
        .await;
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        self.url(name)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut command = match self.user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command
                    .args(["-u", user, "--"])
                    .arg(self.bin.join("pg_ctl"));
                command
            }
            None => std::process::Command::new(self.bin.join("pg_ctl")),
        };
        let _ = command
            .args(["-D", &self.data_dir(), "-m", "immediate", "stop"])
            .output();
    }
}
