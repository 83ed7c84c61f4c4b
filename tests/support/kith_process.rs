//! Kith as it runs in production: the `kith` binary of this build in a
//! process of its own, so that its memory, start-up, logs, crashes and
//! signals are its own. Shared by the integration tests and the bench
//! (each includes this file as a module).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::oneshot;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::entity_service_client::EntityServiceClient;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;

/// A running `kith serve`.
pub struct Kith {
    child: Child,
    pub channel: Channel,
    /// The gRPC address, `127.0.0.1:<port>`.
    pub grpc: String,
    /// The key a first start printed.
    pub key: Option<String>,
    pub rest: String,
    /// The metrics listener's base URL, with `--metrics-addr`.
    pub metrics: Option<String>,
    /// From spawning the process to health answering SERVING.
    pub started_in: Duration,
    /// Every line it logged so far (JSON, at the default level).
    logs: Arc<Mutex<Vec<String>>>,
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
    metrics: Option<String>,
}

impl Kith {
    pub async fn start(database_url: &str, fresh: Database) -> anyhow::Result<Self> {
        Self::start_with(database_url, fresh, &[]).await
    }

    /// Starts with more `kith serve` flags.
    pub async fn start_with(
        database_url: &str,
        fresh: Database,
        flags: &[&str],
    ) -> anyhow::Result<Self> {
        Self::launch(database_url, fresh, flags, None, None).await
    }

    /// Starts with more flags, logging what `RUST_LOG=filter` lets through
    /// (the default level when `None`).
    pub async fn start_logging(
        database_url: &str,
        fresh: Database,
        flags: &[&str],
        filter: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::launch(database_url, fresh, flags, filter, None).await
    }

    /// Starts with TLS flags among `flags`; the channel trusts `ca` (PEM)
    /// and names the server `localhost`.
    pub async fn start_tls(database_url: &str, flags: &[&str], ca: &str) -> anyhow::Result<Self> {
        Self::launch(database_url, Database::Fresh, flags, None, Some(ca)).await
    }

    async fn launch(
        database_url: &str,
        fresh: Database,
        flags: &[&str],
        filter: Option<&str>,
        ca: Option<&str>,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kith"));
        command
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--rest-addr"])
            .args(["127.0.0.1:0", "--log-format", "json", "--database-url"])
            .arg(database_url)
            .args(flags)
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        if let Some(filter) = filter {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
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
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = logs.clone();
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
                kept.lock().expect("log lines").push(line);
            }
        });
        let serving = tokio::time::timeout(Duration::from_secs(30), serving_rx)
            .await
            .context("kith did not start within 30 s")?
            .context("kith exited before serving")?;
        let channel = match ca {
            None => Endpoint::from_shared(format!("http://{}", serving.grpc))?,
            Some(ca) => Endpoint::from_shared(format!("https://{}", serving.grpc))?.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )?,
        }
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
            grpc: serving.grpc,
            key,
            rest: format!("http://{}", serving.rest),
            metrics: serving.metrics.map(|addr| format!("http://{addr}")),
            started_in,
            logs,
        })
    }

    /// What it has logged so far, one JSON line each.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lines").clone()
    }

    pub fn bearer(&self) -> Bearer {
        Bearer::new(self.key.as_deref().expect("a fresh database printed a key"))
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

    pub fn changes(&self) -> ChangeServiceClient<InterceptedService<Channel, Bearer>> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    /// Starts a new peak for `peak_rss_mb`.
    pub fn reset_peak_rss(&self) {
        reset_peak_rss(self.child.id());
    }

    pub fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(self.child.id())
    }

    /// CPU time the process has used so far, user and system, all threads.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }

    /// SIGTERM, then waits for a clean exit; returns everything it logged.
    pub async fn stop(self) -> anyhow::Result<Vec<String>> {
        let logs = self.logs.clone();
        let status = self.terminate().wait().await?;
        anyhow::ensure!(status.success(), "kith exited with {status}");
        Ok(std::mem::take(&mut *logs.lock().expect("log lines")))
    }

    /// Sends SIGTERM and returns at once: the process drains meanwhile.
    pub fn terminate(self) -> Self {
        self.signal("TERM");
        self
    }

    /// SIGKILL: the process dies where it stands, as in a crash.
    pub async fn crash(self) -> anyhow::Result<()> {
        self.signal("KILL");
        self.wait().await?;
        Ok(())
    }

    /// Waits for the process to exit.
    pub async fn wait(self) -> anyhow::Result<ExitStatus> {
        let mut kith = self;
        Ok(tokio::task::spawn_blocking(move || kith.child.wait()).await??)
    }

    /// SIGHUP: reload the TLS files.
    pub fn hang_up(&self) {
        self.signal("HUP");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }
}

/// A test that fails part-way leaves no server behind.
impl Drop for Kith {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
        metrics: event["metrics"].as_str().map(str::to_owned),
    })
}

/// Sends the key with every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    pub fn new(key: &str) -> Self {
        Self(format!("Bearer {key}").parse().expect("keys are ASCII"))
    }
}

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

/// A process's CPU time so far, from `/proc/<pid>/stat` (Linux).
pub fn cpu_time(pid: u32) -> Duration {
    // Fields 14 and 15, counted in USER_HZ, which Linux fixes at 100 for
    // what it reports to user space.
    const TICKS_PER_SECOND: u64 = 100;
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces: count after its ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
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
