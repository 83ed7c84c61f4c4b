//! The `kith` command: parse the command line and dispatch. Nothing else.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser as _;

use kith::config::{Cli, Command, KeyCommand, ServeConfig, WorkspaceCommand};
use kith::domain::workspace::{ApiKeyId, WorkspaceName};
use kith::server::{Application, shutdown_signal};
use kith::service::Service;
use kith::store::Store;

/// A request moves through protobuf, domain and SQL values, each built on
/// the heap: glibc's allocator spent a quarter of the server's time on them,
/// and mimalloc, as fast, held twice the memory (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let command = Cli::parse().command;
    if let Some(code) = kith::cli::run(&command).await {
        return Ok(code);
    }
    let ran = match command {
        Command::Serve(args) => {
            let telemetry = kith::telemetry::init(args.log_format, args.otlp_endpoint.as_deref())?;
            let app = Application::build(&ServeConfig::from(args.as_ref())).await?;
            if let Some(key) = app.bootstrap_key() {
                // stdout, on a line of its own, for scripts to pick up.
                println!("API key: {key}");
                std::io::stdout().flush()?;
            }
            let served = app.run_until(shutdown_signal()).await;
            telemetry.shutdown();
            served
        }
        Command::Workspaces {
            command: WorkspaceCommand::Create { name, database },
        } => {
            let service = open(&database.database_url).await?;
            let name = WorkspaceName::parse(&name).map_err(|v| anyhow::anyhow!("{v}"))?;
            let workspace = service.create_workspace(name).await?;
            println!("{}", workspace.id);
            Ok(())
        }
        Command::Keys { command } => keys(command).await,
        Command::Import(_)
        | Command::Export(_)
        | Command::Watch(_)
        | Command::History(_)
        | Command::Backup(_) => unreachable!("`kith::cli::run` runs the data commands"),
    };
    ran.map(|()| ExitCode::SUCCESS)
}

async fn keys(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            workspace,
            database,
        } => {
            let service = open(&database.database_url).await?;
            let workspace = find_workspace(&service, &workspace).await?;
            let key = service.create_api_key(workspace).await?;
            println!("{}", key.reveal());
        }
        KeyCommand::List {
            workspace,
            database,
        } => {
            let service = open(&database.database_url).await?;
            let workspace = find_workspace(&service, &workspace).await?;
            println!("{:<32}  {:<24}  REVOKED", "KEY ID", "CREATED");
            for key in service.list_api_keys(workspace).await? {
                let revoked = key
                    .revoked_at
                    .map_or_else(|| "-".to_owned(), |at| at.to_rfc3339());
                println!(
                    "{:<32}  {:<24}  {revoked}",
                    key.id.to_string(),
                    key.created_at.to_rfc3339()
                );
            }
        }
        KeyCommand::Revoke { key_id, database } => {
            let id = ApiKeyId::parse(&key_id).map_err(|v| anyhow::anyhow!("{v}"))?;
            let service = open(&database.database_url).await?;
            let key = service
                .revoke_api_key(id)
                .await
                .context("revoking the key")?;
            println!("revoked {}", key.id);
        }
    }
    Ok(())
}

async fn open(database_url: &str) -> anyhow::Result<Service> {
    Ok(Service::new(Store::connect(database_url).await?))
}

async fn find_workspace(
    service: &Service,
    name_or_id: &str,
) -> anyhow::Result<kith::domain::WorkspaceId> {
    match service.find_workspace(name_or_id).await? {
        Some(workspace) => Ok(workspace.id),
        None => bail!("no workspace named {name_or_id}"),
    }
}
