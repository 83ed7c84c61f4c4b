//! Private PostgreSQL servers for tests and benchmarks, started from
//! Debian's binaries in a temporary folder on a free loopback port: a
//! primary, and hot standbys streaming from it. A watchdog stops each one
//! when the process that started it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Starts a private server and returns its base URL (no database), or
/// `None` when Debian's binaries are not installed or it fails to start.
/// It runs until this process exits.
pub fn start() -> Option<String> {
    PrivateServer::start().map(PrivateServer::keep)
}

/// A running private server. Dropped, it is stopped and its files removed,
/// unless `keep` handed it to the watchdog.
pub struct PrivateServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
    kept: bool,
}

impl PrivateServer {
    /// A new primary: an empty cluster, started.
    pub fn start() -> Option<Self> {
        let server = Self::prepare()?;
        let init = server
            .run(
                "initdb",
                &[
                    "-D",
                    server.data().to_str()?,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .ok()?;
        if !init.status.success() {
            return None;
        }
        server.start_again().then_some(server)
    }

    /// A hot standby of `primary`, streaming from it (`pg_basebackup -R`),
    /// started.
    pub fn standby_of(primary: &PrivateServer) -> Option<Self> {
        let server = Self::prepare()?;
        let port = primary.port.to_string();
        let backup = server
            .run(
                "pg_basebackup",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-D",
                    server.data().to_str()?,
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ],
            )
            .ok()?;
        if !backup.status.success() {
            eprintln!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&backup.stderr)
            );
            return None;
        }
        server.start_again().then_some(server)
    }

    /// The base URL (no database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The URL of database `name` on it.
    pub fn database_url(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }

    /// Stops it (fast shutdown: sessions are disconnected). Its files stay,
    /// so it can start again.
    pub fn stop(&self) -> bool {
        let Some(data) = self.data().to_str().map(str::to_owned) else {
            return false;
        };
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .is_ok_and(|out| out.status.success())
    }

    /// Starts it (again), on the same port and files.
    pub fn start_again(&self) -> bool {
        let (Some(data), Some(log)) = (
            self.data().to_str().map(str::to_owned),
            self.dir.join("postgres.log").to_str().map(str::to_owned),
        ) else {
            return false;
        };
        // A scratch server: no fsync, and no checkpoint in the middle of a
        // benchmark run to make one figure of two differ by half.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 \
             -c max_wal_size=4GB -c checkpoint_timeout=1h",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )
        .is_ok_and(|out| out.status.success())
    }

    /// Leaves it running until this process exits, and returns its URL.
    pub fn keep(mut self) -> String {
        self.kept = true;
        self.url()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A folder and a port for a new server, and the watchdog that stops
    /// it when this process exits.
    fn prepare() -> Option<Self> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()?;
        let dir = std::env::temp_dir().join(format!(
            "kith-pg-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).ok()?;
        // initdb refuses to run as root: use the `postgres` account then.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0"));
        if as_root {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .ok()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let server = Self {
            bin,
            dir,
            port,
            as_root,
            kept: false,
        };
        server.watch_for_exit()?;
        Some(server)
    }

    fn watch_for_exit(&self) -> Option<()> {
        let watchdog = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // Detached from this process's output, which a test runner watches
        // for handles left open.
        self.command(Path::new("sh"))
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(drop)
    }

    fn run(&self, program: &str, args: &[&str]) -> std::io::Result<Output> {
        self.command(&self.bin.join(program)).args(args).output()
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Some(data) = self.data().to_str() {
            let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates an empty database on the server at `server` (a base URL without a
/// database) and returns its URL.
pub async fn create_database(server: &str) -> Result<String, sqlx::Error> {
    let name = format!("kith_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(format!("{server}/{name}"))
}

/// Drops a database `create_database` made, once nothing is connected to
/// it.
pub async fn drop_database(database_url: &str) -> Result<(), sqlx::Error> {
    let Some((server, name)) = database_url.rsplit_once('/') else {
        return Ok(());
    };
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}
