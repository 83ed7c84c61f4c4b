//! `kith-bench`: measures Kith against ceilings taken in the same run on the
//! same machine, and prints one table (BENCHMARKS.md).
//!
//! Kith runs as its own process (the `kith` binary), on a fresh database
//! per scenario. A ceiling is the same work without Kith's cost: the same
//! rows written by raw sqlx, the same reply from a tonic service that does
//! nothing else, or the same call over gRPC for a REST route. A ratio thus
//! says what the service costs, whatever the machine.

mod changes;
mod cli;
mod customers;
mod entities;
#[path = "../../tests/support/kith_process.rs"]
#[allow(dead_code, reason = "the tests use the rest")]
mod kith_process;
mod load;
mod lookups;
mod people;
mod raw;
mod replicas;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use kith::pb::kith::v1::{GetCustomerRequest, get_customer_request::Lookup};
use kith_process::{Database, Kith};
use load::{Latencies, Row, percent, times};
use people::Log;

/// The allocator Kith's own binary uses, so the ceilings run alike.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(about = "Measure Kith against the machine's own ceilings")]
struct Args {
    /// People (and entities) written per write scenario.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Batch calls in flight (raw ceilings use as many connections).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `GetCustomer` calls per lookup scenario.
    #[arg(long, default_value_t = 50_000)]
    calls: usize,
    /// `GetCustomer` calls in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// People already stored in the growth scenario.
    #[arg(long, default_value_t = 1_000_000)]
    stored: usize,
    /// Starts timed per start-up scenario.
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Changes in the log the catch-up scenario replays.
    #[arg(long, default_value_t = 1_000_000)]
    logged: usize,
    /// People in the file `kith import` reads in the cli scenario.
    #[arg(long, default_value_t = 1_000_000)]
    cli_rows: usize,
    /// Writes timed from call to a watcher's receipt.
    #[arg(long, default_value_t = 1_000)]
    latency_samples: usize,
    /// Scenario groups to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "people,entities,changes,lookup,metrics,growth,startup,cli,replicas,webhooks"
    )]
    only: Vec<Group>,
    /// A PostgreSQL server (base URL, no database) to create databases on.
    /// Without it a throwaway server is started when Debian's binaries are
    /// installed.
    #[arg(long, env = "KITH_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Only benchmark SQLite.
    #[arg(long)]
    sqlite_only: bool,
    /// Internal: serve this base64 `GetCustomerResponse` as the echo ceiling.
    #[arg(long, hide = true)]
    echo_reply: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Group {
    People,
    Entities,
    Changes,
    Lookup,
    Metrics,
    Growth,
    Startup,
    Cli,
    /// PostgreSQL only, on private servers: a standby's reads, SERIALIZABLE writes.
    Replicas,
    /// Webhook deliveries to a receiver in this process.
    Webhooks,
}

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

/// Where fresh databases come from.
struct Databases {
    dir: tempfile::TempDir,
    postgres: Option<String>,
    next: usize,
}

