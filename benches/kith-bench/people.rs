//! People scenarios (seed 002): batch upserts over gRPC and REST, the
//! streaming import, and the same writes with a million people stored.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use prost_types::{Struct, Value, value::Kind};

use kith::domain::search::SearchDocument;
use kith::pb::kith::v1::{
    BatchUpsertPeopleRequest, ImportPeopleRequest, ListPeopleRequest, PersonUpsert,
};

use crate::kith_process::Kith;
use crate::load::{Latencies, Measured, closed_loop};
use crate::raw::{RawChange, RawPerson, RawPool};

pub const BATCH: usize = 100;
const IMPORT_CHUNK: usize = 1_000;

/// Person `i` of a generated population: a stable id and email, two known
/// traits and two attributes.
pub fn person(prefix: &str, i: usize) -> PersonUpsert {
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
                kind: Some(Kind::NumberValue(f64::from(
                    u32::try_from(i % 50).expect("small"),
                ))),
            },
        ),
    ];
    PersonUpsert {
        user_id: format!("{prefix}-{i}"),
        email: Some(format!("{prefix}-{i}@example.com")),
        traits: Some(Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }),
        status: 0,
    }
}

pub fn population(prefix: &str, rows: usize) -> Vec<PersonUpsert> {
    (0..rows).map(|i| person(prefix, i)).collect()
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
            id: kith::domain::new_id(),
            external_id: person.user_id.clone(),
            email_key: email.to_lowercase(),
            // As `Person::search_document` builds it.
            search: SearchDocument::keyed(Some(&person.user_id))
                .field(Some(&text("first_name")))
                .field(Some(&text("last_name")))
                .field(Some(&format!(
                    "{} {}",
                    text("first_name"),
                    text("last_name")
                )))
                .field(Some(&email)),
            first_name: text("first_name"),
            last_name: text("last_name"),
            attributes: serde_json::json!({ "plan": text("plan"), "seats": seats }),
            email,
        }
    }
}

fn traits_json(value: &Struct) -> serde_json::Map<String, serde_json::Value> {
    value
        .fields
        .iter()
        .map(|(k, v)| {
            let json = match &v.kind {
                Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
                #[allow(clippy::cast_possible_truncation)]
                Some(Kind::NumberValue(n)) => serde_json::Value::from(*n as i64),
                _ => serde_json::Value::Null,
            };
            (k.clone(), json)
        })
        .collect()
}

/// A new person's change row, its record encoded as Kith logs it.
pub fn created_change(person: &RawPerson, workspace: uuid::Uuid) -> RawChange {
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    let attributes = traits_struct(&person.attributes);
    let record = kith::pb::kith::v1::Person {
        id: person.id.to_string(),
        workspace_id: workspace.to_string(),
        external_id: person.external_id.clone(),
        email: Some(person.email.clone()),
        first_name: Some(person.first_name.clone()),
        last_name: Some(person.last_name.clone()),
        status: kith::pb::kith::v1::PersonStatus::Active.into(),
        attributes: Some(attributes),
        created_at: Some(now),
        updated_at: Some(now),
        first_seen_at: Some(now),
        last_seen_at: Some(now),
        ..kith::pb::kith::v1::Person::default()
    };
    RawChange {
        kind: "person",
        operation: "created",
        record_id: person.id.to_string(),
        external_id: Some(person.external_id.clone()),
        owner_id: None,
        record: prost::Message::encode_to_vec(&record),
    }
}

fn traits_struct(attributes: &serde_json::Value) -> Struct {
    let fields = attributes
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let kind = match value {
                serde_json::Value::String(s) => Kind::StringValue(s.clone()),
                serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
                _ => Kind::NullValue(0),
            };
            (name.clone(), Value { kind: Some(kind) })
        })
        .collect();
    Struct { fields }
}

/// Whether a raw ceiling writes the change log too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    Off,
    On,
}

/// The ceiling: the same rows written raw, `concurrency` batches at a time
/// into a database Kith has already migrated and bootstrapped; with the
/// log on, each batch with its change rows in one transaction.
pub async fn raw_upsert(
    database_url: &str,
    people: &[PersonUpsert],
    concurrency: usize,
    log: Log,
) -> anyhow::Result<Measured> {
    let pool = Arc::new(RawPool::open(database_url, concurrency).await?);
    let writer = pool.default_writer().await?;
    let batches: Arc<Vec<(Vec<RawPerson>, Vec<RawChange>)>> = Arc::new(
        people
            .chunks(BATCH)
            .map(|chunk| {
                let rows: Vec<RawPerson> = chunk.iter().map(RawPerson::from).collect();
                let changes = match log {
                    Log::On => rows
                        .iter()
                        .map(|p| created_change(p, writer.workspace))
                        .collect(),
                    Log::Off => Vec::new(),
                };
                (rows, changes)
            })
            .collect(),
    );
    closed_loop(batches.len(), concurrency, BATCH, move |i| {
        let (pool, batches) = (pool.clone(), batches.clone());
        async move {
            let (rows, changes) = &batches[i];
            let changes = (log == Log::On).then_some(changes.as_slice());
            pool.upsert_people(writer, rows, changes).await
        }
    })
    .await
}

