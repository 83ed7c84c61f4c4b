//! `kith-bench`: measures Kith against ceilings taken in the same run on the
//! same machine, and prints one table.
//!
//! Every scenario gets a fresh database. A ceiling is the same work without
//! the service in between (a raw sqlx multi-row upsert of the very same
//! rows), so a ratio says what the service costs, whatever the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use kith::config::ServeConfig;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::{BatchUpsertPeopleRequest, ImportPeopleRequest, PersonUpsert};
use kith::server::Application;
use prost_types::{Struct, Value, value::Kind};
use sqlx::types::Json;
use tokio::sync::oneshot;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
#[command(about = "Measure Kith against the machine's own ceilings")]
struct Args {
    /// People written per scenario.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Requests in flight for batch scenarios (raw ceilings use as many
    /// connections).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// A PostgreSQL server (base URL, no database) to create databases on.
    /// Without it a throwaway server is started when Debian's binaries are
    /// installed.
    #[arg(long, env = "KITH_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Only benchmark SQLite.
    #[arg(long)]
    sqlite_only: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const BATCH: usize = 100;
const IMPORT_CHUNK: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// One line of the table.
struct Row {
    scenario: &'static str,
    backend: Backend,
    rate: f64,
    unit: &'static str,
    p50: Option<Duration>,
    p99: Option<Duration>,
    peak_rss_mb: f64,
    ceiling: Option<f64>,
}

/// Where fresh databases come from.
struct Databases {
    _dir: tempfile::TempDir,
    postgres: Option<String>,
    next: usize,
}

impl Databases {
    async fn fresh(&mut self, backend: Backend) -> anyhow::Result<String> {
        self.next += 1;
        match backend {
            Backend::Sqlite => Ok(format!(
                "sqlite://{}",
                self._dir
                    .path()
                    .join(format!("bench-{}.db", self.next))
                    .display()
            )),
            Backend::Postgres => {
                let server = self.postgres.as_ref().context("no PostgreSQL server")?;
                Ok(kith::throwaway_postgres::create_database(server).await?)
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let postgres = if args.sqlite_only {
        None
    } else {
        args.postgres_url
            .clone()
            .or_else(kith::throwaway_postgres::start)
    };
    if postgres.is_none() && !args.sqlite_only {
        eprintln!(
            "PostgreSQL: no server given and none could be started; benchmarking SQLite only"
        );
    }
    let mut databases = Databases {
        _dir: tempfile::TempDir::new()?,
        postgres,
        next: 0,
    };
    let mut backends = vec![Backend::Sqlite];
    if databases.postgres.is_some() {
        backends.push(Backend::Postgres);
    }

    let people = generate(args.rows);
    let mut table = Vec::new();
    for backend in backends {
        eprintln!("{}: raw multi-row upsert ceiling", backend.name());
        let raw = raw_upsert(&databases.fresh(backend).await?, &people, args.concurrency).await?;
        let ceiling = raw.rate;
        table.push(Row { backend, ..raw });

        eprintln!("{}: Store::upsert_people, no transport", backend.name());
        let direct =
            store_batches(&databases.fresh(backend).await?, &people, args.concurrency).await?;
        table.push(Row {
            backend,
            ceiling: Some(ceiling),
            ..direct
        });

        eprintln!("{}: BatchUpsertPeople over gRPC", backend.name());
        let server = Server::start(databases.fresh(backend).await?).await?;
        let batch = grpc_batches(&server, &people, args.concurrency).await?;
        let batch_rate = batch.rate;
        server.stop().await?;
        table.push(Row {
            backend,
            ceiling: Some(ceiling),
            ..batch
        });

        eprintln!("{}: Flameup REST batch route", backend.name());
        let server = Server::start(databases.fresh(backend).await?).await?;
        let rest = rest_batches(&server, &people, args.concurrency).await?;
        server.stop().await?;
        table.push(Row {
            backend,
            ceiling: Some(batch_rate),
            ..rest
        });

        eprintln!("{}: ImportPeople over gRPC", backend.name());
        let server = Server::start(databases.fresh(backend).await?).await?;
        let import = grpc_import(&server, &people).await?;
        server.stop().await?;
        table.push(Row {
            backend,
            ceiling: Some(ceiling),
            ..import
        });
    }
    print_table(&args, &table);
    Ok(())
}

/// The same people for every scenario: a stable id, an email, two known
/// traits and two attributes.
fn generate(rows: usize) -> Vec<PersonUpsert> {
    (0..rows)
        .map(|i| {
            let string = |s: String| Value {
                kind: Some(Kind::StringValue(s)),
            };
            let fields = [
                ("first_name", string(format!("First{i}"))),
                ("last_name", string(format!("Last{i}"))),
                ("plan", string("pro".to_owned())),
                (
                    "seats",
                    Value {
                        kind: Some(Kind::NumberValue(f64::from(u32::try_from(i % 50).unwrap()))),
                    },
                ),
            ];
            PersonUpsert {
                user_id: format!("bench-{i}"),
                email: Some(format!("bench-{i}@example.com")),
                traits: Some(Struct {
                    fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                }),
                status: 0,
            }
        })
        .collect()
}

/// Sends the key with every call.
#[derive(Clone)]
struct Bearer(AsciiMetadataValue);

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

/// Kith on its own database, in this process.
struct Server {
    channel: Channel,
    key: AsciiMetadataValue,
    plain_key: String,
    rest: String,
    workspace: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(database_url: String) -> anyhow::Result<Self> {
        let config = ServeConfig {
            grpc_addr: "127.0.0.1:0".parse()?,
            rest_addr: Some("127.0.0.1:0".parse()?),
            database_url,
            health_interval: Duration::from_secs(5),
        };
        let app = Application::build(&config).await?;
        let plain_key = app.bootstrap_key().context("fresh database")?.to_owned();
        let key = format!("Bearer {plain_key}").parse()?;
        let rest = format!("http://{}", app.rest_addr().context("REST is on")?);
        let workspace = app
            .store()
            .find_workspace("default")
            .await?
            .context("bootstrapped")?
            .id
            .to_string();
        let channel = Endpoint::from_shared(format!("http://{}", app.grpc_addr()))?
            .connect()
            .await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            channel,
            key,
            plain_key,
            rest,
            workspace,
            stop,
            task,
        })
    }

    fn people(&self) -> PeopleServiceClient<InterceptedService<Channel, Bearer>> {
        PeopleServiceClient::with_interceptor(self.channel.clone(), Bearer(self.key.clone()))
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Runs `work(batch index)` over every batch with `concurrency` workers and
/// returns each batch's latency.
async fn run_batches<F, Fut>(
    batches: usize,
    concurrency: usize,
    work: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches {
                        return anyhow::Ok(latencies);
                    }
                    let started = Instant::now();
                    work(batch).await?;
                    latencies.push(started.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(batches);
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(all)
}

async fn grpc_batches(
    server: &Server,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Row> {
    let batches: Arc<Vec<Vec<PersonUpsert>>> =
        Arc::new(people.chunks(BATCH).map(<[_]>::to_vec).collect());
    reset_peak_rss();
    let started = Instant::now();
    let client = server.people();
    let work_batches = batches.clone();
    let latencies = run_batches(batches.len(), concurrency, move |i| {
        let mut client = client.clone();
        let batches = work_batches.clone();
        async move {
            client
                .batch_upsert_people(BatchUpsertPeopleRequest {
                    people: batches[i].clone(),
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(measured(
        "BatchUpsertPeople (gRPC, 100/batch)",
        people.len(),
        started.elapsed(),
        Some(latencies),
    ))
}

/// The same batches through seed 002's REST route, as JSON.
async fn rest_batches(
    server: &Server,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Row> {
    let bodies: Arc<Vec<String>> = Arc::new(
        people
            .chunks(BATCH)
            .map(|chunk| {
                let people: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "userId": p.user_id,
                            "email": p.email,
                            "traits": struct_to_map(p.traits.clone().unwrap_or_default()),
                        })
                    })
                    .collect();
                serde_json::json!({ "people": people }).to_string()
            })
            .collect(),
    );
    let url = Arc::new(format!(
        "{}/api/v1/workspaces/{}/people/batch",
        server.rest, server.workspace
    ));
    let client = reqwest::Client::new();
    let key = Arc::new(server.plain_key.clone());
    reset_peak_rss();
    let started = Instant::now();
    let work_bodies = bodies.clone();
    let latencies = run_batches(bodies.len(), concurrency, move |i| {
        let (client, bodies, url, key) = (
            client.clone(),
            work_bodies.clone(),
            url.clone(),
            key.clone(),
        );
        async move {
            let response = client
                .post(url.as_str())
                .bearer_auth(key.as_str())
                .header("content-type", "application/json")
                .body(bodies[i].clone())
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "REST batch failed: {}",
                response.status()
            );
            response.bytes().await?;
            Ok(())
        }
    })
    .await?;
    Ok(measured(
        "Flameup REST batch (ceiling: gRPC batch)",
        people.len(),
        started.elapsed(),
        Some(latencies),
    ))
}

async fn grpc_import(server: &Server, people: &[PersonUpsert]) -> anyhow::Result<Row> {
    let chunks: Vec<ImportPeopleRequest> = people
        .chunks(IMPORT_CHUNK)
        .map(|chunk| ImportPeopleRequest {
            people: chunk.to_vec(),
        })
        .collect();
    reset_peak_rss();
    let started = Instant::now();
    let reply = server
        .people()
        .import_people(tokio_stream::iter(chunks))
        .await?
        .into_inner();
    anyhow::ensure!(
        usize::try_from(reply.created_count)? == people.len(),
        "import created {} of {}",
        reply.created_count,
        people.len()
    );
    Ok(measured(
        "ImportPeople (gRPC stream)",
        people.len(),
        started.elapsed(),
        None,
    ))
}

/// One raw multi-row upsert, written once for both backends' types.
macro_rules! raw_batch {
    ($db:ty, $pool:expr, $workspace:expr, $rows:expr) => {{
        let now = chrono::Utc::now();
        let mut query = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO people (id, workspace_id, external_id, email, email_key, first_name, \
             last_name, status, attributes, search_text, created_at, updated_at, first_seen_at, \
             last_seen_at) ",
        );
        query.push_values($rows, |mut row, p: &RawPerson| {
            row.push_bind(p.id)
                .push_bind($workspace)
                .push_bind(p.external_id.clone())
                .push_bind(p.email.clone())
                .push_bind(p.email_key.clone())
                .push_bind(p.first_name.clone())
                .push_bind(p.last_name.clone())
                .push_bind("active")
                .push_bind(Json(p.attributes.clone()))
                .push_bind(p.search_text.clone())
                .push_bind(now)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        query.push(
            " ON CONFLICT (workspace_id, external_id) DO UPDATE SET email = excluded.email, \
             email_key = excluded.email_key, first_name = excluded.first_name, \
             last_name = excluded.last_name, attributes = excluded.attributes, \
             search_text = excluded.search_text, updated_at = excluded.updated_at, \
             last_seen_at = excluded.last_seen_at",
        );
        query.build().execute($pool).await?;
        anyhow::Ok(())
    }};
}

/// Kith's own validation and store, called directly: what the service
/// costs over raw SQL before any transport.
async fn store_batches(
    database_url: &str,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Row> {
    use kith::domain::person::{self, PersonUpsertInput};
    let store = kith::store::connect(database_url).await?;
    let (workspace, _) = store.bootstrap().await?.context("fresh database")?;
    let inputs: Arc<Vec<Vec<PersonUpsertInput>>> = Arc::new(
        people
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|p| PersonUpsertInput {
                        user_id: p.user_id.clone(),
                        email: p.email.clone(),
                        traits: struct_to_map(p.traits.clone().unwrap_or_default()),
                        status: None,
                    })
                    .collect()
            })
            .collect(),
    );
    reset_peak_rss();
    let started = Instant::now();
    let work_inputs = inputs.clone();
    let latencies = run_batches(inputs.len(), concurrency, move |i| {
        let (store, inputs) = (store.clone(), work_inputs.clone());
        async move {
            let batch = person::parse_batch(inputs[i].clone())?;
            store.upsert_people(workspace.id, &batch).await?;
            Ok(())
        }
    })
    .await?;
    Ok(measured(
        "Store::upsert_people (no transport)",
        people.len(),
        started.elapsed(),
        Some(latencies),
    ))
}

fn struct_to_map(value: Struct) -> serde_json::Map<String, serde_json::Value> {
    value
        .fields
        .into_iter()
        .map(|(k, v)| {
            let json = match v.kind {
                Some(Kind::StringValue(s)) => serde_json::Value::String(s),
                #[allow(clippy::cast_possible_truncation)]
                Some(Kind::NumberValue(n)) => serde_json::Value::from(n as i64),
                _ => serde_json::Value::Null,
            };
            (k, json)
        })
        .collect()
}

/// The ceiling: the same rows, as Kith would store them, written by sqlx
/// multi-row upserts of 100 with no service in between.
async fn raw_upsert(
    database_url: &str,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Row> {
    // Kith's own migrations and bootstrap, so the schema and indexes match.
    let store = kith::store::connect(database_url).await?;
    let (workspace, _) = store.bootstrap().await?.context("fresh database")?;
    drop(store);
    let rows: Arc<Vec<RawPerson>> = Arc::new(people.iter().map(RawPerson::from).collect());
    let batches = rows.len().div_ceil(BATCH);
    reset_peak_rss();
    let started = Instant::now();
    let latencies = if database_url.starts_with("postgres") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(concurrency)?)
            .connect(database_url)
            .await?;
        run_batches(batches, concurrency, move |i| {
            let (pool, rows) = (pool.clone(), rows.clone());
            async move {
                raw_batch!(
                    sqlx::Postgres,
                    &pool,
                    workspace.id.0,
                    &rows[i * BATCH..rows.len().min((i + 1) * BATCH)]
                )
            }
        })
        .await?
    } else {
        // One writer connection, as SQLite allows one writer at a time.
        let options: sqlx::sqlite::SqliteConnectOptions = database_url.parse()?;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
            )
            .await?;
        run_batches(batches, concurrency, move |i| {
            let (pool, rows) = (pool.clone(), rows.clone());
            async move {
                raw_batch!(
                    sqlx::Sqlite,
                    &pool,
                    workspace.id.0,
                    &rows[i * BATCH..rows.len().min((i + 1) * BATCH)]
                )
            }
        })
        .await?
    };
    Ok(measured(
        "raw sqlx upsert (ceiling, 100/batch)",
        people.len(),
        started.elapsed(),
        Some(latencies),
    ))
}

/// A person row as Kith stores it.
struct RawPerson {
    id: uuid::Uuid,
    external_id: String,
    email: String,
    email_key: String,
    first_name: String,
    last_name: String,
    attributes: serde_json::Value,
    search_text: String,
}

impl From<&PersonUpsert> for RawPerson {
    fn from(person: &PersonUpsert) -> Self {
        let traits = &person
            .traits
            .as_ref()
            .expect("generated with traits")
            .fields;
        let text = |name: &str| match &traits[name].kind {
            Some(Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        #[allow(clippy::cast_possible_truncation)]
        let seats = match traits["seats"].kind {
            Some(Kind::NumberValue(n)) => n as i64,
            _ => 0,
        };
        let email = person.email.clone().unwrap_or_default();
        Self {
            id: uuid::Uuid::new_v4(),
            external_id: person.user_id.clone(),
            email_key: email.to_lowercase(),
            search_text: format!("{} {} {email}", text("first_name"), text("last_name"))
                .to_lowercase(),
            first_name: text("first_name"),
            last_name: text("last_name"),
            attributes: serde_json::json!({ "plan": text("plan"), "seats": seats }),
            email,
        }
    }
}

fn measured(
    scenario: &'static str,
    rows: usize,
    elapsed: Duration,
    latencies: Option<Vec<Duration>>,
) -> Row {
    let (p50, p99) = latencies.map_or((None, None), |mut l| {
        l.sort_unstable();
        (Some(percentile(&l, 0.50)), Some(percentile(&l, 0.99)))
    });
    #[allow(clippy::cast_precision_loss)]
    let rate = rows as f64 / elapsed.as_secs_f64();
    Row {
        scenario,
        backend: Backend::Sqlite,
        rate,
        unit: "rows/s",
        p50,
        p99,
        peak_rss_mb: peak_rss_mb(),
        ceiling: None,
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

/// Resets the process's peak resident set (Linux), so each scenario reports
/// its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn print_table(args: &Args, rows: &[Row]) {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "kith-bench: {} people per scenario, {} in flight, {cores} cores, peak RSS is the whole bench process",
        args.rows, args.concurrency
    );
    println!(
        "| {:<42} | {:<8} | {:>12} | {:>8} | {:>8} | {:>9} | {:>8} |",
        "scenario", "backend", "rate", "p50 ms", "p99 ms", "peak MB", "ceiling"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(44),
        "-".repeat(10),
        "-".repeat(14),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(11),
        "-".repeat(10)
    );
    for row in rows {
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.2}", d.as_secs_f64() * 1000.0),
            )
        };
        let ratio = row.ceiling.map_or_else(
            || "-".to_owned(),
            |c| format!("{:.0} %", 100.0 * row.rate / c),
        );
        println!(
            "| {:<42} | {:<8} | {:>12} | {:>8} | {:>8} | {:>9.1} | {:>8} |",
            row.scenario,
            row.backend.name(),
            format!("{:.0} {}", row.rate, row.unit),
            ms(row.p50),
            ms(row.p99),
            row.peak_rss_mb,
            ratio
        );
    }
}