impl Databases {
    async fn fresh(&mut self, backend: Backend) -> anyhow::Result<String> {
        self.next += 1;
        match backend {
            Backend::Sqlite => Ok(format!(
                "sqlite://{}",
                self.dir
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

    /// Removes a database `fresh` made, once no server uses it: the large
    /// ones would otherwise fill the disk over a whole run.
    async fn discard(&self, url: &str) -> anyhow::Result<()> {
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let file = format!("{path}{suffix}");
                    match std::fs::remove_file(&file) {
                        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                            return Err(error).with_context(|| format!("removing {file}"));
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            None => Ok(kith::throwaway_postgres::drop_database(url).await?),
        }
    }

    /// A fresh database Kith has migrated and given its default workspace.
    async fn bootstrapped(&mut self, backend: Backend) -> anyhow::Result<String> {
        let url = self.fresh(backend).await?;
        kith::service::Service::new(kith::store::Store::connect(&url).await?)
            .bootstrap()
            .await?;
        Ok(url)
    }
}

/// Kith's service on a bootstrapped database, in this process, and the
/// caller its default key makes.
async fn in_process(
    database_url: &str,
) -> anyhow::Result<(kith::service::Service, kith::domain::Caller)> {
    let service = kith::service::Service::new(kith::store::Store::connect(database_url).await?);
    let workspace = service
        .find_workspace("default")
        .await?
        .context("bootstrapped")?
        .id;
    let key = service
        .list_api_keys(workspace)
        .await?
        .first()
        .context("the bootstrap key")?
        .id;
    Ok((service, kith::domain::Caller::new(workspace, key)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(reply) = &args.echo_reply {
        return customers::serve_echo(reply).await;
    }
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
        dir: tempfile::TempDir::new()?,
        postgres,
        next: 0,
    };
    let mut backends = vec![Backend::Sqlite];
    if databases.postgres.is_some() {
        backends.push(Backend::Postgres);
    }

    let mut table = Vec::new();
    for backend in backends {
        let runs = |group| args.only.contains(&group);
        let mut empty_rate = None;
        if runs(Group::People) {
            empty_rate = Some(people_scenarios(&args, &mut databases, backend, &mut table).await?);
        }
        if runs(Group::Entities) {
            entity_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Changes) {
            change_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Lookup) {
            lookup_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Metrics) {
            metrics_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Growth) {
            growth_scenarios(&args, &mut databases, backend, empty_rate, &mut table).await?;
        }
        if runs(Group::Startup) {
            startup_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Cli) {
            cli_scenarios(&args, &mut databases, backend, &mut table).await?;
        }
        if runs(Group::Webhooks) {
            webhooks::scenarios(&args, &mut databases, backend, &mut table).await?;
        }
    }
    if args.only.contains(&Group::Replicas) && !args.sqlite_only {
        replicas::scenarios(&args, &mut table).await?;
    }
    let header = format!(
        "kith-bench: {} rows per write scenario, {} batches in flight, {} lookups at {} in flight, \
         {} people stored for growth; {} cores ({}); server MB is the Kith process's peak RSS",
        args.rows,
        args.concurrency,
        args.calls,
        args.in_flight,
        args.stored,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        cpu_model(),
    );
    load::print_table(&header, &table);
    Ok(())
}

/// People batches, raw, direct, over gRPC and REST, and the import. Returns
/// the gRPC batch rate on an empty store, the growth scenario's reference.
async fn people_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<load::Measured> {
    let name = backend.name();
    let people = people::population("bench", args.rows);

    eprintln!("{name}: people, raw multi-row upsert (ceiling without the log)");
    let url = databases.bootstrapped(backend).await?;
    let cpu = own_cpu_time();
    let unlogged = people::raw_upsert(&url, &people, args.concurrency, Log::Off).await?;
    table.push(
        Row::rate(
            "people: raw sqlx upsert, 100/batch (no log)",
            name,
            &unlogged,
            "rows/s",
        )
        .server_cpu(own_cpu_time() - cpu, people.len()),
    );
    eprintln!("{name}: people, raw upsert and change rows in one transaction (ceiling)");
    let url = databases.bootstrapped(backend).await?;
    let cpu = own_cpu_time();
    let ceiling = people::raw_upsert(&url, &people, args.concurrency, Log::On).await?;
    table.push(
        Row::rate(
            "people: raw upsert + change rows, 1 tx (ceiling)",
            name,
            &ceiling,
            "rows/s",
        )
        .server_cpu(own_cpu_time() - cpu, people.len())
        .against(
            format!("{} of no log", percent(ceiling.share_of(&unlogged))),
            "",
        ),
    );

    eprintln!("{name}: people, the service in process");
    let url = databases.bootstrapped(backend).await?;
    let cpu = own_cpu_time();
    let direct = people::store_direct(&url, &people, args.concurrency).await?;
    table.push(
        Row::rate(
            "people: Service::batch_upsert_people, in process",
            name,
            &direct,
            "rows/s",
        )
        .server_cpu(own_cpu_time() - cpu, people.len())
        .against(percent(direct.share_of(&ceiling)), ""),
    );

    eprintln!("{name}: people, BatchUpsertPeople over gRPC");
    let kith = Kith::start(&databases.fresh(backend).await?, Database::Fresh).await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let batch = people::grpc_batches(&kith, &people, args.concurrency).await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate(
            "people: BatchUpsertPeople, gRPC, 100/batch",
            name,
            &batch,
            "rows/s",
        )
        .server_mb(kith.peak_rss_mb())
        .server_cpu(cpu, people.len())
        .against(percent(batch.share_of(&ceiling)), "≥ 85 %"),
    );
    table.push(
        Row::rate(
            "people: BatchUpsertPeople vs the no-log ceiling",
            name,
            &batch,
            "rows/s",
        )
        .against(percent(batch.share_of(&unlogged)), ""),
    );
    kith.stop().await?;

    eprintln!("{name}: people, Flameup REST batch route");
    let url = databases.fresh(backend).await?;
    let kith = Kith::start(&url, Database::Fresh).await?;
    let workspace = raw::RawPool::open(&url, 1)
        .await?
        .default_workspace()
        .await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let flameup_route = format!("/api/v1/workspaces/{workspace}/people/batch");
    let rest = people::rest_batches(&kith, &flameup_route, &people, args.concurrency).await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate(
            "people: Flameup REST batch (vs gRPC batch)",
            name,
            &rest,
            "rows/s",
        )
        .server_mb(kith.peak_rss_mb())
        .server_cpu(cpu, people.len())
        .against(percent(rest.share_of(&batch)), "≥ 70 %"),
    );
    kith.stop().await?;

    eprintln!("{name}: people, the contract's own REST route");
    let kith = Kith::start(&databases.fresh(backend).await?, Database::Fresh).await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let canonical = people::rest_batches(
        &kith,
        "/kith/v1/people:batchUpsert",
        &people,
        args.concurrency,
    )
    .await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate(
            "people: /kith/v1 REST batch (vs gRPC batch)",
            name,
            &canonical,
            "rows/s",
        )
        .server_mb(kith.peak_rss_mb())
        .server_cpu(cpu, people.len())
        .against(percent(canonical.share_of(&batch)), "≥ 90 %"),
    );
    kith.stop().await?;

    eprintln!("{name}: people, ImportPeople stream");
    let kith = Kith::start(&databases.fresh(backend).await?, Database::Fresh).await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let import = people::grpc_import(&kith, &people).await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate("people: ImportPeople, gRPC stream", name, &import, "rows/s")
            .server_mb(kith.peak_rss_mb())
            .server_cpu(cpu, people.len())
            .against(percent(import.share_of(&ceiling)), "≥ 100 %"),
    );
    kith.stop().await?;
    Ok(batch)
}

async fn entity_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    let mut ceilings = Vec::new();
    for log in [Log::Off, Log::On] {
        eprintln!("{name}: entities, raw multi-row upsert, log {log:?} (ceiling)");
        let url = databases.fresh(backend).await?;
        let kith = Kith::start(&url, Database::Fresh).await?;
        let owners = entities::set_up(&kith).await?;
        kith.stop().await?;
        ceilings.push(entities::raw_upsert(&url, &owners, args.rows, args.concurrency, log).await?);
    }
    let [unlogged, ceiling] = <[_; 2]>::try_from(ceilings).ok().context("two ceilings")?;
    table.push(Row::rate(
        "entities: raw sqlx upsert, 100/batch (no log)",
        name,
        &unlogged,
        "rows/s",
    ));
    table.push(
        Row::rate(
            "entities: raw upsert + change rows, 1 tx (ceiling)",
            name,
            &ceiling,
            "rows/s",
        )
        .against(
            format!("{} of no log", percent(ceiling.share_of(&unlogged))),
            "",
        ),
    );

