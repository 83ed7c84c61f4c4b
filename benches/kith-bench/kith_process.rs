//! Kith as it runs in production: the `kith` binary built with this bench,
//! in its own process, so its memory and start-up are its own.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::oneshot;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::entity_service_client::EntityServiceClient;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;

/// A running `kith serve`.
pub struct Kith {
    child: Child,
    pub channel: Channel,
    /// The key a first start printed.
    pub key: Option<String>,
    pub rest: String,
    /// From spawning the process to health answering SERVING.
    pub started_in: Duration,
}

/// Whether Kith starts on an empty database (and so prints a new key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Fresh,
    Existing,
}

/// The addresses `kith serve` logs once it is serving.
struct Serving {
    grpc: String,
    rest: String,
}

impl Kith {
    pub async fn start(database_url: &str, fresh: Database) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kith"))
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--rest-addr"])
            .args(["127.0.0.1:0", "--log-format", "json", "--database-url"])
            .arg(database_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kith serve")?;
        let stdout = child.stdout.take().context("piped")?;
        let stderr = child.stderr.take().context("piped")?;
        // The key, if any, is printed before serving starts.
        let key_line = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .next()
                .and_then(Result::ok)
                .and_then(|line| line.strip_prefix("API key: ").map(str::to_owned))
        });
        let (serving_tx, serving_rx) = oneshot::channel();
        // Keeps reading after the serving line so the server never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            let mut serving_tx = Some(serving_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(serving) = parse_serving(&line)
                    && let Some(tx) = serving_tx.take()
                {
                    let _ = tx.send(serving);
                }
            }
        });
        let serving = tokio::time::timeout(Duration::from_secs(30), serving_rx)
            .await
            .context("kith did not start within 30 s")?
            .context("kith exited before serving")?;
        let channel = Endpoint::from_shared(format!("http://{}", serving.grpc))?
            .connect()
            .await?;
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest::default())
            .await?
            .into_inner();
        if health.status() != ServingStatus::Serving {
            bail!("kith started but is {:?}", health.status());
        }
        let started_in = started.elapsed();
        let key = match fresh {
            Database::Fresh => Some(
                key_line
                    .join()
                    .ok()
                    .flatten()
                    .context("a first start prints its key")?,
            ),
            Database::Existing => None,
        };
        Ok(Self {
            child,
            channel,
            key,
            rest: format!("http://{}", serving.rest),
            started_in,
        })
    }

    pub fn bearer(&self) -> Bearer {
        let key = self.key.as_deref().expect("a fresh database printed a key");
        Bearer(format!("Bearer {key}").parse().expect("keys are ASCII"))
    }

    pub fn people(&self) -> PeopleServiceClient<InterceptedService<Channel, Bearer>> {
        PeopleServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn customers(&self) -> CustomerServiceClient<InterceptedService<Channel, Bearer>> {
        CustomerServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn entities(&self) -> EntityServiceClient<InterceptedService<Channel, Bearer>> {
        EntityServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    /// Starts a new peak for `peak_rss_mb`.
    pub fn reset_peak_rss(&self) {
        reset_peak_rss(self.child.id());
    }

    pub fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(self.child.id())
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = tokio::task::spawn_blocking(move || self.child.wait()).await??;
        anyhow::ensure!(status.success(), "kith exited with {status}");
        Ok(())
    }
}

fn parse_serving(line: &str) -> Option<Serving> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["message"] != "serving" {
        return None;
    }
    Some(Serving {
        grpc: event["grpc"].as_str()?.to_owned(),
        rest: event["rest"].as_str()?.to_owned(),
    })
}

/// Sends the key with every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Resets a process's peak resident set (Linux), so each scenario reports
/// its own peak.
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

pub fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