/// Kith's validation, service and store called in this process: what the
/// service costs over raw SQL before any transport.
pub async fn store_direct(
    database_url: &str,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Measured> {
    use kith::domain::person::{self, PersonUpsertInput};
    let (service, caller) = crate::in_process(database_url).await?;
    let inputs: Arc<Vec<Vec<PersonUpsertInput>>> = Arc::new(
        people
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|p| PersonUpsertInput {
                        user_id: p.user_id.clone(),
                        email: p.email.clone(),
                        traits: traits_json(p.traits.as_ref().expect("generated")),
                        status: None,
                    })
                    .collect()
            })
            .collect(),
    );
    closed_loop(inputs.len(), concurrency, BATCH, move |i| {
        let (service, inputs) = (service.clone(), inputs.clone());
        async move {
            let batch = person::parse_batch(inputs[i].clone())?;
            service.batch_upsert_people(&caller, &batch).await?;
            Ok(())
        }
    })
    .await
}

/// `BatchUpsertPeople` of 100, `concurrency` calls in flight.
pub async fn grpc_batches(
    kith: &Kith,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Measured> {
    let batches: Arc<Vec<Vec<PersonUpsert>>> =
        Arc::new(people.chunks(BATCH).map(<[_]>::to_vec).collect());
    let client = kith.people();
    closed_loop(batches.len(), concurrency, BATCH, move |i| {
        let (mut client, batches) = (client.clone(), batches.clone());
        async move {
            client
                .batch_upsert_people(BatchUpsertPeopleRequest {
                    people: batches[i].clone(),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

/// The same batches as JSON through a REST route: seed 002's
/// (`/api/v1/workspaces/{id}/people/batch`) or the contract's own
/// (`/kith/v1/people:batchUpsert`), whose bodies are spelled alike.
pub async fn rest_batches(
    kith: &Kith,
    path: &str,
    people: &[PersonUpsert],
    concurrency: usize,
) -> anyhow::Result<Measured> {
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
                            "traits": traits_json(p.traits.as_ref().expect("generated")),
                        })
                    })
                    .collect();
                serde_json::json!({ "people": people }).to_string()
            })
            .collect(),
    );
    let url = Arc::new(format!("{}{path}", kith.rest));
    let client = reqwest::Client::new();
    let key = Arc::new(kith.key.clone().context("fresh database")?);
    closed_loop(bodies.len(), concurrency, BATCH, move |i| {
        let (client, bodies, url, key) = (client.clone(), bodies.clone(), url.clone(), key.clone());
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
    .await
}

/// Every person in one client stream of 1000-person messages.
pub async fn grpc_import(kith: &Kith, people: &[PersonUpsert]) -> anyhow::Result<Measured> {
    let chunks: Vec<ImportPeopleRequest> = people
        .chunks(IMPORT_CHUNK)
        .map(|chunk| ImportPeopleRequest {
            people: chunk.to_vec(),
        })
        .collect();
    let started = Instant::now();
    let reply = kith
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
    Ok(Measured::new(
        people.len(),
        started.elapsed(),
        Latencies::default(),
    ))
}

/// Fills a bootstrapped database with `rows` people the raw way (setup, not
/// measured), logging progress.
pub async fn preload(database_url: &str, rows: usize, concurrency: usize) -> anyhow::Result<()> {
    let pool = Arc::new(RawPool::open(database_url, concurrency).await?);
    let writer = pool.default_writer().await?;
    let started = Instant::now();
    let batches = rows.div_ceil(BATCH);
    let report_every = (batches / 10).max(1);
    closed_loop(batches, concurrency, BATCH, move |b| {
        let pool = pool.clone();
        async move {
            let batch: Vec<RawPerson> = (b * BATCH..rows.min((b + 1) * BATCH))
                .map(|i| RawPerson::from(&person("stored", i)))
                .collect();
            pool.upsert_people(writer, &batch, None).await?;
            if b % report_every == 0 {
                eprintln!("  preloaded {} of {rows} people", b * BATCH);
            }
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "  preloaded {rows} people in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How long the first page of a search takes: `samples` fetches of the
/// first page `search` finds.
pub async fn search_page(kith: &Kith, search: &str, samples: usize) -> anyhow::Result<Latencies> {
    let mut client = kith.people();
    let mut all = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        client
            .list_people(ListPeopleRequest {
                page_size: i32::try_from(BATCH).expect("small"),
                search: search.to_owned(),
                ..ListPeopleRequest::default()
            })
            .await?;
        all.push(started.elapsed());
    }
    Ok(Latencies::from_unsorted(all))
}

/// How long a page takes at the start of the list and deep in it.
pub struct PageLatencies {
    pub first: Latencies,
    pub deep: Latencies,
    pub depth: usize,
}

/// Walks `ListPeople` to `depth` rows in, then times `samples` fetches of
/// the first page and of the page found there.
pub async fn list_pages(
    kith: &Kith,
    depth: usize,
    samples: usize,
) -> anyhow::Result<PageLatencies> {
    let mut client = kith.people();
    let page = |page_token: String| ListPeopleRequest {
        page_size: i32::try_from(BATCH).expect("small"),
        page_token,
        ..ListPeopleRequest::default()
    };
    let mut token = String::new();
    let mut walked = 0;
    let report_every = (depth / 10).max(BATCH);
    while walked < depth {
        let reply = client.list_people(page(token)).await?.into_inner();
        walked += reply.people.len();
        token = reply.next_page_token;
        anyhow::ensure!(!token.is_empty(), "the list ended after {walked} rows");
        if walked % report_every == 0 {
            eprintln!("  walked {walked} of {depth} rows");
        }
    }
    let mut time = async |token: &str| -> anyhow::Result<Latencies> {
        let mut all = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let reply = client.list_people(page(token.to_owned())).await?;
            anyhow::ensure!(reply.get_ref().people.len() == BATCH, "a full page");
            all.push(started.elapsed());
        }
        Ok(Latencies::from_unsorted(all))
    };
    let first = time("").await?;
    let deep = time(&token).await?;
    Ok(PageLatencies {
        first,
        deep,
        depth: walked,
    })
}