    eprintln!("{name}: entities, BatchUpsertEntities over gRPC");
    let kith = Kith::start(&databases.fresh(backend).await?, Database::Fresh).await?;
    entities::set_up(&kith).await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let batch = entities::grpc_batches(&kith, args.rows, args.concurrency).await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate(
            "entities: BatchUpsertEntities, gRPC, 100/batch",
            name,
            &batch,
            "rows/s",
        )
        .server_mb(kith.peak_rss_mb())
        .server_cpu(cpu, args.rows)
        .against(percent(batch.share_of(&ceiling)), "≥ 85 %"),
    );
    table.push(
        Row::rate(
            "entities: BatchUpsertEntities vs the no-log ceiling",
            name,
            &batch,
            "rows/s",
        )
        .against(percent(batch.share_of(&unlogged)), ""),
    );
    kith.stop().await.map(drop)
}

/// The log's readers: a write's arrival at a watcher in another process
/// (on PostgreSQL, through another replica), and a watcher catching up on
/// a long log.
async fn change_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    let url = databases.fresh(backend).await?;
    let writer = Kith::start(&url, Database::Fresh).await?;
    let (watcher, scenario, target) = match backend {
        Backend::Sqlite => (None, "changes: write → watcher, same server", "p99 ≤ 10 ms"),
        Backend::Postgres => {
            let mut replica = Kith::start(&url, Database::Existing).await?;
            replica.key.clone_from(&writer.key);
            (
                Some(replica),
                "changes: write on A → watcher on replica B",
                "p99 ≤ 50 ms",
            )
        }
    };
    eprintln!("{name}: {scenario}, {} writes", args.latency_samples);
    let latencies = changes::write_to_event(
        &writer,
        watcher.as_ref().unwrap_or(&writer),
        args.latency_samples,
    )
    .await?;
    table.push(Row::latency(scenario, name, &latencies).against("-".to_owned(), target));
    if let Some(replica) = watcher {
        replica.stop().await?;
    }
    writer.stop().await?;

    eprintln!("{name}: changes, catching up on {} logged", args.logged);
    let url = databases.fresh(backend).await?;
    let first = Kith::start(&url, Database::Fresh).await?;
    let key = first.key.clone();
    first.stop().await?;
    changes::fill_log(&url, args.logged).await?;
    let mut kith = Kith::start(&url, Database::Existing).await?;
    kith.key = key;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let caught_up = changes::catch_up(&kith, args.logged).await?;
    let cpu = kith.cpu_time() - cpu;
    table.push(
        Row::rate(
            &format!("changes: Watch catching up on {}", args.logged),
            name,
            &caught_up,
            "changes/s",
        )
        .server_mb(kith.peak_rss_mb())
        .server_cpu(cpu, args.logged)
        .against("-".to_owned(), "≥ 50 k/s, ≤ 64 MB"),
    );
    kith.stop().await.map(drop)
}

