//! The `kith` commands that move a running server's data: `import` and
//! `export` (files in, files out), `watch` and `history` (the change log),
//! all over gRPC with an API key like any client; and `backup`, which
//! copies a SQLite database directly.
//!
//! Nothing here validates a record or decides what a write does: rows go to
//! the server's service layer through the public contract, and its answers
//! come back in words. The one exception is people: their rows are checked
//! with the domain's own rules before they are streamed, because a stream
//! reports only its first rejections by position (see `import`).

mod client;
mod export;
mod format;
mod import;
mod progress;
mod records;
mod watch;

use std::process::ExitCode;

use crate::config::{BackupArgs, Command};
use crate::store::Store;

/// Why a command stopped early, in words, and its exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

/// Exit codes, as `--help` documents them.
pub mod exit {
    pub const REJECTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const SERVER: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

impl Failure {
    /// Bad arguments or input: the caller can fix it.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::USAGE,
        }
    }

    /// The server (or the database) could not be reached or failed.
    pub fn server(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::SERVER,
        }
    }
}

/// Runs a data command; `None` when `command` is not one.
pub async fn run(command: &Command) -> Option<ExitCode> {
    let ended = match command {
        Command::Import(args) => import::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Watch(args) => watch::watch(args).await,
        Command::History(args) => watch::history(args).await,
        Command::Backup(args) => backup(args).await,
        Command::Serve(_) | Command::Workspaces { .. } | Command::Keys { .. } => return None,
    };
    Some(match ended {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("kith: {}", failure.message);
            ExitCode::from(failure.code)
        }
    })
}

async fn backup(args: &BackupArgs) -> Result<u8, Failure> {
    if args.to.exists() {
        return Err(Failure::usage(format!(
            "{} exists; a backup is written to a new file",
            args.to.display()
        )));
    }
    Store::back_up(&args.database.database_url, &args.to)
        .await
        .map_err(|e| Failure::server(format!("{e:#}")))?;
    eprintln!("backed up to {}", args.to.display());
    Ok(0)
}
