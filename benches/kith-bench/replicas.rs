//! Beyond one database server, on private PostgreSQL servers of its own: a
//! primary and a hot standby streaming from it. `GetCustomer` served by the
//! standby against the same calls served by the primary (and by the standby
//! with a freshness token, which costs it one more statement); writes at
//! SERIALIZABLE against READ COMMITTED. Rounds alternate which goes first;
//! the best round of each counts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::{
    CreateCustomerRequest, Customer, GetCustomerRequest, get_customer_request::Lookup,
};
use kith::throwaway_postgres::PrivateServer;

use crate::kith_process::{Database, Kith};
use crate::load::{Measured, Row, closed_loop, percent};
use crate::{Args, customers, keep_faster, people};

const ROUNDS: usize = 3;
const CUSTOMERS: usize = 1_000;
/// At most this many customers are created one per call (`--calls` when
/// fewer), at this many in flight, per write round.
const CREATES: usize = 5_000;
const CREATES_IN_FLIGHT: usize = 16;

pub async fn scenarios(args: &Args, table: &mut Vec<Row>) -> anyhow::Result<()> {
    eprintln!("replicas: a private primary and a streaming standby");
    let primary = PrivateServer::start().context("PostgreSQL cannot start here")?;
    let standby = PrivateServer::standby_of(&primary).context("no standby")?;
    let url = kith::throwaway_postgres::create_database(&primary.url()).await?;
    let database = url
        .rsplit('/')
        .next()
        .context("a database name")?
        .to_owned();
    let standby_url = standby.database_url(&database);
    wait_for(&standby_url, "SELECT 1::int8", 1).await?;

    let on_primary = Kith::start(&url, Database::Fresh).await?;
    let ids = Arc::new(customers::create(&on_primary, CUSTOMERS).await?);
    let on_standby = Kith::start_with(
        &url,
        Database::Existing,
        &["--database-read-url", &standby_url],
    )
    .await?;
    let bearer = on_primary.bearer();
    // Every customer replayed before the standby is measured.
    wait_for(&standby_url, "SELECT COUNT(*) FROM customers", CUSTOMERS).await?;
    let token = fresh_token(&on_primary).await?;

    let mut best: [Option<(Measured, Duration)>; 3] = Default::default();
    for round in 1..=ROUNDS {
        let order = if round % 2 == 1 { [0, 1, 2] } else { [2, 1, 0] };
        for variant in order {
            eprintln!("replicas: GetCustomer variant {variant}, round {round}/{ROUNDS}");
            let (kith, at_least) = match variant {
                0 => (&on_primary, None),
                1 => (&on_standby, None),
                _ => (&on_standby, Some(token.clone())),
            };
            let cpu = kith.cpu_time();
            let measured = get_by_id(kith, &bearer, ids.clone(), at_least, args).await?;
            keep_faster(&mut best[variant], (measured, kith.cpu_time() - cpu));
        }
    }
    let [Some(primary_reads), Some(standby_reads), Some(token_reads)] = best else {
        anyhow::bail!("every round ran");
    };
    let scenario =
        |what: &str| format!("replicas: GetCustomer {what}, {} in flight", args.in_flight);
    table.push(
        Row::rate(
            &scenario("on the primary"),
            "postgres",
            &primary_reads.0,
            "calls/s",
        )
        .server_cpu(primary_reads.1, args.calls),
    );
    table.push(
        Row::rate(
            &scenario("on the standby (vs primary)"),
            "postgres",
            &standby_reads.0,
            "calls/s",
        )
        .server_cpu(standby_reads.1, args.calls)
        .against(percent(standby_reads.0.share_of(&primary_reads.0)), "-"),
    );
    table.push(
        Row::rate(
            &scenario("on the standby, x-kith-at-least (vs none)"),
            "postgres",
            &token_reads.0,
            "calls/s",
        )
        .server_cpu(token_reads.1, args.calls)
        .against(percent(token_reads.0.share_of(&standby_reads.0)), "-"),
    );
    on_standby.stop().await?;
    on_primary.stop().await?;
    write_scenarios(args, &primary, table).await
}