/// `GetCustomer` at many calls in flight against a tonic echo of the same
/// reply.
async fn lookup_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    const CUSTOMERS: usize = 1_000;
    const PAGE: i32 = 20;
    let name = backend.name();
    eprintln!("{name}: GetCustomer at {} in flight", args.in_flight);
    let url = databases.fresh(backend).await?;
    let kith = Kith::start(&url, Database::Fresh).await?;
    // Users first: their companies, ten members each, are then the first
    // page of customers.
    let users = Arc::new(lookups::users(&kith, CUSTOMERS).await?);
    let people = Arc::new(lookups::people(&kith, CUSTOMERS).await?);
    let ids = Arc::new(customers::create(&kith, CUSTOMERS).await?);
    let reply = kith
        .customers()
        .get_customer(GetCustomerRequest {
            lookup: Some(Lookup::Id(ids[0].clone())),
        })
        .await?
        .into_inner();
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let get = customers::get_by_id(
        kith.channel.clone(),
        kith.bearer(),
        ids.clone(),
        args.calls,
        args.in_flight,
    )
    .await?;
    let get_cpu = kith.cpu_time() - cpu;
    let kith_mb = kith.peak_rss_mb();
    eprintln!("{name}: the same lookups at the contract's REST route");
    let cpu = kith.cpu_time();
    let rest_get =
        customers::rest_get_by_id(&kith, ids.clone(), args.calls, args.in_flight).await?;
    let rest_cpu = kith.cpu_time() - cpu;
    eprintln!("{name}: GetPerson, GetUser and a page of ListCustomers");
    let (channel, bearer) = (kith.channel.clone(), kith.bearer());
    let cpu = kith.cpu_time();
    let person = lookups::get_person(
        channel.clone(),
        bearer.clone(),
        people,
        args.calls,
        args.in_flight,
    )
    .await?;
    let person_cpu = kith.cpu_time() - cpu;
    let cpu = kith.cpu_time();
    let user = lookups::get_user(channel, bearer, users, args.calls, args.in_flight).await?;
    let user_cpu = kith.cpu_time() - cpu;
    let pages = args.calls / 10;
    let cpu = kith.cpu_time();
    let list = lookups::list_customers(&kith, PAGE, pages, args.in_flight).await?;
    let list_cpu = kith.cpu_time() - cpu;
    let bearer = kith.bearer();
    kith.stop().await?;

    eprintln!("{name}: the same lookups into the store, in process");
    let cpu = own_cpu_time();
    let direct = customers::store_direct(&url, ids.clone(), args.calls, args.in_flight).await?;
    let direct_cpu = own_cpu_time() - cpu;

    eprintln!("{name}: tonic echo of the same reply (ceiling)");
    let echo = customers::Echo::start(&reply).await?;
    echo.reset_peak_rss();
    let cpu = echo.cpu_time();
    let ceiling = customers::get_by_id(
        echo.channel.clone(),
        bearer,
        ids,
        args.calls,
        args.in_flight,
    )
    .await?;
    let echo_cpu = echo.cpu_time() - cpu;
    table.push(
        Row::rate(
            "lookup: tonic echo, same reply (ceiling)",
            name,
            &ceiling,
            "calls/s",
        )
        .server_mb(echo.peak_rss_mb())
        .server_cpu(echo_cpu, args.calls),
    );
    table.push(
        Row::rate(
            "lookup: Store get + members, no transport",
            name,
            &direct,
            "calls/s",
        )
        .server_cpu(direct_cpu, args.calls),
    );
    let p99 = |m: &load::Measured| m.latencies.p99().unwrap_or_default().as_secs_f64();
    table.push(
        Row::rate(
            &format!("lookup: GetCustomer, {} in flight", args.in_flight),
            name,
            &get,
            "calls/s",
        )
        .server_mb(kith_mb)
        .server_cpu(get_cpu, args.calls)
        .against(percent(get.share_of(&ceiling)), "≥ 60 %"),
    );
    table.push(
        Row::rate(
            "lookup: GET /kith/v1/customers/{id} (vs gRPC)",
            name,
            &rest_get,
            "calls/s",
        )
        .server_cpu(rest_cpu, args.calls)
        .against(percent(rest_get.share_of(&get)), "≥ 90 %"),
    );
    table.push(
        Row::latency("lookup: GetCustomer p99 vs echo p99", name, &get.latencies)
            .against(times(p99(&get) / p99(&ceiling)), "≤ 2×"),
    );
    table.push(
        Row::rate("lookup: GetPerson (vs echo)", name, &person, "calls/s")
            .server_cpu(person_cpu, args.calls)
            .against(percent(person.share_of(&ceiling)), "≥ 60 %"),
    );
    table.push(
        Row::rate(
            "lookup: GetUser, keys + company (vs echo)",
            name,
            &user,
            "calls/s",
        )
        .server_cpu(user_cpu, args.calls)
        .against(percent(user.share_of(&ceiling)), "≥ 60 %"),
    );
    table.push(
        Row::rate(
            &format!("lookup: ListCustomers, {PAGE} with 10 members each"),
            name,
            &list,
            "pages/s",
        )
        .server_cpu(list_cpu, pages),
    );
    Ok(())
}

