//! The `kith` command: parse the command line and dispatch. Nothing else.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use clap::Parser as _;

use kith::config::{Cli, Command, KeyCommand, ServeConfig, WorkspaceCommand};
use kith::domain::workspace::{ApiKeyId, NewApiKey, WorkspaceName};
use kith::server::{Application, shutdown_signal};
use kith::store::{self, Store};

/// A request moves through protobuf, domain and SQL values, each built on
/// the heap: glibc's allocator spent a quarter of the server's time on them,
/// and mimalloc, as fast, held twice the memory (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            kith::telemetry::init(args.log_format);
            let app = Application::build(&ServeConfig::from(&args)).await?;
            if let Some(key) = app.bootstrap_key() {
                // stdout, on a line of its own, for scripts to pick up.
                println!("API key: {key}");
                std::io::stdout().flush()?;
            }
            app.run_until(shutdown_signal()).await
        }
        Command::Workspaces {
            command: WorkspaceCommand::Create { name, database },
        } => {
            let store = store::connect(&database.database_url).await?;
            let name = WorkspaceName::parse(&name).map_err(|v| anyhow::anyhow!("{v}"))?;
            let workspace = store.create_workspace(&name).await?;
            println!("{}", workspace.id);
            Ok(())
        }
        Command::Keys { command } => keys(command).await,
    }
}

async fn keys(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            workspace,
            database,
        } => {
            let store = store::connect(&database.database_url).await?;
            let workspace = find_workspace(store.as_ref(), &workspace).await?;
            let key = NewApiKey::generate(workspace);
            store.insert_api_key(&key).await?;
            println!("{}", key.reveal());
        }
        KeyCommand::List {
            workspace,
            database,
        } => {
            let store = store::connect(&database.database_url).await?;
            let workspace = find_workspace(store.as_ref(), &workspace).await?;
            println!("{:<32}  {:<24}  REVOKED", "KEY ID", "CREATED");
            for key in store.list_api_keys(workspace).await? {
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
            let store = store::connect(&database.database_url).await?;
            let key = store.revoke_api_key(id).await.context("revoking the key")?;
            println!("revoked {}", key.id);
        }
    }
    Ok(())
}

async fn find_workspace(
    store: &dyn Store,
    name_or_id: &str,
) -> anyhow::Result<kith::domain::WorkspaceId> {
    match store.find_workspace(name_or_id).await? {
        Some(workspace) => Ok(workspace.id),
        None => bail!("no workspace named {name_or_id}"),
    }
}
