//! A private PostgreSQL server for tests and benchmarks, started from
//! Debian's binaries in a temporary folder on a free loopback port, and
//! stopped by a watchdog when the process that started it exits.

use std::path::PathBuf;
use std::process::Command;

/// Starts a private server and returns its base URL (no database), or
/// `None` when Debian's binaries are not installed or it fails to start.
pub fn start() -> Option<String> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .max()?;
    let dir = std::env::temp_dir().join(format!("kith-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let data = dir.join("data");
    // initdb refuses to run as root: use the `postgres` account then.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"));
    let run = |program: PathBuf, args: &[&str]| {
        let mut command = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).output()
    };
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
    let data_str = data.to_str()?;
    let init = run(
        bin.join("initdb"),
        &["-D", data_str, "-A", "trust", "-U", "postgres", "--no-sync"],
    )
    .ok()?;
    if !init.status.success() {
        return None;
    }
    // A scratch server: no fsync, and no checkpoint in the middle of a
    // benchmark run to make one figure of two differ by half.
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 \
         -c max_wal_size=4GB -c checkpoint_timeout=1h",
        dir.display()
    );
    let log = dir.join("postgres.log");
    let started = run(
        bin.join("pg_ctl"),
        &[
            "-D",
            data_str,
            "-o",
            &options,
            "-l",
            log.to_str()?,
            "-w",
            "start",
        ],
    )
    .ok()?;
    if !started.status.success() {
        return None;
    }
    let watchdog = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; \
         {pg_ctl} -D {data_str} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        dir = dir.display(),
    );
    let mut stopper = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &watchdog]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &watchdog]);
        c
    };
    stopper.spawn().ok()?;
    Some(format!("postgres://postgres@127.0.0.1:{port}"))
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