/// What keeping metrics costs: GetCustomer and the people batch with
/// metrics on against `--no-metrics`, in rounds that alternate which goes
/// first, so that drift in the machine falls on both; the best round of
/// each counts.
async fn metrics_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 3;
    const CUSTOMERS: usize = 1_000;
    let name = backend.name();
    let people = people::population("metrics", args.rows);
    // Per variant (off, on): the best lookup and batch rounds, with the
    // server's CPU time in each.
    let mut best: [[Option<(load::Measured, Duration)>; 2]; 2] = Default::default();
    for round in 1..=ROUNDS {
        let variants: [(&str, &[&str]); 2] = [("off", &["--no-metrics"]), ("on", &[])];
        // Off first on odd rounds, on first on even ones.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for variant in order {
            let (label, flags) = variants[variant];
            eprintln!("{name}: metrics {label}, round {round}/{ROUNDS}");
            let kith =
                Kith::start_with(&databases.fresh(backend).await?, Database::Fresh, flags).await?;
            let ids = Arc::new(customers::create(&kith, CUSTOMERS).await?);
            let cpu = kith.cpu_time();
            let lookup = customers::get_by_id(
                kith.channel.clone(),
                kith.bearer(),
                ids,
                args.calls,
                args.in_flight,
            )
            .await?;
            let lookup_cpu = kith.cpu_time() - cpu;
            let cpu = kith.cpu_time();
            let batch = people::grpc_batches(&kith, &people, args.concurrency).await?;
            let batch_cpu = kith.cpu_time() - cpu;
            kith.stop().await?;
            keep_faster(&mut best[variant][0], (lookup, lookup_cpu));
            keep_faster(&mut best[variant][1], (batch, batch_cpu));
        }
    }
    let [
        [Some(lookup_off), Some(batch_off)],
        [Some(lookup_on), Some(batch_on)],
    ] = best
    else {
        anyhow::bail!("every round ran");
    };
    for (call, (on, on_cpu), (off, off_cpu), units, unit) in [
        ("GetCustomer", lookup_on, lookup_off, args.calls, "calls/s"),
        (
            "BatchUpsertPeople",
            batch_on,
            batch_off,
            people.len(),
            "rows/s",
        ),
    ] {
        table.push(
            Row::rate(&format!("metrics: {call}, --no-metrics"), name, &off, unit)
                .server_cpu(off_cpu, units),
        );
        table.push(
            Row::rate(
                &format!("metrics: {call}, metrics on (vs off)"),
                name,
                &on,
                unit,
            )
            .server_cpu(on_cpu, units)
            .against(percent(on.share_of(&off)), "≥ 97 %"),
        );
    }
    Ok(())
}