/// People batches and single creations on two databases of the primary,
/// one at READ COMMITTED (the default) and one at SERIALIZABLE.
async fn write_scenarios(
    args: &Args,
    primary: &PrivateServer,
    table: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let people = people::population("isolation", args.rows);
    // Per isolation: the best batch round and the best creation round.
    let mut best: [[Option<(Measured, Duration)>; 2]; 2] = Default::default();
    for round in 1..=ROUNDS {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for variant in order {
            let isolation = ["read committed", "serializable"][variant];
            eprintln!("replicas: writes at {isolation}, round {round}/{ROUNDS}");
            let url = kith::throwaway_postgres::create_database(&primary.url()).await?;
            let admin = sqlx::PgPool::connect(&primary.database_url("postgres")).await?;
            let database = url.rsplit('/').next().context("a database name")?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {database} SET default_transaction_isolation = '{isolation}'"
            )))
            .execute(&admin)
            .await?;
            admin.close().await;
            let kith = Kith::start(&url, Database::Fresh).await?;
            let cpu = kith.cpu_time();
            let batches = people::grpc_batches(&kith, &people, args.concurrency).await?;
            keep_faster(&mut best[variant][0], (batches, kith.cpu_time() - cpu));
            let cpu = kith.cpu_time();
            let creates = create_customers(&kith, args.calls.min(CREATES)).await?;
            keep_faster(&mut best[variant][1], (creates, kith.cpu_time() - cpu));
            kith.stop().await?;
        }
    }
    let [
        [Some(batches_rc), Some(creates_rc)],
        [Some(batches_ser), Some(creates_ser)],
    ] = best
    else {
        anyhow::bail!("every round ran");
    };
    let batches = format!("BatchUpsertPeople, {} in flight", args.concurrency);
    let creates = format!("CreateCustomer, {CREATES_IN_FLIGHT} in flight");
    for (call, (rc, rc_cpu), (ser, ser_cpu), units, unit) in [
        (batches, batches_rc, batches_ser, people.len(), "rows/s"),
        (
            creates,
            creates_rc,
            creates_ser,
            args.calls.min(CREATES),
            "calls/s",
        ),
    ] {
        table.push(
            Row::rate(
                &format!("replicas: {call}, READ COMMITTED"),
                "postgres",
                &rc,
                unit,
            )
            .server_cpu(rc_cpu, units),
        );
        table.push(
            Row::rate(
                &format!("replicas: {call}, SERIALIZABLE (vs RC)"),
                "postgres",
                &ser,
                unit,
            )
            .server_cpu(ser_cpu, units)
            .against(percent(ser.share_of(&rc)), "-"),
        );
    }
    Ok(())
}

/// Polls `query` (one number) on `url` until it reaches `at_least`.
async fn wait_for(url: &str, query: &str, at_least: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(pool) = sqlx::PgPool::connect(url).await {
            let count: Result<(i64,), _> = sqlx::query_as(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_one(&pool)
                .await;
            pool.close().await;
            if count.is_ok_and(|(count,)| usize::try_from(count).unwrap_or(0) >= at_least) {
                return Ok(());
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the standby did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cursor of a write made now: a token every later read must honour.
async fn fresh_token(kith: &Kith) -> anyhow::Result<String> {
    let response = kith
        .customers()
        .create_customer(CreateCustomerRequest {
            customer: Some(Customer {
                email: Some("token@example.com".to_owned()),
                ..Customer::default()
            }),
        })
        .await?;
    let cursor = response
        .metadata()
        .get("x-kith-cursor")
        .context("a write answers with its cursor")?;
    Ok(cursor.to_str()?.to_owned())
}

/// `customers::get_by_id`, sending `x-kith-at-least` when given one.
async fn get_by_id(
    kith: &Kith,
    bearer: &crate::kith_process::Bearer,
    ids: Arc<Vec<String>>,
    at_least: Option<String>,
    args: &Args,
) -> anyhow::Result<Measured> {
    let Some(token) = at_least else {
        return customers::get_by_id(
            kith.channel.clone(),
            bearer.clone(),
            ids,
            args.calls,
            args.in_flight,
        )
        .await;
    };
    let token: tonic::metadata::AsciiMetadataValue = token.parse()?;
    let client = CustomerServiceClient::with_interceptor(kith.channel.clone(), bearer.clone());
    closed_loop(args.calls, args.in_flight, 1, move |i| {
        let (mut client, ids, token) = (client.clone(), ids.clone(), token.clone());
        async move {
            let mut request = tonic::Request::new(GetCustomerRequest {
                lookup: Some(Lookup::Id(ids[i % ids.len()].clone())),
            });
            request.metadata_mut().insert("x-kith-at-least", token);
            client.get_customer(request).await?;
            Ok(())
        }
    })
    .await
}

/// `creates` customers, one per call, `CREATES_IN_FLIGHT` at once: every
/// two of them collide on the workspace's change counter at SERIALIZABLE.
async fn create_customers(kith: &Kith, creates: usize) -> anyhow::Result<Measured> {
    let client = kith.customers();
    closed_loop(creates, CREATES_IN_FLIGHT, 1, move |i| {
        let mut client = client.clone();
        async move {
            client
                .create_customer(CreateCustomerRequest {
                    customer: Some(Customer {
                        email: Some(format!("create-{i}@example.com")),
                        ..Customer::default()
                    }),
                })
                .await?;
            Ok(())
        }
    })
    .await
}