/// `kith import people` of a JSONL file against `ImportPeople` driven by
/// this client with the same people, each on a fresh database.
async fn cli_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    let people = people::population("cli", args.cli_rows);
    let file = databases.dir.path().join("people.jsonl");
    cli::write_jsonl(&people, &file)?;

    eprintln!("{name}: cli, ImportPeople from the bench client (ceiling)");
    let url = databases.fresh(backend).await?;
    let kith = Kith::start(&url, Database::Fresh).await?;
    let cpu = kith.cpu_time();
    let direct = people::grpc_import(&kith, &people).await?;
    let direct_cpu = kith.cpu_time() - cpu;
    kith.stop().await?;
    databases.discard(&url).await?;
    drop(people);
    table.push(
        Row::rate(
            "cli: ImportPeople, bench client (ceiling)",
            name,
            &direct,
            "rows/s",
        )
        .server_cpu(direct_cpu, args.cli_rows),
    );

    eprintln!("{name}: cli, kith import people --file people.jsonl");
    let url = databases.fresh(backend).await?;
    let kith = Kith::start(&url, Database::Fresh).await?;
    kith.reset_peak_rss();
    let cpu = kith.cpu_time();
    let run = cli::import(&kith, &file, args.cli_rows).await?;
    let server_cpu = kith.cpu_time() - cpu;
    let server_mb = kith.peak_rss_mb();
    kith.stop().await?;
    databases.discard(&url).await?;
    table.push(
        Row::rate(
            "cli: kith import people, JSONL (vs ceiling)",
            name,
            &run.measured,
            "rows/s",
        )
        .server_cpu(server_cpu, args.cli_rows)
        .server_mb(server_mb)
        .against(percent(run.measured.share_of(&direct)), "≥ 80 %"),
    );
    #[allow(clippy::cast_precision_loss)]
    let cli_cpu_us = run.cpu.as_secs_f64() * 1e6 / args.cli_rows.max(1) as f64;
    table.push(Row {
        scenario: format!("cli: kith import's own peak RSS (CPU {cli_cpu_us:.1} µs/row)"),
        backend: name,
        rate: format!("{:.0} MB", run.peak_mb),
        p50: None,
        p99: None,
        server_mb: None,
        server_cpu_us: None,
        ratio: format!("{:.0} MB", run.peak_mb),
        target: "≤ 64 MB",
    });
    Ok(())
}

/// Keeps the faster of two rounds.
fn keep_faster(best: &mut Option<(load::Measured, Duration)>, round: (load::Measured, Duration)) {
    if best
        .as_ref()
        .is_none_or(|(kept, _)| round.0.per_second > kept.per_second)
    {
        *best = Some(round);
    }
}

/// Writes and pages with a million people already stored.
async fn growth_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    empty: Option<load::Measured>,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    let url = databases.fresh(backend).await?;
    let first = Kith::start(&url, Database::Fresh).await?;
    let key = first.key.clone();
    first.stop().await?;
    eprintln!("{name}: growth, storing {} people", args.stored);
    people::preload(&url, args.stored, args.concurrency).await?;
    let mut kith = Kith::start(&url, Database::Existing).await?;
    kith.key = key;
    table.push(Row::latency(
        &format!("start to SERVING, {} people stored", args.stored),
        name,
        &Latencies::from_unsorted(vec![kith.started_in]),
    ));

    eprintln!(
        "{name}: growth, BatchUpsertPeople with {} stored",
        args.stored
    );
    kith.reset_peak_rss();
    let people = people::population("bench", args.rows);
    let batch = people::grpc_batches(&kith, &people, args.concurrency).await?;
    table.push(
        Row::rate(
            "growth: BatchUpsertPeople (vs empty store)",
            name,
            &batch,
            "rows/s",
        )
        .server_mb(kith.peak_rss_mb())
        .against(
            empty.map_or_else(|| "-".to_owned(), |empty| percent(batch.share_of(&empty))),
            "≥ 70 %",
        ),
    );

    eprintln!("{name}: growth, ListPeople deep in the list");
    let depth = args.stored * 9 / 10;
    let pages = people::list_pages(&kith, depth, 200).await?;
    table.push(Row::latency(
        "growth: ListPeople, first page of 100",
        name,
        &pages.first,
    ));
    let p50 = |l: &Latencies| l.p50().unwrap_or_default().as_secs_f64();
    table.push(
        Row::latency(
            &format!("growth: ListPeople, page at row {}", pages.depth),
            name,
            &pages.deep,
        )
        .server_mb(kith.peak_rss_mb())
        .against(times(p50(&pages.deep) / p50(&pages.first)), "≤ 1.5×"),
    );

    eprintln!("{name}: growth, ListPeople searches");
    let middle = args.stored / 2;
    let searches = [
        ("every person's email", "EXAMPLE.COM".to_owned()),
        ("one person's email", format!("stored-{middle}@")),
        ("an external id's start", format!("STORED-{middle}")),
        ("no one", "nobody-at-all".to_owned()),
    ];
    for (what, search) in searches {
        let found = people::search_page(&kith, &search, 20).await?;
        table.push(
            Row::latency(&format!("growth: ListPeople search, {what}"), name, &found)
                .against(times(p50(&found) / p50(&pages.first)), "≤ 3×"),
        );
    }
    kith.stop().await.map(drop)
}

/// Process start to health answering SERVING, on a new database (which
/// migrates) and on an existing one.
async fn startup_scenarios(
    args: &Args,
    databases: &mut Databases,
    backend: Backend,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let name = backend.name();
    eprintln!("{name}: start-up, {} starts each", args.starts);
    let target = if backend == Backend::Sqlite {
        "≤ 100 ms"
    } else {
        ""
    };
    let mut fresh = Vec::new();
    let mut url = String::new();
    for _ in 0..args.starts {
        url = databases.fresh(backend).await?;
        let kith = Kith::start(&url, Database::Fresh).await?;
        fresh.push(kith.started_in);
        kith.stop().await?;
    }
    table.push(
        Row::latency(
            "start to SERVING, new database",
            name,
            &Latencies::from_unsorted(fresh),
        )
        .against("-".to_owned(), target),
    );
    let mut again = Vec::new();
    for _ in 0..args.starts {
        let kith = Kith::start(&url, Database::Existing).await?;
        again.push(kith.started_in);
        kith.stop().await?;
    }
    table.push(
        Row::latency(
            "start to SERVING, existing database",
            name,
            &Latencies::from_unsorted(again),
        )
        .against("-".to_owned(), target),
    );
    Ok(())
}

/// This process's CPU time so far: a ceiling's cost, SQLite included when
/// it runs here.
fn own_cpu_time() -> std::time::Duration {
    kith_process::cpu_time(std::process::id())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
